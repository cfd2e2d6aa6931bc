# Routing through the proxy: 10,000 customers registered through it are
# spread evenly over 4 partitions, each on the one its hash names; every
# function of the API lands where it should, with the partitions' own
# grants and answers.
use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;
use Scaleout;
use Test::More;
use Time::HiRes qw(sleep);

my $n = 4;
start_cluster($n, 6740);
END { stop_cluster() }

my $proxy = db('proxy');
my $admin = db('proxy', 'billing_admin');
my @part = map { db($_) } 0 .. $n - 1;

# --- 10,000 customers through the proxy --------------------------------
is( one($admin, q{SELECT count(*) FROM generate_series(1, 10000) g,
					 LATERAL capaccess_register(g, 1000000, 'standard') r
				   WHERE r.customer_id = g AND r.clock = 0}),
	10000, 'billing_admin registers 10,000 customers through the proxy');

my $total = 0;
for my $k (0 .. $n - 1)
{
	my $count = one($part[$k], 'SELECT count(*) FROM capaccess.customer');
	$total += $count;
	cmp_ok(abs($count - 10000 / $n), '<=', 0.10 * 10000 / $n,
		"partition $k holds $count customers, within 10% of an even share");
	is( one($part[$k], q{SELECT count(*) FROM capaccess.customer
						  WHERE (hashint8(customer_id) & $1) <> $2}, $n - 1, $k),
		0, "every customer on partition $k is one that hashint8(id) & 3 names");
}
# each partition's primary key and the check above: a customer can be on
# one partition only; the total says none was lost or doubled
is($total, 10000, 'the partitions hold 10,000 customers between them');
is( one($proxy, q{SELECT count(*) FROM generate_series(1, 10000) g
				   WHERE capaccess.partition_of(g) <> (hashint8(g) & 3)}),
	0, "the proxy's capaccess.partition_of() computes hashint8(id) & 3 (it counts 4 partitions in the server's options)");

# a customer and the connection to its partition
my $c = 4242;
my $owner = one($proxy, 'SELECT capaccess.partition_of($1)', $c);
my $home = $part[$owner];
my @others = grep { $_ != $owner } 0 .. $n - 1;

sub row_on
{
	my ($k, $id) = @_;
	return join ',',
	  map { $_ // 'null' }
	  $part[$k]->selectrow_array(
		'SELECT used, cap, access, clock FROM capaccess.customer WHERE customer_id = $1',
		undef, $id);
}

# --- each function lands on the owner, with its answer -----------------
my $app = db('proxy', 'app');
is( join(',', $app->selectrow_array('SELECT updated, used, clock FROM capaccess_consume($1, 3)', undef, $c)),
	'1,3,1', 'app consumes through the proxy');
is(row_on($owner, $c), '3,1000000,standard,1', 'the owning partition holds the change');
is(row_on($_, $c), '', "partition $_ does not hold the customer") for @others;

is( join(',', $admin->selectrow_array(q{SELECT updated, used, cap, access, clock
										 FROM capaccess_update($1, 2, 50, 'gold')}, undef, $c)),
	'1,5,50,gold,2', 'capaccess_update(customer_id, ...) through the proxy');
is( one($admin, q{SELECT capaccess_update(jsonb_build_object('customer_id', $1::text),
										   '{"consume": 1}')->>'clock'}, $c),
	3, 'the jsonb form routes a customer_id given as a string');
is( one($admin, q{SELECT capaccess_update(jsonb_build_object('customer_id', $1::bigint),
										   '{"consume": 1}')->>'clock'}, $c),
	4, 'the jsonb form routes a customer_id given as a number');
is(row_on($owner, $c), '7,50,gold,4', 'both jsonb calls landed on the owner');
is( join(',', $admin->selectrow_array('SELECT updated, reason, used FROM capaccess_update($1, 100)', undef, $c)),
	'0,cap_exceeded,7', 'a refusal comes back from the partition as it is');

is( join(',', $admin->selectrow_array('SELECT updated, used, clock FROM capaccess_reset($1)', undef, $c)),
	'1,0,5', 'capaccess_reset through the proxy');
is(row_on($owner, $c), '0,50,gold,5', 'the reset landed on the owner');

my $reader = db('proxy', 'reader');
is( join(',', $reader->selectrow_array('SELECT used, remaining, clock FROM capaccess_peek($1)', undef, $c)),
	'0,50,5', 'reader peeks through the proxy');
is(one($reader, 'SELECT count(*) FROM capaccess_peek(99999999)'), 0,
	'peeking at no customer gives no row');

# errors keep the partition's SQLSTATE and message
sub error_of
{
	my ($dbh, $sql, @bind) = @_;
	eval { $dbh->do($sql, undef, @bind) };
	return ($dbh->state // '') . ' ' . ($@ =~ s/\s+/ /gr);
}
like(error_of($admin, q{SELECT capaccess_update('{"x": 1}'::jsonb, '{"consume": 1}'::jsonb)}),
	qr/^22023 .*invalid key "x" in capaccess_update query/,
	'a query the C function refuses gets its error, SQLSTATE and all');
like(error_of($admin, q{SELECT capaccess_update('{"customer_id": 1.5}'::jsonb, '{"consume": 1}'::jsonb)}),
	qr/^22023 .*customer_id.*expected a whole number/,
	'a customer_id that is not whole gets the C function\'s error');
like(error_of($admin, 'SELECT * FROM capaccess_update(NULL::bigint, 1)'),
	qr/customer_id must not be null/, 'a NULL customer_id gets the C function\'s error');

# privileges: the proxy's grants, then the partition's own
like(error_of($app, 'SELECT * FROM capaccess_update($1, 1)', $c),
	qr/^42501 .*permission denied for function capaccess_update/,
	'app may not call capaccess_update on the proxy');
$proxy->do('GRANT EXECUTE ON FUNCTION capaccess_reset(bigint, bigint) TO app');
like(error_of($app, 'SELECT * FROM capaccess_reset($1)', $c),
	qr/^42501 .*REMOTE ERROR: permission denied for function capaccess_reset/,
	'a grant on the proxy alone is not enough: the partition checks its own');
$proxy->do('REVOKE EXECUTE ON FUNCTION capaccess_reset(bigint, bigint) FROM app');
is(row_on($owner, $c), '0,50,gold,5', 'and nothing changed');

# user mappings: USAGE on the server would let a role map itself to
# another role on the partitions; the proxy's event trigger refuses it
like(error_of($app, q{CREATE USER MAPPING FOR CURRENT_USER SERVER capaccess OPTIONS (user 'postgres')}),
	qr/^42501 .*permission denied to change user mappings in the capaccess proxy database/,
	'a role may not create a user mapping of its own');
is(one($proxy, q{SELECT count(*) FROM pg_user_mappings WHERE srvname = 'capaccess'}), 1,
	'the only mapping is still the PUBLIC one');
like(error_of($app, q{SELECT * FROM capaccess_update(1, 1)}), qr/^42501 /,
	'and app still has only its own rights');

# not atomic with the proxy's transaction: documented, and so tested
$app->begin_work;
$app->do('SELECT * FROM capaccess_consume($1, 1)', undef, $c);
$app->rollback;
is(row_on($owner, $c), '1,50,gold,6',
	'a call through the proxy has committed on its partition even if the proxy transaction rolls back');

# pure functions: any partition answers the same
is( one($proxy, q{SELECT capaccess_fnv1a('capaccess')}),
	one($part[0], q{SELECT capaccess_fnv1a('capaccess')}),
	'capaccess_fnv1a through the proxy');
is( one($proxy, q{SELECT capaccess.state_hash(1, 2, 3, 4, 'x')}),
	one($part[0], q{SELECT capaccess.state_hash(1, 2, 3, 4, 'x')}),
	'capaccess.state_hash through the proxy');

# --- the whole cluster ---------------------------------------------------
my $watcher = db('proxy', 'watcher');
is( join(',', map { $_->[0] } rows($watcher, 'SELECT partition FROM capaccess_stats() ORDER BY 1')),
	'0,1,2,3', 'capaccess_stats() has a row per partition');
is( join(',', map { $_->[0] } rows($watcher, 'SELECT accepted FROM capaccess_stats() ORDER BY partition')),
	join(',', map { one($_, 'SELECT accepted FROM capaccess_stats()') } @part),
	'each row is its partition\'s own');
is( join(',', map { "$_->[0]:$_->[1]" } rows($watcher, 'SELECT partition, accepted FROM capaccess_stats($1)', "{$owner}")),
	"$owner:" . one($part[$owner], 'SELECT accepted FROM capaccess_stats()'),
	'capaccess_stats(partitions) asks only those');
like(error_of($watcher, q{SELECT * FROM capaccess_stats('{1,4}')}),
	qr/^22023 .*capaccess has no partition 4/, 'asking for a partition the cluster does not have is an error');
is( join(',', map { $_->[0] } rows($watcher, q{SELECT partition FROM capaccess_stats('{2,2}')})),
	'2', 'a partition asked for twice answers once');
is( one($watcher, q{SELECT count(DISTINCT partition) FROM capaccess_counters()
					 WHERE counter = 'accepted'}), 4, 'capaccess_counters() has each partition\'s');
is(one($watcher, 'SELECT count(*) FROM capaccess_verify()'), 0, 'capaccess_verify() is empty on every partition');
is( join(',', map { $_->[0] } rows($watcher, 'SELECT partition FROM capaccess_stats_reset()')),
	'0,1,2,3', 'capaccess_stats_reset() resets every partition');
is(one($watcher, 'SELECT sum(accepted) FROM capaccess_stats()'), 0, 'and every partition was reset');

# a gate held on the owner, a call through the proxy queued behind it
my $holder = db($owner);
$holder->begin_work;
my $held = one($holder, 'SELECT clock FROM capaccess_update($1, 1)', $c);
my $waiter = db('proxy', 'app');
# (no bind values: DBD::Pg runs a statement that has them synchronously)
$waiter->do("SELECT clock FROM capaccess_consume($c, 1)", { pg_async => DBD::Pg::PG_ASYNC() });
# (within capaccess.idle_holder_timeout, 10 s, which would end the holder)
ok( wait_until(8, sub { one($watcher, 'SELECT waiters FROM capaccess_gates() WHERE customer_id = $1', $c) }),
	'capaccess_gates() shows the call queued through the proxy');
my ($gp, $hpid, $wpid) = $watcher->selectrow_array(
	'SELECT partition, holder_pid, oldest_waiter_pid FROM capaccess_gates() WHERE customer_id = $1',
	undef, $c);
is($gp, $owner, 'on the owning partition');
is($hpid, one($holder, 'SELECT pg_backend_pid()'), 'held by the direct session');
is( one($watcher, 'SELECT capaccess_blocking_pids($1, $2)::text', $owner, $wpid),
	"{$hpid}", 'capaccess_blocking_pids(partition, pid) names the holder');
# a call cancelled on the proxy (its statement_timeout) leaves the queue
# on the partition too: PL/Proxy cancels the remote statement
my $impatient = db('proxy', 'app');
$impatient->do(q{SET statement_timeout = '1s'});
like(error_of($impatient, 'SELECT * FROM capaccess_consume($1, 1)', $c),
	qr/^57014 .*canceling statement due to statement timeout/,
	'a call queued through the proxy ends with the proxy\'s statement_timeout');
ok( wait_until(5, sub { one($watcher, 'SELECT waiters FROM capaccess_gates() WHERE customer_id = $1', $c) == 1 }),
	'and its remote call left the queue on the partition (one waiter left)');
$holder->commit;
$waiter->pg_result;
is(row_on($owner, $c), '3,50,gold,8', 'the queued call ran after the holder, clock 8');

# --- unregister and reset_all --------------------------------------------
is(one($admin, 'SELECT capaccess_unregister($1)', $c), 1, 'capaccess_unregister through the proxy');
is(row_on($owner, $c), '', 'the row is gone from the owner');
is(one($admin, 'SELECT capaccess_unregister($1)', $c), 0, 'a second unregister finds none');
is(one($admin, 'SELECT capaccess_reset_all(5)'), 9999, 'capaccess_reset_all() sums the partitions\' counts');
is( join(',', map { one($_, 'SELECT count(*) FROM capaccess.customer WHERE used <> 5') } @part),
	'0,0,0,0', 'every partition was reset');
is(one($watcher, 'SELECT count(*) FROM capaccess_verify()'), 0, 'capaccess_verify() is still empty');

done_testing();
