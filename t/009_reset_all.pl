# capaccess_reset_all() while 1000 clients consume.
#
# Billing periods end while the application runs, so a reset of every
# customer must be correct under full load: no update lost, none applied to
# the wrong period, every clock gapless.
#
# Each accepted consume is logged in its own transaction (INSERT ... SELECT
# FROM capaccess_update), with the clock and the used it returned.  While
# the clients run, capaccess_reset_all() is called several times.  Then,
# for every customer:
#	- the logged clocks are distinct, and together with one reset per call
#	  they fill 1..clock exactly (no gap, no repeat, no lost update);
#	- replaying the events in clock order (a reset sets used to 0, a
#	  consume adds 1) gives the used every consume returned, and the final
#	  row: each consume was applied in the period its clock says.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $clients = 1000;
my $customers = 200;
my $resets = 3;

my $node = PostgreSQL::Test::Cluster->new('reset_all');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
max_connections = 1100
log_statement = none
});
$node->start;
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION capaccess;
SELECT count(capaccess_register(i, 1000000000)) FROM generate_series(1, $customers) i;
CREATE TABLE consumed (customer_id bigint, clock bigint, used bigint);
});

# A few customers are hot, most are cold: the hot ones are reset through
# their gates, the cold ones in one UPDATE.
my $script = $node->basedir . '/consume.pgbench';
PostgreSQL::Test::Utils::append_to_file(
	$script, qq{\\set k random_exponential(1, $customers, 5)
INSERT INTO consumed SELECT :k, clock, used FROM capaccess_update(:k, 1) WHERE updated;
});

my ($out, $err) = ('', '');
my $bench = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client' => $clients,
		'--jobs' => 8, '--time' => 600,
		'--file' => $script, '--host' => $node->host,
		'--port' => $node->port, 'postgres'
	],
	'>' => \$out,
	'2>' => \$err);

# Wait until the clients run, then reset every few seconds.  A reset of
# the hottest customer queues behind its waiters in turn (seen: 6 to 17 s
# at 1000 clients on 2 cores), so the next reset waits until that customer
# has consumed in the new period: a consume committed after the reset
# returned took the gate after it.  pgbench's --time counts from before
# its 1000 connections (25 to 30 s here), so no fixed duration is safe:
# pgbench runs until the last period has seen the hottest customer, and is
# then interrupted.  A backend whose client is gone notices only when it
# next talks to it: its statement in flight commits or rolls back, and the
# checks below hold either way.
my $hot_consumes =
  'SELECT count(*) FROM consumed WHERE customer_id = 1';
$node->poll_query_until('postgres',
	"SELECT count(*) >= $clients FROM pg_stat_activity WHERE backend_type = 'client backend'")
  or die 'the clients did not connect';
my @took;
for my $r (1 .. $resets)
{
	sleep 1;
	my $start = time;
	my $n = $node->safe_psql('postgres', 'SELECT capaccess_reset_all()');
	push @took, sprintf('%.2f s', time - $start);
	is($n, $customers, "reset $r resets every customer");
	my $seen = $node->safe_psql('postgres', $hot_consumes);
	$node->poll_query_until('postgres', "SELECT ($hot_consumes) > $seen")
	  or diag("customer 1 consumed nothing after reset $r: did pgbench end?");
}
note 'reset_all took ' . join(', ', @took);

$bench->signal('INT');
$bench->finish;
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pgbench'")
  or die 'the clients did not go away';
# A call that failed shows as an ERROR in the server's log, before or
# after the interruption; a backend that lost its client logs the FATAL
# "connection to client lost" (the rest of what it logs is at LOG level).
unlike($err, qr/aborted|error/i, 'no pgbench client reported an error')
  or diag($err);
my @errors = grep {
	/\b(ERROR|FATAL|PANIC):/
	  && !/connection to client lost/
} split /\n/, PostgreSQL::Test::Utils::slurp_file($node->logfile);
is(scalar(@errors), 0, 'no call failed while the clients ran')
  or diag(join("\n", @errors[ 0 .. ($#errors < 9 ? $#errors : 9) ]));

my $consumed = $node->safe_psql('postgres', 'SELECT count(*) FROM consumed');
ok($consumed > 1000, "$consumed consumes were accepted during the resets");

# One row per clock value of each customer, up to its final clock: a logged
# consume, or a reset.  period counts the resets up to and including it.
my $events = qq{
WITH final AS (SELECT customer_id, clock, used FROM capaccess.customer),
ev AS (
	SELECT f.customer_id, g AS clock, l.used AS logged_used,
		   l.clock IS NULL AS is_reset
	  FROM final f CROSS JOIN LATERAL generate_series(1, f.clock) g
	  LEFT JOIN consumed l ON l.customer_id = f.customer_id AND l.clock = g),
numbered AS (
	SELECT *, count(*) FILTER (WHERE is_reset)
				OVER (PARTITION BY customer_id ORDER BY clock) AS period
	  FROM ev),
replayed AS (
	SELECT *, count(*) FILTER (WHERE NOT is_reset)
				OVER (PARTITION BY customer_id, period ORDER BY clock) AS replayed_used
	  FROM numbered)
};

is( $node->safe_psql('postgres',
		'SELECT count(*) - count(DISTINCT (customer_id, clock)) FROM consumed'),
	'0', 'no clock was given to two consumes');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM consumed l JOIN capaccess.customer c USING (customer_id)'
		  . ' WHERE l.clock < 1 OR l.clock > c.clock'),
	'0', 'every logged clock is within 1..final clock');
is( $node->safe_psql('postgres',
		$events . qq{
SELECT count(*) FROM (SELECT customer_id FROM ev GROUP BY 1
					   HAVING count(*) FILTER (WHERE is_reset) <> $resets) x}),
	'0', "the clocks no consume holds are exactly the $resets resets of each customer");
is( $node->safe_psql('postgres',
		$events . q{
SELECT count(*) FROM replayed WHERE NOT is_reset AND logged_used <> replayed_used}),
	'0', 'each consume returned the used of its own period');
is( $node->safe_psql('postgres',
		$events . q{
SELECT count(*) FROM capaccess.customer c
  JOIN (SELECT DISTINCT ON (customer_id) customer_id, replayed_used
		  FROM replayed ORDER BY customer_id, clock DESC) r USING (customer_id)
 WHERE c.used <> CASE WHEN r.replayed_used IS NULL THEN 0 ELSE r.replayed_used END}),
	'0', 'the final used of each customer is what the replay gives');
is( $node->safe_psql('postgres',
		$events . qq{
SELECT count(DISTINCT period) FROM numbered WHERE customer_id = 1 AND NOT is_reset}),
	$resets + 1, 'the hottest customer consumed in every period');
is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
	'', 'capaccess_verify() is empty');
is($node->safe_psql('postgres', 'SELECT slots_held FROM capaccess_stats()'),
	'0', 'no gate is left held');

done_testing();
