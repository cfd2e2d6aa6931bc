# DDL while one session holds a customer's gate and another waits for it.
#
# Every call locks capaccess.customer before it queues, so ALTER TABLE and
# DROP EXTENSION wait for the holder and the whole queue, and calls that
# come after them wait for them.  Each session ends in a correct result or
# a clear error, and nothing is left held.  ALTER EXTENSION UPDATE from 1.0
# adds a constraint to the table (access_max_length), so it too waits for
# the queue, and calls that come after it wait for it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $node = PostgreSQL::Test::Cluster->new('ddl');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'capaccess'\nlog_statement = none\n");
$node->start;

sub nothing_held
{
	my ($what) = @_;
	is( $node->safe_psql('postgres',
			'SELECT slots_held FROM capaccess_stats()'),
		'0', "$what: no gate is held");
	is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
		'', "$what: capaccess_verify() is empty");
}

# A holder of customer 1's gate and a waiter queued behind it.  The waiter
# made a call before (on customer 2), so its plans are built: what it
# locks before it queues is capaccess_table_open's doing, not planning's.
sub hold_and_queue
{
	my $holder = session($node);
	$holder->query_safe('BEGIN; SELECT clock FROM capaccess_update(1, 1)');
	my $waiter = queue_on_gate($node, 1,
		'DO $$ BEGIN PERFORM capaccess_update(2, 0); END $$; '
		  . 'SELECT clock FROM capaccess_update(1, 1);');
	is( $node->safe_psql(
			'postgres', q{
SELECT string_agg(name, ', ' ORDER BY name)
  FROM (SELECT CASE WHEN l.relation = c.reltoastrelid THEN 'its TOAST table'
					ELSE l.relation::regclass::text END AS name
		  FROM pg_locks l JOIN pg_stat_activity a USING (pid),
			   pg_class c
		 WHERE a.wait_event_type = 'Extension' AND l.mode = 'RowExclusiveLock'
		   AND l.locktype = 'relation'
		   AND c.oid = 'capaccess.customer'::regclass) locks}),
		'capaccess.customer, capaccess.customer_pkey, capaccess.seq, its TOAST table',
		'the waiter holds every lock its UPDATE needs before it queues');
	return ($holder, $waiter);
}

$node->safe_psql('postgres',
	'CREATE EXTENSION capaccess; SELECT capaccess_register(1, 1000), capaccess_register(2, 1000)');

# --- ADD COLUMN ---------------------------------------------------------
{
	my ($holder, $waiter) = hold_and_queue();
	my $ddl = session($node);
	start($ddl,
		"ALTER TABLE capaccess.customer ADD COLUMN note text DEFAULT 'added'");
	ok(waiting_are($node, 'Lock', 1), 'ADD COLUMN waits for the holder and the queue');
	my $late = session($node);
	start($late, 'SELECT clock FROM capaccess_update(1, 1)');
	ok(waiting_are($node, 'Lock', 2), 'a call that comes later waits for ADD COLUMN');
	$holder->query_safe('COMMIT');

	is(outcome($waiter), '2', 'the waiter builds on the commit (clock 2)');
	is(outcome($ddl), '', 'ADD COLUMN is done');
	is(outcome($late), '3', 'the later call works with the new column (clock 3)');
	is( $node->safe_psql('postgres',
			'SELECT used || \'/\' || clock || \'/\' || note FROM capaccess.customer WHERE customer_id = 1'),
		'3/3/added', 'the row: used 3, clock 3, the new column');
	nothing_held('ADD COLUMN');
	$_->quit for ($holder, $waiter, $ddl, $late);
}

# --- DROP EXTENSION -----------------------------------------------------
{
	my ($holder, $waiter) = hold_and_queue();
	my $ddl = session($node);
	start($ddl, 'DROP EXTENSION capaccess');
	ok(waiting_are($node, 'Lock', 1), 'DROP EXTENSION waits for the holder and the queue');
	my $late = session($node);
	start($late, 'SELECT clock FROM capaccess_update(1, 1)');
	ok(waiting_are($node, 'Lock', 2), 'a call that comes later waits for DROP EXTENSION');
	$holder->query_safe('COMMIT');

	is(outcome($waiter), '5', 'the waiter builds on the commit (clock 5)');
	is(outcome($ddl), '', 'DROP EXTENSION is done');
	like(
		outcome($late),
		qr/ERROR:  42P01: relation "capaccess.customer" does not exist/,
		'the later call fails with 42P01');

	$node->safe_psql('postgres', 'CREATE EXTENSION capaccess');
	nothing_held('after CREATE EXTENSION again');
	is( $node->safe_psql('postgres',
			'SELECT clock FROM capaccess_register(1, 1000); SELECT clock FROM capaccess_update(1, 1); SELECT FROM capaccess_register(2, 1000)'
		),
		"0\n1",
		'a new customer 1 starts at clock 0, and a call works');
	$_->quit for ($holder, $waiter, $ddl, $late);
}

# --- ALTER EXTENSION UPDATE from 1.0 ------------------------------------
{
	$node->safe_psql('postgres',
		"DROP EXTENSION capaccess; CREATE EXTENSION capaccess VERSION '1.0'; "
		  . 'SELECT capaccess_register(1, 1000), capaccess_register(2, 1000)');
	my ($holder, $waiter) = hold_and_queue();
	my $ddl = session($node);
	start($ddl, 'ALTER EXTENSION capaccess UPDATE');
	ok(waiting_are($node, 'Lock', 1),
		'ALTER EXTENSION UPDATE waits for the holder and the queue');
	my $late = session($node);
	start($late, 'SELECT clock FROM capaccess_update(1, 1)');
	ok(waiting_are($node, 'Lock', 2),
		'a call that comes later waits for ALTER EXTENSION UPDATE');
	$holder->query_safe('COMMIT');
	is(outcome($waiter), '2', 'the waiter builds on the commit (clock 2)');
	like(outcome($ddl), qr/^$/, 'ALTER EXTENSION UPDATE is done');
	is(outcome($late), '3', 'the later call works after the update (clock 3)');
	is( $node->safe_psql('postgres',
			'SELECT used || \'/\' || clock FROM capaccess_reset(1)'),
		'0/4', 'the new capaccess_reset works on the old row');
	is( $node->safe_psql('postgres',
			"SELECT extversion FROM pg_extension WHERE extname = 'capaccess'"),
		'1.1', 'the extension is at 1.1');
	nothing_held('ALTER EXTENSION UPDATE');
	$_->quit for ($holder, $waiter, $ddl, $late);
}

done_testing();
