# Waiting on a gate: timeouts, cancel, FIFO order with a waiter that leaves,
# holders that go away (terminate, disconnect, idle timeout), and a cycle of
# three transactions.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $node = PostgreSQL::Test::Cluster->new('waits');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'capaccess'\nlog_statement = none\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION capaccess;
SELECT capaccess_register(i, 1000) FROM generate_series(1, 3) i;
});

sub pid_of { my ($s) = @_; return $s->query_safe('SELECT pg_backend_pid()'); }

sub state_of
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT used || '/' || clock FROM capaccess.customer WHERE customer_id = $id");
}

# --- lock_timeout and statement_timeout -------------------------------------
my $holder = session($node);
$holder->query_safe('BEGIN; SELECT clock FROM capaccess_update(1, 1)');

my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSET lock_timeout = '200ms';\nSELECT * FROM capaccess_update(1, 1);");
like($err, qr/ERROR:  55P03: canceling statement due to lock timeout/,
	'lock_timeout ends a gate wait with 55P03');

($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSET statement_timeout = '200ms';\nSELECT * FROM capaccess_update(1, 1);");
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout ends a gate wait with 57014');

# --- pg_cancel_backend on a waiter, FIFO order of the others -----------------
# Waiters w1..w4 queue in this order; w2 is cancelled; when the holder
# commits, the others get clocks 2, 3, 4 in arrival order.
my @w = map { session($node) } 1 .. 4;
my @wpid = map { pid_of($_) } @w;
for my $i (0 .. 3)
{
	start($w[$i], 'SELECT clock FROM capaccess_update(1, 1)');
	ok(waiting_are($node, 'Extension', $i + 1), 'waiter w' . ($i + 1) . ' queued');
}
my $w2pid = $wpid[1];
$node->safe_psql('postgres', "SELECT pg_cancel_backend($w2pid)");
ok(waiting_are($node, 'Extension', 3), 'the cancelled waiter left the queue');
is($holder->query_safe('SELECT 1'), '1', 'the holder is unaffected by the cancel');
$holder->query_safe('COMMIT');

my @clock;
for my $i (0 .. 3)
{
	my $o = $w[$i]->query('SELECT 1');
	$clock[$i] = $o =~ /^(\d+)\n1$/ ? $1 : "error: $w[$i]->{stderr}";
}
like($clock[1], qr/57014: canceling statement due to user request/,
	'pg_cancel_backend ends a gate wait with 57014');
is_deeply([ @clock[ 0, 2, 3 ] ], [ 2, 3, 4 ],
	'the queue drains in arrival order past the waiter that left');
is(state_of(1), '4/4', 'committed state: 4 units, clock 4');

# --- a holder that goes away: terminate, disconnect, idle timeout ------------
for my $how ('terminate', 'disconnect', 'idle timeout')
{
	my $h = session($node);
	$h->query_safe("SET idle_in_transaction_session_timeout = '500ms'")
	  if $how eq 'idle timeout';
	$h->query_safe('BEGIN; SELECT clock FROM capaccess_update(2, 5)');
	my $hpid = pid_of($h);
	my $waiter = session($node);
	start($waiter, 'SELECT clock, used FROM capaccess_update(2, 1)');
	ok(waiting_are($node, 'Extension', 1), "$how: a waiter queues behind the holder");

	if ($how eq 'terminate')
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($hpid)");
	}
	elsif ($how eq 'disconnect')
	{
		$h->quit;
	}
	# for the idle timeout, the server ends the holder by itself

	my $o = $waiter->query('SELECT 1');
	my $n = $how eq 'terminate' ? 1 : $how eq 'disconnect' ? 2 : 3;
	is($o, "$n|$n\n1",
		"$how: the waiter proceeds from the committed state, the holder's update is gone");
	$waiter->quit;
	$h->quit if $how ne 'disconnect';
}
is(state_of(2), '3/3', 'only the waiters\' updates were committed');

# --- a cycle of three transactions -------------------------------------------
# s1 holds 1 and wants 2, s2 holds 2 and wants 3, s3 holds 3 and wants 1.
my @s = map { session($node) } 1 .. 3;
for my $i (0 .. 2)
{
	$s[$i]->query_safe("SET deadlock_timeout = '100ms'");
	$s[$i]->query_safe('BEGIN; SELECT clock FROM capaccess_update(' . ($i + 1) . ', 1)');
}
# each commits as soon as its wait ends, letting the next one go
start($s[0], 'SELECT clock FROM capaccess_update(2, 1); COMMIT');
start($s[1], 'SELECT clock FROM capaccess_update(3, 1); COMMIT');
start($s[2], 'SELECT clock FROM capaccess_update(1, 1); COMMIT');
my @res = map { scalar $_->query('SELECT 1') } @s;
my @stderr = map { $_->{stderr} } @s;
my $victims = grep { /40P01: deadlock detected/ } @stderr;
is($victims, 1, 'a three-transaction cycle ends in 40P01 in exactly one');
my $committed = $node->safe_psql('postgres',
	'SELECT sum(clock) FROM capaccess.customer WHERE customer_id IN (1, 2, 3)');
# before: clocks 4, 3, 0 (customer 3 untouched); the two survivors each
# committed two updates, the victim none
is($committed, 4 + 3 + 0 + 4, 'the two others completed both their updates');

is($node->safe_psql('postgres', 'SELECT slots_held FROM capaccess_stats()'),
	'0', 'no gate is left held');

$_->quit for (@w, @s, $holder);
$node->stop;
done_testing();
