# pg_upgrade from an older major version of PostgreSQL to this one, with
# capaccess installed and used in the old cluster.
#
# The old server's binaries are named by CAPACCESS_OLD_PG_CONFIG (for
# example PostgreSQL 15's, when this runs under 17: scripts/test-all).  Both
# servers must have capaccess installed.  The old cluster holds:
#   - database app at the default version, with customers, used units,
#     clocks, a customer at its cap, a scoped customer, and the README's
#     roles with their grants;
#   - database legacy still at 1.0, which pg_upgrade carries over at 1.0
#     and ALTER EXTENSION UPDATE then takes to the default version.
# After the upgrade: the same rows (every column), grants, initial
# privileges and versions; capaccess_verify() empty; and the next call of
# every customer continues its clock with no gap and takes a seq above
# every earlier one, called by the application's role.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# make check-pg-upgrade is the only way here: without an old server, fail
my $old_pg_config = $ENV{CAPACCESS_OLD_PG_CONFIG}
  or BAIL_OUT('CAPACCESS_OLD_PG_CONFIG must name the old server\'s pg_config');
my $old_bindir = `$old_pg_config --bindir`;
chomp $old_bindir;
BAIL_OUT("$old_pg_config --bindir failed") if $? != 0 || !-x "$old_bindir/initdb";
(my $old_install = $old_bindir) =~ s{/bin$}{};

my $old = PostgreSQL::Test::Cluster->new('old', install_path => $old_install);
my $new = PostgreSQL::Test::Cluster->new('new');
my $preload = "shared_preload_libraries = 'capaccess'\n";

$old->init;
$old->append_conf('postgresql.conf', $preload);
$old->start;
my $old_version = $old->safe_psql('postgres', 'SHOW server_version_num');
my $new_version = `pg_config --version`;
chomp $new_version;
note "pg_upgrade from $old_version to $new_version";

$old->safe_psql('postgres', q{
CREATE ROLE app LOGIN;
CREATE ROLE billing_admin LOGIN;
CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
CREATE DATABASE app;
CREATE DATABASE legacy;
});
$old->safe_psql('app', q{
CREATE EXTENSION capaccess;
GRANT EXECUTE ON FUNCTION public.capaccess_consume(bigint, bigint) TO app;
GRANT EXECUTE ON FUNCTION
    public.capaccess_register(bigint, bigint, text),
    public.capaccess_update(bigint, bigint, bigint, text),
    public.capaccess_update(jsonb, jsonb),
    public.capaccess_reset(bigint, bigint)
  TO billing_admin;
GRANT EXECUTE ON FUNCTION public.capaccess_verify() TO watcher;
SELECT capaccess_register(g, 1000, CASE WHEN g % 3 = 0 THEN 'gold' ELSE 'basic' END)
  FROM generate_series(1, 40) g;
SELECT capaccess_register(41, 5);
});
# calls by the application's role: a few per customer, customer 41 to its
# cap and one refusal; then a reset of customer 2
$old->safe_psql(
	'app', q{
SELECT capaccess_consume(g % 40 + 1, g % 7 + 1) FROM generate_series(1, 400) g;
SELECT capaccess_consume(41, 5);
SELECT capaccess_consume(41, 1);
}, extra_params => [ '-U', 'app' ]);
$old->safe_psql('app', 'SELECT capaccess_reset(2, 0)',
	extra_params => [ '-U', 'billing_admin' ]);
$old->safe_psql('legacy', q{
CREATE EXTENSION capaccess VERSION '1.0';
GRANT EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text) TO app;
SELECT capaccess_register(g, 100) FROM generate_series(1, 10) g;
SELECT capaccess_update(g % 10 + 1, 1) FROM generate_series(1, 55) g;
});

# What must survive, described by name, never by OID.  An ACL that is NULL
# stands for its default, and an initial privilege equal to the default
# says nothing: pg_upgrade (through pg_dump) writes neither out, so both
# are compared as the default.
my $rows = 'SELECT customer_id, cap, used, access, clock, seq, state_hash, updated_at '
  . 'FROM capaccess.customer ORDER BY customer_id';
my $grants = q{
SELECT p.oid::regprocedure::text, a.grantee::regrole::text, a.privilege_type
  FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.proname LIKE 'capaccess%' OR p.pronamespace = 'capaccess'::regnamespace
 UNION ALL
SELECT c.oid::regclass::text, a.grantee::regrole::text, a.privilege_type
  FROM pg_class c,
       aclexplode(coalesce(c.relacl,
                           acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                      c.relowner))) a
 WHERE c.relnamespace = 'capaccess'::regnamespace AND c.relkind IN ('r', 'S')
   AND a.privilege_type <> 'MAINTAIN'	-- 17 gives it to every table's owner
 ORDER BY 1, 2, 3};
my $init_privs = q{
SELECT pg_describe_object(i.classoid, i.objoid, i.objsubid), i.privtype, i.initprivs::text
  FROM pg_init_privs i
  LEFT JOIN pg_proc p ON i.classoid = 'pg_proc'::regclass AND p.oid = i.objoid
  LEFT JOIN pg_class c ON i.classoid = 'pg_class'::regclass AND c.oid = i.objoid
 WHERE pg_describe_object(i.classoid, i.objoid, i.objsubid) ~ 'capaccess'
   AND i.initprivs IS DISTINCT FROM
       CASE WHEN p.oid IS NOT NULL THEN acldefault('f', p.proowner)
            WHEN c.relkind = 'S' THEN acldefault('s', c.relowner)
            WHEN c.oid IS NOT NULL AND i.objsubid = 0 THEN acldefault('r', c.relowner)
       END
 ORDER BY 1};
my $version = "SELECT extversion FROM pg_extension WHERE extname = 'capaccess'";
my $max_seq = 'SELECT max(seq) FROM capaccess.customer';

my %before;
for my $db ('app', 'legacy')
{
	for my $q ($rows, $grants, $init_privs, $version, $max_seq)
	{
		$before{$db}{$q} = $old->safe_psql($db, $q);
	}
}
isnt($before{app}{$rows}, '', 'the old cluster holds customers');
is($before{legacy}{$version}, '1.0', 'database legacy is at 1.0');
$old->stop;

# initdb enables data checksums from 18 on; pg_upgrade needs the old
# cluster's setting
$new->init(
	extra => ($new->pg_version >= 18 ? ['--no-data-checksums'] : []));
$new->append_conf('postgresql.conf', $preload);

my @upgrade = (
	'pg_upgrade', '--no-sync',
	'-d', $old->data_dir, '-D', $new->data_dir,
	'-b', $old_bindir, '-B', $new->config_data('--bindir'),
	'-s', $new->host, '-p', $old->port, '-P', $new->port);
command_ok([ @upgrade, '--check' ], 'pg_upgrade --check');
command_ok(\@upgrade, 'pg_upgrade');

$new->start;
cmp_ok($new->safe_psql('postgres', 'SHOW server_version_num'),
	'>', $old_version, 'the new cluster runs the newer server');

for my $db ('app', 'legacy')
{
	is($new->safe_psql($db, $rows), $before{$db}{$rows},
		"$db: every row, every column, unchanged");
	is($new->safe_psql($db, $grants), $before{$db}{$grants},
		"$db: the grants on the functions, the table and the sequence");
	is($new->safe_psql($db, $init_privs), $before{$db}{$init_privs},
		"$db: pg_init_privs of the extension's objects");
	is($new->safe_psql($db, $version), $before{$db}{$version},
		"$db: the extension's version is kept ($before{$db}{$version})");
	is($new->safe_psql($db, 'SELECT * FROM capaccess_verify()'),
		'', "$db: capaccess_verify() is empty after pg_upgrade");
}

# database legacy: from 1.0 to the default version, in the new cluster
$new->safe_psql('legacy', 'ALTER EXTENSION capaccess UPDATE');
is($new->safe_psql('legacy', $rows), $before{legacy}{$rows},
	'legacy: ALTER EXTENSION UPDATE keeps every row');
is($new->safe_psql('legacy', 'SELECT * FROM capaccess_verify()'),
	'', 'legacy: capaccess_verify() is empty after the update');
is($new->safe_psql('legacy', $init_privs), $new->safe_psql('app', $init_privs),
	"legacy: after the update, the initial privileges are those of app's install of 1.1, the grant made at 1.0 not among them"
);
like($new->safe_psql('legacy', $grants),
	qr/^capaccess_update\(bigint,bigint,bigint,text\)\|app\|EXECUTE$/m,
	'legacy: and the grant made at 1.0 is kept');

# The next call of every customer, by the application's role: the clock
# goes on by one, the seq is above every seq the old cluster handed out,
# and the seqs of the new calls rise with the calls.
my $next = $new->safe_psql(
	'app', q{
SELECT string_agg(format('%s:%s:%s:%s', g, updated, clock, seq), ' '
                  ORDER BY g)
  FROM generate_series(1, 40) g, capaccess_consume(g, 1)},
	extra_params => [ '-U', 'app' ]);
my %old_clock = map { (split /\|/)[0] => (split /\|/)[4] }
  split /\n/, $before{app}{$rows};
my @calls = split / /, $next;
is(scalar(@calls), 40, 'app: 40 customers called');
my ($gaps, $refused, $low, $prev) = (0, 0, 0, 0);
for my $call (@calls)
{
	my ($id, $updated, $clock, $seq) = split /:/, $call;
	$refused++ if $updated ne 't';
	$gaps++ if $clock != $old_clock{$id} + 1;
	$low++ if $seq <= $before{app}{$max_seq} || $seq <= $prev;
	$prev = $seq;
}
is($refused, 0, 'app: the next call of each of 40 customers is accepted');
is($gaps, 0, 'app: each clock continues from the upgraded row with no gap');
is($low, 0,
	'app: each new seq is above every seq of the old cluster, and rising');
is( $new->safe_psql(
		'app', 'SELECT updated, reason FROM capaccess_consume(41, 1)',
		extra_params => [ '-U', 'app' ]),
	'f|cap_exceeded',
	'app: customer 41 is still at its cap');
is( $new->safe_psql(
		'app', 'SELECT customer_id, cap, used, clock FROM capaccess_register(42, 10)',
		extra_params => [ '-U', 'billing_admin' ]),
	'42|10|0|0', 'app: the administrator role registers a customer');
is($new->safe_psql('app', 'SELECT count(*) FROM capaccess_verify()',
		extra_params => [ '-U', 'watcher' ]),
	'0', 'app: capaccess_verify() by the monitoring role is empty after the calls');
my $legacy_next = $new->safe_psql('legacy',
	'SELECT clock, seq FROM capaccess_update(1, 1)', extra_params => [ '-U', 'app' ]);
my ($lclock, $lseq) = split /\|/, $legacy_next;
my ($lold_clock) = map { (split /\|/)[4] } grep { /^1\|/ } split /\n/,
  $before{legacy}{$rows};
is($lclock, $lold_clock + 1, 'legacy: the next call continues the clock');
cmp_ok($lseq, '>', $before{legacy}{$max_seq},
	'legacy: and takes a seq above every earlier one');

$new->stop;
done_testing();
