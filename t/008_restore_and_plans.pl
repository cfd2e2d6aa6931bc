# Loading a dump, and the caller's search_path.
#
# A restore writes capaccess.customer without capaccess's functions.  The
# cache names the row version it was read from, so after a data-only
# restore it is stale, never wrong: a customer the cache says is at its cap
# is accepted again from the restored row, and its clock goes on from the
# restored one.  A full restore into a new database continues the dumped
# clocks.
#
# capaccess plans its UPDATEs once, with search_path pinned to
# pg_catalog, pg_temp.  A caller that changes its search_path before every
# call must not make them be planned again (1.0 planned on every call);
# pg_stat_statements counts the plans.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('restore');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'capaccess'\nlog_statement = none\n");
$node->start;

sub stat_of
{
	my ($counter) = @_;
	return $node->safe_psql('postgres',
		"SELECT value FROM capaccess_counters() WHERE counter = '$counter'");
}

# customer_id|used|clock of every row
sub rows_of
{
	my ($db) = @_;
	return $node->safe_psql($db,
		'SELECT customer_id, used, clock FROM capaccess.customer ORDER BY 1');
}

# --- the dump ----------------------------------------------------------------
# Customer 2 (cap 1) consumes and is refunded, so the dump holds it at
# used 0, clock 2.
$node->safe_psql('postgres', q{
CREATE EXTENSION capaccess;
SELECT capaccess_register(1, 100);
SELECT capaccess_register(2, 1);
SELECT capaccess_update(1, 7);
SELECT capaccess_update(2, 1);
SELECT capaccess_update(2, -1);
CREATE ROLE restore_app LOGIN;
GRANT EXECUTE ON FUNCTION capaccess_consume(bigint, bigint) TO restore_app;
});
my $all_columns = 'SELECT customer_id, cap, used, access, clock, seq, state_hash, updated_at '
  . 'FROM capaccess.customer ORDER BY 1';
my $grants = q{
SELECT p.oid::regprocedure, a.grantee::regrole, a.privilege_type
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.proname LIKE 'capaccess%' ORDER BY 1, 2};
my $dumped_rows = $node->safe_psql('postgres', $all_columns);
my $dumped_grants = $node->safe_psql('postgres', $grants);
my $dumped_seq =
  $node->safe_psql('postgres', 'SELECT max(seq) FROM capaccess.customer');
my $dump = PostgreSQL::Test::Utils::tempdir . '/capaccess.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump -Fc');

# After the dump, customer 2 uses up its cap (clock 5), and the next call
# is refused from the cache, without queueing.
$node->safe_psql('postgres', q{
SELECT capaccess_update(2, 1);
SELECT capaccess_update(2, -1);
SELECT capaccess_update(2, 1);
});
my $fast = stat_of('fast_rejected');
is( $node->safe_psql('postgres',
		'SELECT updated, reason, used, clock FROM capaccess_update(2, 1)'),
	'f|cap_exceeded|1|5',
	'customer 2 at its cap: refused with cap_exceeded');
is(stat_of('fast_rejected'), $fast + 1, 'the refusal came from the cache');
# seq values are handed out in increasing order, so the highest one in
# the table is the highest handed out so far (the sequence itself may be
# up to a block ahead: src/seq.c)
my $seq_before_restore =
  $node->safe_psql('postgres', 'SELECT max(seq) FROM capaccess.customer');

# --- data-only restore into the same database --------------------------------
# As an administrator would: empty the table, then load its dumped rows.
# The table is a configuration table of the extension, so the dump has its
# data, and a SEQUENCE SET of capaccess.seq.  --table=customer selects only
# the rows (--schema=capaccess alone would set capaccess.seq back too, and
# seq values would be handed out again); --schema keeps a table of that
# name elsewhere out.  The table has no triggers; --disable-triggers is the
# administrator's habit for data-only restores, and harmless.
$node->safe_psql('postgres', 'TRUNCATE capaccess.customer');
$node->command_ok(
	[
		'pg_restore', '--data-only', '--disable-triggers',
		'--schema=capaccess', '--table=customer',
		'-d', $node->connstr('postgres'), $dump
	],
	'pg_restore --data-only of capaccess.customer');
is(rows_of('postgres'), "1|7|1\n2|0|2", 'the table holds the dumped rows');

# The cache still says customer 2 is at its cap, but it names a row
# version that is gone: the call goes to the table and is accepted.
my $stale = stat_of('stale_caches');
is( $node->safe_psql('postgres',
		'SELECT updated, used, clock FROM capaccess_update(2, 1)'),
	't|1|3',
	'after the restore customer 2 is accepted: used 1, clock restored 2 + 1');
is(stat_of('stale_caches'), $stale + 1, 'the cache was seen to be stale');
cmp_ok(
	$node->safe_psql('postgres',
		'SELECT seq FROM capaccess.customer WHERE customer_id = 2'),
	'>', $seq_before_restore,
	'capaccess.seq was not set back: the new seq is above every earlier one');
is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
	'', 'capaccess_verify() is empty after the data-only restore');

# --- full restore into a new database -----------------------------------------
$node->command_ok([ 'createdb', 'restored' ], 'createdb restored');
$node->command_ok(
	[ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
	'pg_restore of the whole dump into a new database');
is(rows_of('restored'), "1|7|1\n2|0|2", 'restored: the dumped rows');
is($node->safe_psql('restored', $all_columns),
	$dumped_rows, 'restored: every column of every row as dumped');
is($node->safe_psql('restored', $grants),
	$dumped_grants, 'restored: the grants on the functions as dumped');
is( $node->safe_psql(
		'restored', 'SELECT updated, clock FROM capaccess_consume(1, 1)',
		extra_params => [ '-U', 'restore_app' ]),
	't|2',
	'restored: the application role calls, and the clock continues');
is( $node->safe_psql('restored',
		'SELECT used, clock FROM capaccess_update(1, 1); '
		  . 'SELECT used, clock FROM capaccess_update(2, 1)'),
	"9|3\n1|3",
	'restored: calls are accepted and continue the dumped clocks');
cmp_ok(
	$node->safe_psql('restored', 'SELECT min(seq) FROM capaccess.customer'),
	'>', $dumped_seq,
	'restored: capaccess.seq continues above the dumped values');
is($node->safe_psql('restored', 'SELECT * FROM capaccess_verify()'),
	'', 'restored: capaccess_verify() is empty');

# --- the caller's search_path does not make the UPDATE be planned again ----
# Autovacuum is off: an ANALYZE of the table would rightly invalidate the
# plans, and this part counts them.
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'capaccess,pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_planning = on
autovacuum = off
});
$node->restart;
$node->safe_psql('postgres', 'CREATE DATABASE plans');
$node->safe_psql('plans', q{
CREATE EXTENSION capaccess;
CREATE EXTENSION pg_stat_statements;
CREATE SCHEMA a;
CREATE SCHEMA b;
SELECT capaccess_register(1, 1000000);
});

# One session: 1000 calls, each after a change of search_path, writing
# through the UPDATE (the direct write runs no statement).  Its first call
# builds the generic plan of each of the three forms of the UPDATE (by key,
# by ctid, capaccess_reset's) before it queues; no call after that plans.
my $script =
  "SET capaccess.direct_write = off;\nSELECT pg_stat_statements_reset();\n";
for my $i (1 .. 1000)
{
	$script .= 'SET search_path = ' . ($i % 2 ? 'a' : 'b') . ", public;\n"
	  . "SELECT FROM capaccess_update(1, 1);\n";
}
$node->safe_psql('plans', $script);
my ($plans, $calls) = split /\|/,
  $node->safe_psql('plans', q{
SELECT sum(plans), sum(calls) FROM pg_stat_statements
 WHERE query LIKE 'UPDATE capaccess.customer%'});
is($calls, 1000, 'the UPDATE ran once per call');
cmp_ok($plans, '<=', 3,
	'the search_path changes did not make it be planned again');

done_testing();
