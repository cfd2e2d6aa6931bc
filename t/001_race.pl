# The race proof: 1000 concurrent connections, one call each, on one customer.
#
# (a) The data layer capaccess replaces (read used, then write used + 1 in a
#     second statement) loses updates: fewer than 1000 are applied.
# (b) With capaccess_update exactly 1000 are applied, the clocks are 1..1000
#     each once, and the 1000 state hashes are distinct.
#
# The pgbench scripts and the checking query are the ones the demo runs
# (bench/race/).
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = 1000;
my $race = dirname(__FILE__) . '/../bench/race';

my $node = PostgreSQL::Test::Cluster->new('race');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
max_connections = 1100
log_statement = none
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION capaccess');
$node->safe_psql('postgres', slurp_file("$race/setup.sql"));

sub run_clients
{
	my ($script, $name) = @_;
	$node->command_ok(
		[
			'pgbench', '--no-vacuum', '--client' => $clients,
			'--jobs' => 8, '--transactions' => 1,
			'--file' => "$race/$script", 'postgres'
		],
		"$name: $clients clients, one call each");
}

sub facts
{
	my $out = $node->safe_psql('postgres', slurp_file("$race/check.sql"),
		extra_params => ['--expanded']);
	my %f;
	for my $line (split /\n/, $out)
	{
		$f{$1} = $2 if $line =~ /^(\w+)\|(.*)$/;
	}
	return \%f;
}

run_clients('before.pgbench', 'before');
run_clients('after.pgbench', 'capaccess');
my $f = facts();

note "before: $f->{before_applied} of $clients updates applied";
cmp_ok($f->{before_applied}, '<', $clients,
	'read-then-write loses updates under concurrency');
cmp_ok($f->{before_applied}, '>', 0, 'read-then-write applied some');

is($f->{after_calls}, $clients, 'capaccess: every call is logged');
is($f->{after_accepted}, $clients, 'capaccess: every call was accepted');
is($f->{after_applied}, $clients, 'capaccess: used is exactly 1000');
is($f->{distinct_clocks}, $clients, 'capaccess: 1000 distinct clocks');
is($f->{min_clock}, 1, 'capaccess: clocks start at 1');
is($f->{max_clock}, $clients, 'capaccess: clocks end at 1000, no gaps');
is($f->{distinct_hashes}, $clients, 'capaccess: 1000 distinct state hashes');
is($f->{distinct_seqs}, $clients, 'capaccess: 1000 distinct seq values');

# each logged result is the state it produced: clock n goes with used n
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM race_log
 WHERE updated AND used = clock
   AND state_hash = capaccess.state_hash(1, clock, used, cap, access)}),
	$clients,
	'capaccess: every result has used = clock and its own hash');

# the calls really queued on the gate, and nothing is left held
is( $node->safe_psql(
		'postgres', 'SELECT waits > 0, slots_held FROM capaccess_stats()'),
	't|0',
	'capaccess: clients waited on the gate, and none holds it now');

# the timing counters: every accepted update held and released its gate;
# gates were handed to waiters (never more often than calls queued), and
# both totals advanced
is( $node->safe_psql(
		'postgres', qq{SELECT holds >= $clients, hold_time_ms > 0,
		                      handoffs > 0, handoffs <= waits,
		                      handoff_time_ms > 0
		                 FROM capaccess_stats()}),
	't|t|t|t|t',
	'capaccess: hold and hand-off counters add up');

$node->stop;
done_testing();
