# The direct write (src/write.c) under a queue: 32 clients on one customer,
# so that almost every call waits for the gate and then goes to the row
# version the previous holder published.  Afterwards every accepted call
# was written directly, the clocks and hashes add up, the indexes hold
# every version (amcheck), and the updates stayed heap-only with the page
# pruned: without pruning on the way to that version, dead versions fill
# the page and the table grows a page per thousand or so updates.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = 32;
my $per_client = 600;
my $total = $clients * $per_client;

my $node = PostgreSQL::Test::Cluster->new('direct_write');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'capaccess'
max_connections = 100
autovacuum = off
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION capaccess;
CREATE EXTENSION amcheck;
SELECT capaccess_register(1, 1000000000);
});

my $script = $node->basedir . '/hot.pgbench';
open my $fh, '>', $script or die "could not write $script: $!";
print $fh "SELECT * FROM capaccess_update(1, 1);\n";
close $fh;

$node->command_ok(
	[
		'pgbench', '--no-vacuum', '--client' => $clients,
		'--jobs' => 2, '--transactions' => $per_client,
		'--file' => $script, '-p' => $node->port, 'postgres'
	],
	"$clients clients, $per_client calls each, on one customer");

my $counters = $node->safe_psql(
	'postgres', q{
SELECT string_agg(counter || '=' || value, ' ' ORDER BY counter)
  FROM capaccess_counters()
 WHERE counter IN ('accepted', 'direct_writes', 'waits')});
note "counters: $counters";
my %c = map { split /=/ } split / /, $counters;
is($c{accepted}, $total, 'every call was accepted');
is($c{direct_writes}, $total, 'every accepted call was written directly');
cmp_ok($c{waits}, '>', $total / 2, 'most calls waited for the gate');

is( $node->safe_psql(
		'postgres', 'SELECT used, clock FROM capaccess.customer WHERE customer_id = 1'),
	"$total|$total",
	'used and clock count every call');
is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
	'', 'capaccess_verify() is empty');
$node->safe_psql('postgres',
	"SELECT bt_index_check('capaccess.customer_pkey', true)");
pass('amcheck finds every version in the primary key');

my ($upd, $hot, $pages) = split /\|/,
  $node->safe_psql(
	'postgres', q{
SELECT n_tup_upd, n_tup_hot_upd,
       pg_relation_size('capaccess.customer') / current_setting('block_size')::int
  FROM pg_stat_user_tables WHERE relid = 'capaccess.customer'::regclass});
note "updates $upd, heap-only $hot, table pages $pages";
cmp_ok($hot, '>=', 0.99 * $upd, 'the updates stayed heap-only');
cmp_ok($pages, '<=', 4, 'the table did not grow: the page was pruned');

$node->stop;
done_testing();
