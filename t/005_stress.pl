# Stress: 64 clients for 30 seconds on 10 customers.  About a fifth of the
# transactions roll back, or roll back to a savepoint; every call logs its
# result in a side table in the same transaction, so the log holds exactly
# the committed calls.  Afterwards, for each customer, used equals the sum
# of the committed consumes, the committed clocks are exactly 1..N, and
# capaccess_verify() is empty.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = $ENV{CAPACCESS_STRESS_CLIENTS} // 64;
my $seconds = $ENV{CAPACCESS_STRESS_SECONDS} // 30;

my $node = PostgreSQL::Test::Cluster->new('stress');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
max_connections = 200
log_statement = none
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION capaccess;
-- customers 1..8 have room; 9 and 10 run into their caps, so refusals
-- (most answered from the cache) mix with accepted updates
SELECT capaccess_register(i, CASE WHEN i <= 8 THEN 1000000000 ELSE 200 END)
  FROM generate_series(1, 10) i;
CREATE TABLE stress_log (customer_id bigint, consume bigint,
						 updated boolean, clock bigint);
});

my $log = q{INSERT INTO stress_log SELECT :c, :n, r.updated, r.clock
			   FROM capaccess_update(:c, :n) r;};
my $pick = q{\set c random(1, 10)
\set n random(-1, 3)
\set d random(1, 10)
};
# the second customer of a transaction is never below the first, so these
# transactions cannot deadlock with each other
my $second = q{\set c2 :c + random(0, 10 - :c)
\set n2 random(0, 2)
};
(my $log2 = $log) =~ s/:c\b/:c2/g;
$log2 =~ s/:n\b/:n2/g;

$node->pgbench(
	"--no-vacuum --client=$clients --jobs=4 --time=$seconds",
	0,
	[qr{processed: \d+}, qr{number of failed transactions: 0 }],
	[qr{^$}],
	'pgbench: commits, rollbacks and savepoints on 10 customers',
	{
		# 80%: commit one or two calls
		'005_commit@8' => "$pick$second BEGIN; $log $log2 COMMIT;",
		# 10%: roll back
		'005_rollback@1' => "$pick BEGIN; $log ROLLBACK;",
		# 10%: keep the first call, roll back the second to a savepoint
		'005_savepoint@1' =>
		  "$pick$second BEGIN; $log SAVEPOINT s; $log2 ROLLBACK TO SAVEPOINT s; COMMIT;",
	});

my $committed = $node->safe_psql('postgres',
	'SELECT count(*) FROM stress_log WHERE updated');
note "committed accepted calls: $committed";
cmp_ok($committed, '>', 1000, 'the run committed a good number of updates');

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM capaccess.customer c
  LEFT JOIN (SELECT customer_id, sum(consume) AS s FROM stress_log
			  WHERE updated GROUP BY 1) l USING (customer_id)
 WHERE c.used <> coalesce(l.s, 0)}),
	'0',
	'for every customer, used = the sum of the committed consumes');

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM capaccess.customer c
  LEFT JOIN (SELECT customer_id, count(*) AS n, count(DISTINCT clock) AS d,
					min(clock) AS lo, max(clock) AS hi
			   FROM stress_log WHERE updated GROUP BY 1) l USING (customer_id)
 WHERE NOT (c.clock = coalesce(l.n, 0) AND coalesce(l.d, 0) = coalesce(l.n, 0)
			AND coalesce(l.lo, 1) = 1 AND coalesce(l.hi, 0) = c.clock)}),
	'0',
	'for every customer, the committed clocks are exactly 1..N');

cmp_ok($node->safe_psql('postgres',
		'SELECT count(*) FROM stress_log WHERE NOT updated'),
	'>', 0, 'refusals happened too');
is($node->safe_psql('postgres', 'SELECT count(*) FROM capaccess_verify()'),
	'0', 'capaccess_verify() is empty');
is($node->safe_psql('postgres', 'SELECT slots_held FROM capaccess_stats()'),
	'0', 'no gate is left held');
cmp_ok($node->safe_psql('postgres', 'SELECT waits FROM capaccess_stats()'),
	'>', 0, 'clients did queue on gates');

$node->stop;
done_testing();
