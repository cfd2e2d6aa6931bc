# Decoys on the search_path of a caller that waits for a gate.
#
# sql/attack.sql shows that an application role's decoys (functions,
# operators and tables named like what capaccess's statements use, put
# first on its search_path) are never run by a call that goes straight
# through.  A call that queues is different: it sleeps on the gate, and
# after the hand-off it runs its UPDATE, or the SELECT that explains a
# refusal, in the middle of whatever the caller had set.  This test makes
# an application role without superuser wait behind a holder, with a
# hostile search_path, and proves that after the wait:
#
#   1. an accepted call returns the right used and clock, from the right
#      row, and no decoy ran;
#   2. a call refused after the wait (the holder used up the cap) reports
#      cap_exceeded with the holder's committed state, and no decoy ran;
#   3. the same holds for a call made from a function of the attacker's
#      that carries its own SET search_path;
#   4. a role that is only a member of pg_monitor sees the waiter and its
#      holder through capaccess_gates() and capaccess_blocking_pids().
#
# Each decoy logs its call into a table the attacker owns, and raises a
# warning.  The decoys are shown to be live first: they capture the
# attacker's own unqualified query.  A trigger the superuser puts on
# capaccess.customer records the search_path and the user of every row
# written, so the test fails if any of capaccess's statements ran under the
# caller's search_path or as the caller, even a fully qualified one.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $node = PostgreSQL::Test::Cluster->new('attack_waiter');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'capaccess'\nlog_statement = none\n");
$node->start;

my $su = $node->safe_psql('postgres', 'SELECT current_user');

# The setup, as the superuser: the extension, the roles, two customers and
# the probe.
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION capaccess;
CREATE ROLE app_role LOGIN;
CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
GRANT EXECUTE ON FUNCTION capaccess_consume(bigint, bigint) TO app_role;
CREATE SCHEMA atk AUTHORIZATION app_role;
SELECT count(capaccess_register(i, cap)) FROM (VALUES (1, 100), (2, 5)) v(i, cap);
CREATE TABLE probe (who name, search_path text, run_as name, op text);
CREATE FUNCTION probe_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.probe
		VALUES (session_user, pg_catalog.current_setting('search_path'),
				current_user, TG_OP);
	RETURN NULL;
END
$$;
CREATE TRIGGER probe AFTER INSERT OR UPDATE OR DELETE ON capaccess.customer
	FOR EACH ROW EXECUTE FUNCTION probe_row();
});

# The application role's decoys, created in its own session, in the schema
# it owns.
my @as_app = (extra_params => [ '-U', 'app_role' ]);
$node->safe_psql(
	'postgres', q{
CREATE TABLE atk.decoy_calls (decoy text, run_as name);
GRANT USAGE ON SCHEMA atk TO PUBLIC;
GRANT INSERT ON atk.decoy_calls TO PUBLIC;
CREATE FUNCTION atk.logged(decoy text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO atk.decoy_calls VALUES (decoy, current_user);
	RAISE WARNING 'decoy % ran as %', decoy, current_user;
END
$$;
CREATE FUNCTION atk.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('nextval(regclass)'); RETURN 42; END $$;
CREATE FUNCTION atk.nextval(text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('nextval(text)'); RETURN 42; END $$;
CREATE FUNCTION atk.state_hash(bigint, bigint, bigint, bigint, text) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM atk.logged('state_hash'); RETURN 0; END $$;
CREATE FUNCTION atk.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION atk."coalesce"(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('coalesce(bigint)'); RETURN 1000000; END $$;
CREATE FUNCTION atk."coalesce"(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('coalesce(text)'); RETURN 'platinum'; END $$;
CREATE FUNCTION atk.plus(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('+(bigint,bigint)'); RETURN 0; END $$;
CREATE FUNCTION atk.plus4(bigint, integer) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('+(bigint,integer)'); RETURN 0; END $$;
CREATE FUNCTION atk.always(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('comparison(bigint,bigint)'); RETURN true; END $$;
CREATE FUNCTION atk.always_tid(tid, tid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM atk.logged('=(tid,tid)'); RETURN true; END $$;
CREATE OPERATOR atk.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk.plus);
CREATE OPERATOR atk.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = atk.plus4);
CREATE OPERATOR atk.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk.always);
CREATE OPERATOR atk.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk.always);
CREATE OPERATOR atk.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk.always);
CREATE OPERATOR atk.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk.always);
CREATE OPERATOR atk.<> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk.always);
CREATE OPERATOR atk.= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = atk.always_tid);
CREATE TABLE atk.customer (customer_id bigint, cap bigint, used bigint,
	access text, clock bigint, seq bigint, state_hash bigint, updated_at timestamptz);
INSERT INTO atk.customer VALUES (1, 1000000, 0, 'platinum', 0, NULL, 0, NULL),
	(2, 1000000, 0, 'platinum', 0, NULL, 0, NULL);
CREATE TABLE atk.seq (last_value bigint);
INSERT INTO atk.seq VALUES (42);
GRANT ALL ON atk.customer, atk.seq TO PUBLIC;
CREATE FUNCTION atk.consume_via(id bigint, n bigint) RETURNS text
	LANGUAGE plpgsql SET search_path = atk, pg_temp, public, pg_catalog AS $$
DECLARE r record;
BEGIN
	SELECT * INTO r FROM public.capaccess_consume(id, n);
	RETURN pg_catalog.concat_ws('|', r.updated, r.reason, r.used, r.cap,
								r.access, r.clock);
END
$$;
}, @as_app);

my $hostile = 'atk, pg_temp, public, pg_catalog';

sub decoy_calls
{
	return $node->safe_psql('postgres',
		'SELECT count(*) FROM atk.decoy_calls');
}

# The decoys are live: they capture the attacker's own unqualified query.
is( $node->safe_psql(
		'postgres', qq{
SET search_path = $hostile;
BEGIN;
SELECT 2::bigint + 2::bigint, 1::bigint = 2::bigint, nextval('capaccess.seq');
ROLLBACK;
}, @as_app),
	'0|t|42',
	'the decoys capture an unqualified query under the hostile search_path');
is(decoy_calls(), '0', 'and their log starts empty');

# A session of the application role with the hostile search_path, and
# pg_temp decoys of its own.
sub app_session
{
	my ($path) = @_;
	my $s = $node->background_psql(
		'postgres',
		on_error_stop => 0,
		extra_params => [ '-U', 'app_role' ]);
	$s->query_safe(
		q{CREATE TEMP TABLE customer (LIKE atk.customer);
INSERT INTO customer SELECT * FROM atk.customer;
CREATE TEMP TABLE seq (last_value bigint);
INSERT INTO seq VALUES (42);});
	$s->query_safe("SET search_path = $path");
	$s->{stderr} = '';
	return $s;
}

# What a statement started with start() returned, and anything it printed
# on stderr (a decoy's warning, an error).
sub finish_statement
{
	my ($s) = @_;
	my $out = $s->query('SELECT 1');
	my $err = $s->{stderr};
	$s->{stderr} = '';
	$out =~ s/\n?1$//;
	return ($out, $err);
}

# The holder, a superuser session that keeps customer $id's gate in an
# open transaction.
sub hold
{
	my ($id, $consume) = @_;
	my $h = session($node);
	my $pid = $h->query_safe('SELECT pg_backend_pid()');
	$h->query_safe("BEGIN; SELECT clock FROM capaccess_update($id, $consume)");
	return ($h, $pid);
}

# The watcher (pg_monitor only) sees the waiter queued behind the holder.
sub watcher_sees
{
	my ($id, $holder_pid, $waiter_pid, $what) = @_;
	is( $node->safe_psql(
			'postgres', qq{
SELECT holder_pid = $holder_pid, waiters, oldest_waiter_pid = $waiter_pid,
	   capaccess_blocking_pids($waiter_pid) = ARRAY[$holder_pid]
  FROM capaccess_gates() WHERE customer_id = $id
}, extra_params => [ '-U', 'watcher' ]),
		't|1|t|t',
		"$what: a pg_monitor member sees the waiter and its holder");
}

sub waiter_is_app_role
{
	my ($pid, $what) = @_;
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT usename = 'app_role' AND wait_event_type = 'Extension'
  FROM pg_stat_activity WHERE pid = $pid
}), "$what: the application role waits on the gate");
}

# --- 1. accepted after the wait ---------------------------------------------
{
	my ($h, $hpid) = hold(1, 1);
	my $w = app_session($hostile);
	my $wpid = $w->query_safe('SELECT pg_backend_pid()');
	start($w,
		'SELECT updated, reason, used, cap, access, clock, seq IS NOT NULL FROM capaccess_consume(1, 1)'
	);
	waiter_is_app_role($wpid, 'accepted');
	watcher_sees(1, $hpid, $wpid, 'accepted');
	$h->query_safe('COMMIT');
	my ($out, $err) = finish_statement($w);
	is($out, 't||2|100|none|2|t',
		'accepted after the wait: used and clock follow the holder\'s commit');
	is($err, '', 'accepted after the wait: no warning, no error');
	is($w->query_safe('SHOW search_path'),
		$hostile, 'the caller\'s search_path is in force again');
	is(decoy_calls(), '0', 'accepted after the wait: no decoy ran');
	$w->quit;
	$h->quit;
}

# --- 2. refused after the wait ------------------------------------------------
# Customer 2 has a cap of 5.  The holder uses all of it; the committed state
# the waiter's cache sees allows one more unit, so it queues, and only the
# row it reads after the hand-off refuses it.  pg_temp first on the path,
# and custom plans forced.
{
	my ($h, $hpid) = hold(2, 5);
	my $w = app_session('pg_temp, atk, public, pg_catalog');
	$w->query_safe('SET plan_cache_mode = force_custom_plan');
	my $wpid = $w->query_safe('SELECT pg_backend_pid()');
	start($w,
		'SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(2, 1)'
	);
	waiter_is_app_role($wpid, 'refused');
	watcher_sees(2, $hpid, $wpid, 'refused');
	$h->query_safe('COMMIT');
	my ($out, $err) = finish_statement($w);
	is($out, 'f|cap_exceeded|5|5|none|1',
		'refused after the wait: cap_exceeded, with the holder\'s committed state');
	is($err, '', 'refused after the wait: no warning, no error');
	is(decoy_calls(), '0', 'refused after the wait: no decoy ran');

	# and a refund, which the same session makes next, without waiting
	is( $w->query_safe(
			'SELECT updated, reason, used, clock FROM capaccess_consume(2, -6)'),
		'f|below_zero|5|1',
		'a refund below zero is refused');
	$w->quit;
	$h->quit;
}

# --- 3. from the attacker's function, inside its transaction ----------------
{
	my ($h, $hpid) = hold(1, 1);
	my $w = app_session($hostile);
	my $wpid = $w->query_safe('SELECT pg_backend_pid()');
	$w->query_safe('BEGIN; SET LOCAL search_path = atk, pg_temp, pg_catalog, public');
	start($w, 'SELECT atk.consume_via(1, 2)');
	waiter_is_app_role($wpid, 'in a function');
	$h->query_safe('COMMIT');
	my ($out, $err) = finish_statement($w);
	# (concat_ws leaves out the null reason)
	is($out, 't|5|100|none|4',
		'from the attacker\'s function: used and clock after the holder\'s');
	is($err, '', 'from the attacker\'s function: no warning, no error');
	$w->query_safe('COMMIT');
	$w->quit;
	$h->quit;
}

# --- the checks -------------------------------------------------------------
is(decoy_calls(), '0', 'no decoy ever ran');
is( $node->safe_psql(
		'postgres',
		'SELECT customer_id, cap, used, access, clock FROM capaccess.customer ORDER BY 1'
	),
	"1|100|5|none|4\n2|5|5|none|1",
	'the table holds every accepted update, and nothing else');
is( $node->safe_psql('postgres',
		'SELECT * FROM atk.customer ORDER BY customer_id'),
	"1|1000000|0|platinum|0||0|\n2|1000000|0|platinum|0||0|",
	'the decoy table is untouched');
is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
	'', 'capaccess_verify() is empty');

# Every row written, by the holders and by the waiters, was written as the
# table's owner under search_path = pg_catalog, pg_temp.
is( $node->safe_psql(
		'postgres', qq{
SELECT who, op, search_path, run_as = '$su', count(*)
  FROM probe GROUP BY 1, 2, 3, 4 ORDER BY who = '$su', 1, 2
}),
	"app_role|UPDATE|pg_catalog, pg_temp|t|2\n"
	  . "$su|UPDATE|pg_catalog, pg_temp|t|3",
	'every write ran as the owner under the pinned search_path');

$node->stop;
done_testing();
