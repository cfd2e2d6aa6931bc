# The extension updated from 1.0 in place, against a fresh install of the
# default version: the same member objects, signatures, function
# properties, privileges (and the initial privileges pg_dump relies on,
# pg_init_privs), comments, columns and constraints.  The updated database
# also keeps its rows and grants, and capaccess_verify() is empty there.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade_catalog');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'capaccess'\n");
$node->start;

$node->safe_psql('postgres', 'CREATE ROLE app');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE updated');
$node->safe_psql('fresh', 'CREATE EXTENSION capaccess');
# Grants on every object of 1.0, as administrators make them: the update
# must not record them as the extension's initial privileges.
my @grants_on_1_0 = (
	'EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text),
		capaccess_register(bigint, bigint, text), capaccess_update(jsonb, jsonb),
		capaccess_fnv1a(bytea), capaccess_stats(), capaccess_verify(),
		capaccess.state_hash(bigint, bigint, bigint, bigint, text)',
	'USAGE ON SCHEMA capaccess',
	'SELECT ON capaccess.customer',
	'SELECT ON SEQUENCE capaccess.seq');
$node->safe_psql('updated', "CREATE EXTENSION capaccess VERSION '1.0';\n"
	  . join('', map { "GRANT $_ TO app;\n" } @grants_on_1_0));
$node->safe_psql(
	'updated', q{
SELECT capaccess_register(g, 100, 'basic') FROM generate_series(1, 20) g;
SELECT capaccess_update(g % 20 + 1, 1) FROM generate_series(1, 200) g;
});
my $rows_before = $node->safe_psql('updated',
	'SELECT customer_id, cap, used, access, clock, seq, state_hash FROM capaccess.customer ORDER BY 1'
);
$node->safe_psql('updated', 'ALTER EXTENSION capaccess UPDATE');

is( $node->safe_psql('updated',
		"SELECT extversion FROM pg_extension WHERE extname = 'capaccess'"),
	$node->safe_psql('fresh',
		"SELECT extversion FROM pg_extension WHERE extname = 'capaccess'"),
	'both are at the default version');

# Each query describes one aspect of the extension, by name, never by OID.
# A NULL ACL is shown as the default it stands for: a GRANT and its REVOKE
# leave the default written out.
my $members = q{
  SELECT d.objid FROM pg_depend d
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'capaccess')};
my %aspects = (
	'member objects' => qq{
	  SELECT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d
	   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'capaccess')
	   ORDER BY 1},
	'functions: signature, result, properties, privileges, comment' => qq{
	  SELECT p.oid::regprocedure, pg_get_function_result(p.oid), p.provolatile,
	         p.proparallel, p.proisstrict, p.prosecdef, p.prorows, p.procost,
	         coalesce(p.proacl, acldefault('f', p.proowner)),
	         obj_description(p.oid, 'pg_proc')
	    FROM pg_proc p WHERE p.oid IN ($members) ORDER BY p.oid::regprocedure::text},
	'relations: kind, privileges, comment' => qq{
	  SELECT c.oid::regclass, c.relkind,
	         coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
	                                       c.relowner)),
	         obj_description(c.oid, 'pg_class')
	    FROM pg_class c WHERE c.oid IN ($members) ORDER BY c.oid::regclass::text},
	'columns of capaccess.customer' => q{
	  SELECT attnum, attname, format_type(atttypid, atttypmod), attnotnull,
	         pg_get_expr(d.adbin, d.adrelid), col_description(attrelid, attnum)
	    FROM pg_attribute a LEFT JOIN pg_attrdef d ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum)
	   WHERE attrelid = 'capaccess.customer'::regclass AND attnum > 0 AND NOT attisdropped
	   ORDER BY attnum},
	'constraints of capaccess.customer' => q{
	  SELECT conname, pg_get_constraintdef(oid), convalidated
	    FROM pg_constraint WHERE conrelid = 'capaccess.customer'::regclass ORDER BY 1},
	'initial privileges (pg_init_privs)' => q{
	  SELECT CASE i.classoid WHEN 'pg_proc'::regclass THEN i.objoid::regprocedure::text
	                         WHEN 'pg_class'::regclass THEN i.objoid::regclass::text
	                         ELSE i.classoid::regclass::text END,
	         i.objsubid, i.privtype, i.initprivs
	    FROM pg_init_privs i
	   WHERE (i.classoid = 'pg_proc'::regclass
	          AND i.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace IN
	                           ('public'::regnamespace, 'capaccess'::regnamespace)))
	      OR (i.classoid = 'pg_class'::regclass
	          AND i.objoid IN (SELECT oid FROM pg_class
	                            WHERE relnamespace = 'capaccess'::regnamespace))
	      OR (i.classoid = 'pg_namespace'::regclass
	          AND i.objoid = 'capaccess'::regnamespace)
	   ORDER BY 1, 2},
	'schema capaccess: privileges, comment' => q{
	  SELECT coalesce(nspacl, acldefault('n', nspowner)),
	         obj_description(oid, 'pg_namespace')
	    FROM pg_namespace WHERE nspname = 'capaccess'},
);

# the application's grant is kept, on top of the extension's own
like(
	$node->safe_psql(
		'updated', q{
SELECT proacl FROM pg_proc
 WHERE oid = 'capaccess_update(bigint, bigint, bigint, text)'::regprocedure}),
	qr/app=X/,
	'the grant made at 1.0 is kept');

# and once they are revoked again, the privileges are the fresh
# install's, and so are the initial privileges: the update recorded none of
# the grants made at 1.0 as the extension's own (pg_dump would leave them
# out of every dump)
$node->safe_psql('updated',
	join('', map { "REVOKE $_ FROM app;\n" } @grants_on_1_0));

for my $aspect (sort keys %aspects)
{
	my $fresh = $node->safe_psql('fresh', $aspects{$aspect});
	my $updated = $node->safe_psql('updated', $aspects{$aspect});
	isnt($fresh, '', "$aspect: the fresh install has some");
	is($updated, $fresh, "$aspect: the same after ALTER EXTENSION UPDATE");
}

is( $node->safe_psql('updated',
		'SELECT customer_id, cap, used, access, clock, seq, state_hash FROM capaccess.customer ORDER BY 1'
	),
	$rows_before,
	'the rows are unchanged by the update');
is($node->safe_psql('updated', 'SELECT count(*) FROM capaccess_verify()'),
	'0', 'capaccess_verify() is empty after the update');
is( $node->safe_psql(
		'updated', 'SELECT updated, clock FROM capaccess_update(1, 1)'),
	't|11',
	'the next update continues the clock with no gap');

$node->stop;
done_testing();
