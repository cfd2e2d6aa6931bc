# A partition fails while clients run through the proxy: first its
# postmaster is stopped with -m immediate and started again, then one of
# its backends, holding a gate others queue for, is killed with SIGKILL
# and the postmaster restarts itself (restart_after_crash).  Calls for its
# customers get a clear error from the proxy within a bounded time, calls
# for the other partitions go on, and afterwards everything committed is
# there, capaccess_verify() is empty on every partition and each
# customer's clock goes on with no gap.
use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;
use File::Temp 'tempdir';
use Scaleout;
use Test::More;
use Time::HiRes qw(time sleep);

my $n = 4;
my $victim = 1;
my $bound = 5;		# seconds a failing call may take, from the failure on
my $dir = start_cluster($n, 6760);
END { stop_cluster() }

my $proxy = db('proxy');
my $admin = db('proxy', 'billing_admin');

# two customers on each partition
my %on;
for my $k (0 .. $n - 1)
{
	$on{$_->[0]} = $k for rows($proxy,
		'SELECT g FROM generate_series(1, 1000) g WHERE capaccess.partition_of(g) = $1 ORDER BY g LIMIT 2', $k);
}
my @all = sort { $a <=> $b } keys %on;
my @victims = grep { $on{$_} == $victim } @all;
my @others = grep { $on{$_} != $victim } @all;
is(scalar @all, 2 * $n, 'two customers on each partition');
$admin->do(q{SELECT capaccess_register($1, 1000000000, 'standard')}, undef, $_) for @all;

my $logs = tempdir(CLEANUP => 1);
my %calls;		# customer => every call of every round, in order

# the calls of round R that started in [FROM, TO)
sub calls_in
{
	my ($c, $round, $from, $to) = @_;
	return grep { $_->{t0} >= $from && $_->{t0} < $to } @{ $calls{$round}{$c} };
}

# run_round(ROUND, FAIL): workers on every customer; FAIL->() makes the
# partition fail and returns when it is back; returns (t_fail, t_back)
sub run_round
{
	my ($round, $fail) = @_;
	mkdir "$logs/$round";
	my $workers = start_workers("$logs/$round", 'app', @all);
	ok( wait_until(30, sub {
				!grep { (() = `cat "$logs/$round/$_"` =~ /^ok /mg) < 20 } @all }),
		"round $round: every customer's calls go through before the failure");
	my ($t_fail, $t_back) = $fail->();
	sleep 3;
	stop_workers($workers);
	$calls{$round}{$_} = read_log("$logs/$round/$_") for @all;
	return ($t_fail, $t_back);
}

# what must hold of a round, whatever the failure was
sub check_round
{
	my ($round, $t_fail, $t_back) = @_;
	for my $c (@victims)
	{
		my @errors = grep { !$_->{ok} } @{ $calls{$round}{$c} };
		ok(@errors > 0, "round $round: calls for customer $c (partition $victim) failed while it was down");
		is( scalar(grep { $_->{t0} < $t_fail - 0.5 || $_->{t0} > $t_back + 1 } @errors), 0,
			"round $round: and only then");
		# from the failure, or the call's start if later, to its error
		my $slowest = 0;
		for (@errors)
		{
			my $took = $_->{t1} - ($_->{t0} > $t_fail ? $_->{t0} : $t_fail);
			$slowest = $took if $took > $slowest;
		}
		cmp_ok($slowest, '<=', $bound, sprintf(
			"round $round: each failed within %d s (slowest %.3f s)", $bound, $slowest));
		my @unclear = grep { $_->{msg} !~ /public\.capaccess_consume\(2\): \[capaccess\] / } @errors;
		is(scalar @unclear, 0, "round $round: each error names the proxy function and the cluster")
		  or diag(join "\n", map { $_->{msg} } @unclear[0 .. 2]);
		ok(scalar(grep { $_->{ok} } calls_in($c, $round, $t_back, 1e10)) > 0,
			"round $round: customer $c is served again once partition $victim is back");
	}
	for my $c (@others)
	{
		my @errors = grep { !$_->{ok} } @{ $calls{$round}{$c} };
		is(scalar @errors, 0, "round $round: no call for customer $c (partition $on{$c}) failed")
		  or diag($errors[0]{msg});
		ok(scalar(grep { $_->{ok} } calls_in($c, $round, $t_fail, $t_back + 1)) > 0,
			"round $round: customer $c was served while partition $victim was down");
	}
	my %kinds;
	for my $e (grep { !$_->{ok} } map { @{ $calls{$round}{$_} } } @victims)
	{
		my $kind = $e->{msg} =~ s/^.*?\[capaccess\] //r;
		$kind =~ s/"[^"]*"/"..."/g;
		$kind =~ s/ at \S+ line \d+\.?$//;
		$kinds{"$e->{state} $kind"}++;
	}
	diag("round $round: $kinds{$_} x $_") for sort keys %kinds;
	diag(sprintf("round %d: %d calls, %d failed; partition %d was down %.1f s",
			$round, scalar(map { @{ $calls{$round}{$_} } } @all),
			scalar(grep { !$_->{ok} } map { @{ $calls{$round}{$_} } } @all),
			$victim, $t_back - $t_fail));
}

# the table against every call made so far: nothing committed is lost,
# nothing rolled back counts, and no clock is skipped
sub check_data
{
	my ($label, $crashes) = @_;
	my @part = map { db($_) } 0 .. $n - 1;
	for my $c (@all)
	{
		my @ok = grep { $_->{ok} } map { @{ $calls{$_}{$c} } } sort keys %calls;
		my @clocks = map { $_->{clock} } @ok;
		my ($used, $clock) = $part[ $on{$c} ]->selectrow_array(
			'SELECT used, clock FROM capaccess.customer WHERE customer_id = $1', undef, $c);
		my $rising = !grep { $clocks[$_] <= $clocks[ $_ - 1 ] } 1 .. $#clocks;
		ok($rising, "$label: customer $c: the clocks its calls returned rise");
		is($clocks[-1], $clock, "$label: customer $c: its last call's clock is the table's ($clock)");
		is($used, $clock, "$label: customer $c: used = clock, one unit per accepted call");
		# a call in flight when its partition failed may have committed
		# without its answer reaching the client: at most one per failure
		my $unacknowledged = $clock - @ok;
		my $allowed = $on{$c} == $victim ? $crashes : 0;
		ok($unacknowledged >= 0 && $unacknowledged <= $allowed,
			"$label: customer $c: $clock updates, " . scalar(@ok)
			  . " acknowledged (at most $allowed in doubt)");
	}
	for my $k (0 .. $n - 1)
	{
		is(one($part[$k], 'SELECT count(*) FROM capaccess_verify()'), 0,
			"$label: capaccess_verify() is empty on partition $k");
	}
}

# the clock after a failure goes on from the last one before it
sub check_continues
{
	my ($round, $t_fail) = @_;
	for my $c (@victims)
	{
		my @ok = grep { $_->{ok} } @{ $calls{$round}{$c} };
		my @before = grep { $_->{t0} < $t_fail } @ok;
		my @after = grep { $_->{t0} >= $t_fail } @ok;
		my $step = $after[0]{clock} - $before[-1]{clock};
		ok($step == 1 || $step == 2, "round $round: customer $c goes on from clock "
			  . "$before[-1]{clock} to $after[0]{clock} (2 only if the call in flight committed)");
	}
}

# --- 1: the postmaster stopped with -m immediate ---------------------------
my ($t_fail, $t_back) = run_round(1, sub {
	my $t0 = time;
	cluster('pg_ctl', $victim, '-m', 'immediate', 'stop');
	sleep 4;
	cluster('pg_ctl', $victim, '-w', '-t', '60', 'start');
	return ($t0, time);
});
check_round(1, $t_fail, $t_back);
check_continues(1, $t_fail);
check_data('after the immediate stop', 1);

# --- 2: a backend holding a gate killed, restart_after_crash ---------------
my $vdb = db($victim);
is(one($vdb, 'SHOW restart_after_crash'), 'on', "partition $victim has restart_after_crash on");
my $postmaster = (split /\n/, `cat "$dir/p$victim/postmaster.pid"`)[0];
my $held = $victims[0];
my $holder = db($victim);
my ($holder_pid, $holder_clock);

($t_fail, $t_back) = run_round(2, sub {
	# the holder takes customer $held's gate; the worker's next call queues
	$holder->begin_work;
	($holder_pid, $holder_clock) = $holder->selectrow_array(
		'SELECT pg_backend_pid(), clock FROM capaccess_update($1, 1)', undef, $held);
	ok( wait_until(8, sub {
				one($vdb, 'SELECT waiters FROM capaccess_gates() WHERE customer_id = $1', $held) }),
		'round 2: a call through the proxy queues behind the holder');
	my $t0 = time;
	kill 'KILL', $holder_pid;
	ok( wait_until(60, sub { db($victim)->selectrow_array('SELECT 1') }),
		"round 2: partition $victim accepts connections again");
	return ($t0, time);
});
check_round(2, $t_fail, $t_back);
check_continues(2, $t_fail);
is((split /\n/, `cat "$dir/p$victim/postmaster.pid"`)[0], $postmaster,
	'the same postmaster reinitialised (restart_after_crash), no restart from outside');
like(`cat "$dir/p$victim.log"`, qr/terminated by signal 9: Killed.*all server processes terminated; reinitializing/s,
	'its log shows the crash and the reinitialisation');
ok(!eval { $holder->commit; 1 }, 'the killed holder\'s transaction did not commit');

my @before = grep { $_->{ok} && $_->{t0} < $t_fail } @{ $calls{2}{$held} };
my @first = grep { $_->{ok} && $_->{t0} >= $t_fail } @{ $calls{2}{$held} };
is($holder_clock, $before[-1]{clock} + 1, 'the holder had been given the next clock');
is($first[0]{clock}, $holder_clock,
	'after the crash the next accepted call gets that clock: the rolled-back update left no trace and no gap');
check_data('after the crash and restart', 2);

# --- 3: a partition that does not answer ------------------------------------
# Its postmaster stopped with SIGSTOP: a new connection to it waits
# forever (PL/Proxy ignores connect_timeout).  The proxy's
# statement_timeout bounds the call (scaleout/cluster sets 60 s for the
# roles; 3 s here).
my $pm = (split /\n/, `cat "$dir/p$victim/postmaster.pid"`)[0];
kill 'STOP', $pm;
my $fresh = db('proxy', 'app');
$fresh->do(q{SET statement_timeout = '3s'});
my $t0 = time;
my $hung = eval {
	$fresh->selectrow_array('SELECT clock FROM capaccess_consume($1, 1)', undef, $victims[1]);
	1;
} ? 'no error' : ($fresh->state . ' ' . ($@ =~ s/\s+/ /gr));
my $took = time - $t0;
my $other = eval { one($fresh, 'SELECT clock FROM capaccess_consume($1, 1)', $others[0]) };
kill 'CONT', $pm;
like($hung, qr/^57014 .*canceling statement due to statement timeout/,
	'a call for a partition that does not answer ends with the proxy\'s statement_timeout');
cmp_ok($took, '<', 6, sprintf('within its 3 s and a little (%.1f s)', $took));
ok(defined $other, 'the same session then calls another partition');
push @{ $calls{3}{ $others[0] } }, { ok => 1, t0 => time, t1 => time, clock => $other };
$calls{3}{$_} //= [] for @all;
check_data('after the partition answered again', 2);

done_testing();
