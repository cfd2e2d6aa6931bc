# Crashes and restarts: a backend holding a gate is killed with SIGKILL while
# others wait on it (with restart_after_crash on, then off and a manual
# start), and an immediate shutdown.  Afterwards no gate is held, every
# committed update is in the table and the uncommitted one is not, the next
# update gets clock = committed clock + 1 and a seq above every earlier one,
# and capaccess_verify() is empty.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'capaccess'\nlog_statement = none\n");
$node->start;
$node->safe_psql('postgres',
	'CREATE EXTENSION capaccess; SELECT capaccess_register(1, 1000000)');

my $committed = 0;	# committed units (= committed clock) of customer 1

# Commit some updates, then leave one uncommitted in a holder with two
# waiters queued behind it.  Returns the holder's pid, the sessions, and the
# highest seq handed out so far (the holder's included).
sub hold_with_waiters
{
	for (1 .. 3)
	{
		$node->safe_psql('postgres', 'SELECT capaccess_update(1, 1)');
		$committed++;
	}
	my $holder = $node->background_psql('postgres', on_error_stop => 0);
	my $seq = $holder->query_safe(
		'BEGIN; SELECT seq FROM capaccess_update(1, 100)');
	my $pid = $holder->query_safe('SELECT pg_backend_pid()');
	my @waiters =
	  map { queue_on_gate($node, $_, 'SELECT capaccess_update(1, 1);') } 1 .. 2;
	return ($pid, $seq, [ $holder, @waiters ]);
}

sub check_after
{
	my ($what, $maxseq) = @_;
	is( $node->safe_psql('postgres',
			'SELECT slots_held, slots_loaded FROM capaccess_stats()'),
		'0|0', "$what: no gate is held, the caches start empty");
	is( $node->safe_psql('postgres',
			'SELECT used || \'/\' || clock FROM capaccess.customer WHERE customer_id = 1'),
		"$committed/$committed",
		"$what: every committed update is in the table, the uncommitted one is not");
	is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
		'', "$what: capaccess_verify() is empty");
	my ($clock, $seq) = split /\|/,
	  $node->safe_psql('postgres', 'SELECT clock, seq FROM capaccess_update(1, 1)');
	$committed++;
	is($clock, $committed, "$what: the next update gets clock = committed + 1");
	cmp_ok($seq, '>', $maxseq, "$what: its seq is above every earlier one");
	is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
		'', "$what: capaccess_verify() is still empty after it");
}

# --- 1. SIGKILL a gate holder, restart_after_crash = on -----------------------
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->reload;
my ($pid, $maxseq, $sessions) = hold_with_waiters();
kill 'KILL', $pid;
$node->poll_query_until('postgres', 'SELECT 1', '1')
  or die 'the server did not come back';
reap_sessions(@$sessions);
ok($node->log_contains('all server processes terminated; reinitializing'),
	'SIGKILL: the server reinitialized shared memory');
check_after('SIGKILL, restart_after_crash = on', $maxseq);

# --- 2. the same with restart_after_crash = off, then a manual start --------
$node->append_conf('postgresql.conf', 'restart_after_crash = off');
$node->reload;
($pid, $maxseq, $sessions) = hold_with_waiters();
kill 'KILL', $pid;
# the postmaster shuts down by itself and does not come back
my $down = 0;
for (1 .. 600)
{
	if (!-e $node->data_dir . '/postmaster.pid') { $down = 1; last; }
	usleep(100_000);
}
ok($down, 'SIGKILL with restart_after_crash = off: the server stopped');
reap_sessions(@$sessions);
$node->stop('fast', fail_ok => 1);
$node->start;
check_after('SIGKILL, restart_after_crash = off, manual start', $maxseq);

# --- 3. immediate shutdown and start ----------------------------------------
($pid, $maxseq, $sessions) = hold_with_waiters();
$node->stop('immediate');
reap_sessions(@$sessions);
$node->start;
check_after('immediate shutdown', $maxseq);

$node->stop;
done_testing();
