# Deadlock checks: bounded in cost, reporting only cycles that exist.
#
# 1. Many waiters on one gate whose holder sleeps on a row lock: only the
#    first waiter walks the wait-for graph, once per deadlock_timeout, so
#    the walks (and the pg_blocking_pids() calls through the holder) do not
#    grow with the queue.
# 2. A cycle that runs through the second waiter of a queue, not the
#    first: the first waiter's walk finds it and chooses the second as the
#    victim, which fails with 40P01; everybody else completes.
# 3. Many transactions that each take two customers' gates in ascending
#    order, so that no cycle is possible, with deadlock_timeout = 1ms:
#    thousands of walks over a graph that changes under them, and no 40P01.
# 4. The interleaving that makes a walk see a cycle that never existed,
#    forced with capaccess.deadlock_walk_delay: X holds gate 4 and waits
#    for gate 3, held by A, behind Z.  W, first in gate 4's queue, walks:
#    W -> X -> A, then pauses.  A commits and hands gate 3 to Z, and A's
#    next transaction queues on gate 4.  The walk goes on and reads A -> X:
#    X -> A -> X.  The edge X -> A is gone (gate 1 changed hands), so the
#    confirmation rejects the cycle, and nobody gets 40P01.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $node = PostgreSQL::Test::Cluster->new('deadlock');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
max_connections = 200
log_statement = none
deadlock_timeout = 100ms
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION capaccess;
SELECT count(capaccess_register(i, 1000000000)) FROM generate_series(1, 4) i;
CREATE TABLE other (id int PRIMARY KEY);
INSERT INTO other VALUES (1), (2);
});

sub stat_of
{
	my ($col) = @_;
	return $node->safe_psql('postgres',
		"SELECT value FROM capaccess_counters() WHERE counter = '$col'");
}

# --- 1. bounded cost ------------------------------------------------------
{
	my $waiters = 40;
	my $row = session($node);
	$row->query_safe('BEGIN; UPDATE other SET id = 1 WHERE id = 1');
	my $holder = session($node);
	$holder->query_safe('BEGIN; SELECT clock FROM capaccess_update(1, 1)');
	start($holder, 'UPDATE other SET id = 1 WHERE id = 1');
	my @w = map { queue_on_gate($node, $_, 'SELECT clock FROM capaccess_update(1, 1);') }
	  1 .. $waiters;

	# every waiter is past its first deadlock_timeout; count over 2 s
	sleep 1;
	my $before = stat_of('deadlock_checks');
	sleep 2;
	my $walks = stat_of('deadlock_checks') - $before;
	note "$walks walks in 2 s with $waiters waiters, deadlock_timeout = 100ms";
	ok($walks >= 5, 'the first waiter keeps checking');
	ok($walks <= 40,
		"the walks do not grow with the queue (each waiter walking would be about "
		  . $waiters * 20 . ')');
	is(stat_of('deadlocks'), '0', 'no cycle, no 40P01');

	$row->query_safe('ROLLBACK');
	is(outcome($holder), '', 'the holder goes on once the row is free');
	$holder->query_safe('COMMIT');
	my @clocks = sort { $a <=> $b } map { outcome($_) } @w;
	is("@clocks", join(' ', map { $_ + 1 } 1 .. $waiters),
		'the waiters complete, clocks in order');
	$_->quit for ($row, $holder, @w);
}

# --- 2. a cycle through the second waiter ---------------------------------
{
	my $deadlocks = stat_of('deadlocks');
	my $holder = session($node);
	$holder->query_safe('BEGIN; SELECT clock FROM capaccess_update(2, 1)');
	my $first = queue_on_gate($node, 1, 'SELECT clock FROM capaccess_update(2, 1);');
	my $second = session($node);
	$second->query_safe('BEGIN; UPDATE other SET id = 2 WHERE id = 2');
	start($second, 'SELECT clock FROM capaccess_update(2, 1)');
	waiting_are($node, 'Extension', 2) or die 'the second waiter did not queue';
	# the holder now waits for the second waiter's row: a cycle holder ->
	# second -> holder, which only the first waiter's walk can see
	start($holder, 'UPDATE other SET id = 2 WHERE id = 2');

	like(
		outcome($second),
		qr/ERROR:  40P01: deadlock detected/,
		'the second waiter, on the cycle, is the victim');
	$second->query('ROLLBACK');
	is(outcome($holder), '', 'the holder gets the row');
	$holder->query_safe('COMMIT');
	like(outcome($first), qr/^\d+$/, 'the first waiter, not on the cycle, completes');
	is(stat_of('deadlocks'), $deadlocks + 1, 'one cycle, one victim');
	$_->quit for ($holder, $first, $second);
}

# --- 3. many waits, no possible cycle -------------------------------------
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET deadlock_timeout = '1ms'; SELECT pg_reload_conf()");
	my $checks = stat_of('deadlock_checks');
	my $deadlocks = stat_of('deadlocks');
	$node->pgbench(
		'--no-vacuum --client=48 --jobs=4 --time=15 --failures-detailed',
		0,
		[
			qr/number of failed transactions: 0 /,
			qr/number of deadlock failures: 0 /
		],
		[qr/^$/],
		'48 clients, two gates each in ascending order, for 15 s',
		{
			'010_ascending' => q{\set a random(1, 4)
\set b random(1, 4)
BEGIN;
SELECT capaccess_update(least(:a, :b), 1);
SELECT pg_sleep(0.001);
SELECT capaccess_update(greatest(:a, :b), 1);
END;
}
		});
	my $walks = stat_of('deadlock_checks') - $checks;
	note "$walks walks";
	ok($walks > 1000, 'the walks ran often, over a changing graph');
	is(stat_of('deadlocks'), $deadlocks, 'and none reported a cycle');
	is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
		'', 'capaccess_verify() is empty');
}

# --- 4. a cycle that never existed ----------------------------------------
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET deadlock_timeout = '60s'; SELECT pg_reload_conf()");
	my $deadlocks = stat_of('deadlocks');
	my $a = session($node);
	$a->query_safe('BEGIN; SELECT clock FROM capaccess_update(3, 1)');
	my $z = session($node);
	$z->query_safe('BEGIN');
	start($z, 'SELECT clock FROM capaccess_update(3, 1)');
	my $x = session($node);
	$x->query_safe('BEGIN; SELECT clock FROM capaccess_update(4, 1)');
	start($x, 'SELECT clock FROM capaccess_update(3, 1)');
	my $w = session($node);
	$w->query_safe(
		"SET deadlock_timeout = '100ms'; SET capaccess.deadlock_walk_delay = '3s'");
	start($w, 'SELECT clock FROM capaccess_update(4, 1)');
	waiting_are($node, 'Extension', 3) or die 'Z, X and W did not queue';

	# W's first walk has read W -> X -> A and pauses; change the graph
	sleep 1;
	$a->query_safe('COMMIT');
	like(outcome($z), qr/^\d+$/, 'A commits and hands gate 3 to Z');
	$a->query_safe('BEGIN');
	start($a, 'SELECT clock FROM capaccess_update(4, 1)');
	waiting_are($node, 'Extension', 3) or die 'A did not queue on gate 4';

	# the walk goes on, reads A -> X, and must not blame anyone
	sleep 4;
	is(stat_of('deadlocks'), $deadlocks, 'the walk saw X -> A -> X and rejected it');
	$z->query_safe('COMMIT');
	like(outcome($x), qr/^\d+$/, 'X, never on a cycle, gets gate 3');
	$x->query_safe('COMMIT');
	like(outcome($w), qr/^\d+$/, 'W gets gate 4');
	like(outcome($a), qr/^\d+$/, 'A gets gate 4');
	$a->query_safe('COMMIT');
	is(stat_of('deadlocks'), $deadlocks, 'no 40P01 at all');
	$_->quit for ($a, $z, $x, $w);
}

done_testing();
