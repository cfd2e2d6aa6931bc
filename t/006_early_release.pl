# Early release (capaccess.early_release) never makes an answer durable later
# than the client hears it.  A transaction that holds a gate commits
# asynchronously, hands the gate on, and writes and flushes its WAL before it
# answers; a refusal reports a state only once that state is durable.
#
# A crash loses whatever WAL is still in the server's buffers.  Here the WAL
# writer is stopped (SIGSTOP), so that only the backends themselves write
# WAL; the crash is then SIGKILL to the WAL writer, and each check compares
# what clients were told before the crash with what the table holds after.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $node = PostgreSQL::Test::Cluster->new('early');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
restart_after_crash = on
autovacuum = off
checkpoint_timeout = 1h
log_statement = none
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION capaccess;
SELECT capaccess_register(1, 1000000000);
SELECT capaccess_register(2, 50);
SELECT capaccess_register(3, 50);
SELECT capaccess_register(4, 50);
});

sub walwriter_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'");
}

# Kill the WAL writer: the postmaster treats it as a crash, and starts over
# from the WAL on disk with fresh shared memory.
sub crash
{
	my ($walwriter) = @_;
	my $offset = -s $node->logfile;
	kill 'KILL', $walwriter;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$offset);
	$node->poll_query_until('postgres', 'SELECT 1', '1')
	  or die 'the server did not come back';
}

sub used_of
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT used FROM capaccess.customer WHERE customer_id = $id");
}

# Stop the WAL writer of the current server; returns its pid.
sub stop_walwriter
{
	my $pid = walwriter_pid();
	kill 'STOP', $pid;
	return $pid;
}

# Any flush writes out all the WAL inserted before it, so each case below
# ends in its own crash, before anything else can flush for it.

# --- 1. accepted updates, one after another ----------------------------------
# Nobody waits for the gate, so these commit the ordinary way.
my $walwriter = stop_walwriter();
my $s = $node->background_psql('postgres');
my $clock;
$clock = $s->query_safe('SELECT clock FROM capaccess_update(1, 1)')
  for 1 .. 100;
$s->quit;
is($clock, 100, 'one session: 100 updates acknowledged');
is($node->safe_psql('postgres', 'SELECT early_releases FROM capaccess_stats()'),
	'0', 'with nobody waiting, none released its gate early');
crash($walwriter);
is(used_of(1), 100, 'after a crash, all 100 are in the table');

# --- 1b. a commit that released its gate early ------------------------------
# s1 commits while s2 is queued on the gate, so s1 hands the gate on before
# its flush.  s2 updates from s1's state and stays uncommitted: only s1's
# own flush, after the release and before its COMMIT returned, can have made
# s1's update durable.
$walwriter = stop_walwriter();
my $s1 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe('BEGIN');
$s1->query_safe('SELECT capaccess_update(1, 1)');
my $s2 = queue_on_gate($node, 1,
	'BEGIN; SELECT clock FROM capaccess_update(1, 1);');
$s1->query_safe('COMMIT');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
) or die 's2 did not get the gate';
is($node->safe_psql('postgres', 'SELECT early_releases FROM capaccess_stats()'),
	'1', 's1 committed with s2 queued: its gate was released early');
crash($walwriter);
reap_sessions($s1, $s2);
is(used_of(1), 101,
	'after a crash, s1\'s acknowledged update is in the table, s2\'s is not');

# Cases 2 and 3 need a state that is visible but not yet written out.  A
# writer that does not wait for its flush (synchronous_commit = off, its own
# choice) leaves one; a caller that waits (the default) is then refused from
# that state, and must make it durable before it reports it.
sub write_unflushed
{
	my ($sql) = @_;
	return $node->safe_psql('postgres',
		"SET synchronous_commit = off;\n$sql\n"
		  . 'SELECT pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn();');
}

# --- 2. a refusal from the cache, of a state not yet durable -----------------
$walwriter = stop_walwriter();
like(write_unflushed('SELECT capaccess_update(2, 50);'),
	qr/t$/, 'a writer used up the cap of customer 2, not flushed yet');
is( $node->safe_psql('postgres',
		'SELECT reason, used FROM capaccess_update(2, 1)'),
	'cap_exceeded|50',
	'a refusal from the cache reports the used-up cap');
is( $node->safe_psql('postgres', 'SELECT fast_rejected FROM capaccess_stats()'),
	'1', 'it was answered from the cache');
crash($walwriter);
is(used_of(2), 50, 'after a crash, the state that refusal reported is there');

# --- 3. a refusal read from the table, of a state not yet durable ------------
# The writer's savepoint rollback leaves the cache empty, so the refusal
# reads the row under the gate.
$walwriter = stop_walwriter();
like(
	write_unflushed(
		q{BEGIN;
SELECT capaccess_update(3, 50);
SAVEPOINT a;
SELECT capaccess_update(3, 0);
ROLLBACK TO a;
COMMIT;}),
	qr/t$/,
	'a writer used up the cap of customer 3, not flushed yet');
is( $node->safe_psql('postgres',
		'SELECT reason, used FROM capaccess_update(3, 1)'),
	'cap_exceeded|50',
	'a refusal read from the table reports the used-up cap');
is( $node->safe_psql('postgres', 'SELECT fast_rejected FROM capaccess_stats()'),
	'0', 'it was not answered from the cache');
crash($walwriter);
is(used_of(3), 50, 'after a crash, the state that refusal reported is there');

# --- 3b. a peek of a state not yet durable ----------------------------------
# capaccess_peek flushes up to the commit of the row version it read: one
# written through the gate, and one written directly by the owner, both by
# a writer that does not wait for its flush.
foreach my $case (
	[ 'through capaccess', 'SELECT capaccess_update(4, 7);', 7 ],
	[
		'directly',
		'UPDATE capaccess.customer SET used = 9, state_hash = capaccess.state_hash(customer_id, clock, 9, cap, access) WHERE customer_id = 4;',
		9
	])
{
	my ($how, $sql, $used) = @$case;
	$walwriter = stop_walwriter();
	write_unflushed($sql);
	is($node->safe_psql('postgres', 'SELECT used FROM capaccess_peek(4)'),
		$used, "a peek reports the state written $how, not flushed yet");
	crash($walwriter);
	is(used_of(4), $used,
		"after a crash, the state that peek reported ($how) is there");
}

# --- 3c. a peek of a durable state flushes nothing ---------------------------
# Only what the row read needs: a peek of a state committed long ago does
# not wait for another session's unflushed WAL.
# The commit log keeps one LSN per group of 32 xids, the latest of their
# asynchronous commits, so the other session's xid is first taken out of
# the peeked row's group, and what that group's commits wrote is flushed.
$node->safe_psql('postgres',
	join('', map { "BEGIN; SELECT pg_current_xact_id(); COMMIT;\n" } 1 .. 64)
	  . "CHECKPOINT;\n");
# The background writer is stopped too: writing out the page that session
# dirtied would flush its WAL.
my $bgwriter = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'background writer'");
$walwriter = stop_walwriter();
kill 'STOP', $bgwriter;
like(write_unflushed('SELECT capaccess_update(1, 1);'),
	qr/t$/, 'another session left WAL unflushed');
is($node->safe_psql('postgres', 'SELECT used FROM capaccess_peek(3)'),
	50, 'a peek of a durable state');
is( $node->safe_psql('postgres',
		'SELECT pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()'),
	't', 'did not flush the other session\'s WAL');
kill 'CONT', $bgwriter;
crash($walwriter);

# --- 4. many clients on one customer, and a crash in the middle --------------
# Every transaction pgbench logged was acknowledged to its client.  After the
# crash all of them are in the table, plus at most one per client that
# committed but had not been acknowledged yet.
my $clients = 16;
my $before = used_of(1);
$walwriter = stop_walwriter();
my $logdir = PostgreSQL::Test::Utils::tempdir;
my $script = "$logdir/update.pgbench";
PostgreSQL::Test::Utils::append_to_file($script,
	"SELECT clock FROM capaccess_update(1, 1);\n");
my ($out, $err);
my $pgbench = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client' => $clients, '--jobs' => 2,
		'--time' => 60, '--file' => $script, '--log',
		'--log-prefix' => "$logdir/tx", '-h', $node->host, '-p', $node->port,
		'postgres'
	],
	'>', \$out, '2>', \$err);
$node->poll_query_until('postgres',
	"SELECT used >= $before + 2000 FROM capaccess.customer WHERE customer_id = 1"
) or die 'the clients made no progress';
cmp_ok(
	$node->safe_psql('postgres', 'SELECT early_releases FROM capaccess_stats()'),
	'>=', 1000, 'the queued clients\' commits released their gates early');
crash($walwriter);
$pgbench->finish;

my $acked = 0;
for my $log (glob("$logdir/tx.*"))
{
	$acked += grep { (split ' ')[2] =~ /^\d+$/ } split /\n/, slurp_file($log);
}
cmp_ok($acked, '>=', 2000, "$clients clients: $acked updates acknowledged");
my $applied = used_of(1) - $before;
cmp_ok($applied, '>=', $acked,
	'after a crash, every acknowledged update is in the table');
cmp_ok($applied, '<=', $acked + $clients,
	'and at most one more per client, committed but not yet acknowledged');
is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
	'', 'capaccess_verify() is empty');

done_testing();
