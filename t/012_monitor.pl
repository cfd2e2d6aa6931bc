# Watching capaccess from the outside: capaccess_peek, capaccess_gates,
# capaccess_blocking_pids, the wait event in pg_stat_activity, and
# capaccess_stats_reset, each checked while a gate is held and while other
# sessions are queued behind its holder.
#
# Each role has the least it needs: an application role granted only
# capaccess_consume, a reader granted only capaccess_peek, and a
# monitoring role that is only a member of pg_monitor, so that every right it
# uses comes from the extension's grants to pg_monitor.
#
# What this proves:
#
# 1. A peek answers at once, while the customer's gate is held by an
#    uncommitted change and while others are queued for it: the reader runs
#    with a 5 s statement_timeout, so a peek that waited would fail, and it
#    is never seen waiting.  It reports the last committed state, never the
#    holder's uncommitted one, and after the commit the new state, whose hash
#    is the FNV-1a state hash of the fields it reports.  An unknown customer
#    (or NULL) gives no row.  Like a SELECT, a peek in REPEATABLE READ keeps
#    its snapshot, and a holder's own peek sees its own uncommitted change.
# 2. A peek is never torn: while four clients change the customer's used and
#    access as fast as they can, every one of hundreds of peeks returns a
#    state some update really committed (logged by the writers in the same
#    transaction), whose hash matches its fields, and the clocks one peeking
#    client sees never go backwards.
# 3. capaccess_gates() shows each gate held or waited for, as the monitoring
#    role sees it: the database, the holder's pid and since when, how many
#    wait and who has waited longest, and follows the queue as the gate is
#    handed on, or as a cancelled waiter leaves the queue, until no row is
#    left.  A gate nobody waits for shows 0 waiters.  The same customer id in
#    two databases is two gates, each named by its database.
# 4. capaccess_blocking_pids() names the holder of the gate a session waits
#    for (after a hand-off, the new holder), and nothing for the holder, an
#    idle session, a cancelled waiter, a process that is no backend, or no
#    process at all.
# 5. Waiters show wait_event_type 'Extension' and wait_event 'CapaccessGate'
#    (before PostgreSQL 17, which has no custom wait events: 'Extension'), and the
#    README's two monitoring queries, run as the monitoring role, name the
#    holder, its state and its last query.
# 6. capaccess_stats_reset() is refused to pg_monitor, and a superuser's call
#    sets every counter to zero while the slot table's size and occupancy
#    stay; counting resumes afterwards.
# 7. Each role can call only what it was granted: the reader cannot see the
#    gates, the monitoring role cannot peek or verify, a role with no grants
#    can call none of them (SQLSTATE 42501 each time).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $max_customers = 200;
my $node = PostgreSQL::Test::Cluster->new('monitor');
$node->init;
# idle_holder_timeout is off: the holders below sit idle in transaction, on
# purpose, for as long as the checks take on a busy machine.
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
capaccess.max_customers = $max_customers
capaccess.idle_holder_timeout = 0
log_statement = none
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION capaccess;
CREATE ROLE app LOGIN;
CREATE ROLE reader LOGIN;
CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
CREATE ROLE nobody LOGIN;
GRANT EXECUTE ON FUNCTION capaccess_consume(bigint, bigint) TO app;
GRANT EXECUTE ON FUNCTION capaccess_peek(bigint) TO reader;
SELECT capaccess_register(1, 1000, 'gold'), capaccess_register(2, 1000),
	   capaccess_register(10, 1000000000000, 'start');
});

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
 WHERE a.grantee = 'monitor'::regrole}),
	'0',
	'the monitoring role has no grant of its own: its rights come from pg_monitor'
);

# A statement as a given role, through a fresh connection.
sub as_role
{
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

# The SQLSTATE of the error $sql raises as $role, or a note that it did not.
sub sqlstate_as
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql(
		'postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
	return $err =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : "no error (got '$out')";
}

# A background session as $role (a superuser if none), reporting SQLSTATEs,
# and its backend's pid.
sub role_session
{
	my ($role, $db) = @_;
	my $s = $node->background_psql(
		$db // 'postgres',
		on_error_stop => 0,
		extra_params => defined $role ? [ '-U', $role ] : []);
	$s->query_safe('\set VERBOSITY verbose');
	return ($s, $s->query_safe('SELECT pg_backend_pid()'));
}

# Run $sql in session $s: its output, or "error: " and its error.
sub ask
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	return $s->{stderr} ne '' ? "error: $s->{stderr}" : $out;
}

# The pids waiting on a capaccess gate, in order.
sub extension_waiters
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
	);
}

sub pids { return join(',', sort { $a <=> $b } @_); }

# The reader peeks with a statement_timeout: a peek that waited for a gate
# would end in 57014 instead of a row.
my ($reader, $reader_pid) = role_session('reader');
$reader->query_safe("SET statement_timeout = '5s'");
my $peek_cols = 'used, cap, remaining, access, clock, seq, state_hash';

sub reader_peek
{
	my ($id) = @_;
	return ask($reader, "SELECT $peek_cols FROM capaccess_peek($id)");
}

# --- 1. peek while the gate is held by an uncommitted change --------------
my $committed = as_role('app',
	'SELECT used, clock, seq, state_hash FROM capaccess_consume(1, 3)');
my (undef, undef, $seq1, $hash1) = split /\|/, $committed;
is($committed, "3|1|$seq1|$hash1", 'the application consumes 3 units (clock 1)');

my ($h, $h_pid) = role_session('app');
$h->query_safe('BEGIN');
my $h_result = $h->query_safe(
	'SELECT used, clock, seq, state_hash FROM capaccess_consume(1, 5)');
my (undef, undef, $seq2, $hash2) = split /\|/, $h_result;
is($h_result, "8|2|$seq2|$hash2",
	'H consumes 5 more units (clock 2) and keeps the gate, uncommitted');
isnt($hash2, $hash1, 'the uncommitted state has another hash');

my $t0 = time;
is(reader_peek(1), "3|1000|997|gold|1|$seq1|$hash1",
	'a peek while H holds the gate returns the committed state, remaining = cap - used'
);
note sprintf('the peek took %.3f s', time - $t0);
is(extension_waiters(), '', 'the reader was never queued on the gate');
is(reader_peek(999), '', 'a peek of an unknown customer returns no row');
is(reader_peek('NULL'), '', 'a peek of NULL returns no row');

# --- 3, 4, 5. two waiters queue behind H ----------------------------------
my ($w1, $w1_pid) = role_session('app');
my ($w2, $w2_pid) = role_session('app');
start($w1, 'BEGIN; SELECT used FROM capaccess_consume(1, 1)');
ok(waiting_are($node, 'Extension', 1), 'W1 waits for the gate');
start($w2, 'BEGIN; SELECT used FROM capaccess_consume(1, 1)');
ok(waiting_are($node, 'Extension', 2), 'W2 waits behind W1');
my ($idle, $idle_pid) = role_session('app');

is(reader_peek(1), "3|1000|997|gold|1|$seq1|$hash1",
	'a peek while two sessions are queued also returns at once, the committed state'
);
is(extension_waiters(), pids($w1_pid, $w2_pid),
	'only W1 and W2 wait on a gate, not the reader');

my $w1_since = as_role('monitor',
	'SELECT oldest_wait_since FROM capaccess_gates() WHERE customer_id = 1');
is( as_role(
		'monitor', qq{
SELECT g.database, g.customer_id, g.holder_pid,
	   g.held_since >= h.xact_start AND g.held_since <= now(),
	   g.waiters, g.oldest_waiter_pid,
	   g.oldest_wait_since >= g.held_since AND g.oldest_wait_since >= w.query_start
	   AND g.oldest_wait_since <= now()
  FROM capaccess_gates() AS g
  LEFT JOIN pg_stat_activity AS h ON h.pid = $h_pid
  LEFT JOIN pg_stat_activity AS w ON w.pid = $w1_pid}),
	"postgres|1|$h_pid|t|2|$w1_pid|t",
	'capaccess_gates(): one row, H holds customer 1 since its transaction began, 2 wait, W1 first'
);

is( as_role(
		'monitor', qq{
SELECT capaccess_blocking_pids($w1_pid), capaccess_blocking_pids($w2_pid),
	   capaccess_blocking_pids($h_pid), capaccess_blocking_pids($idle_pid),
	   capaccess_blocking_pids(2147483647),
	   capaccess_blocking_pids((SELECT pid FROM pg_stat_activity
								 WHERE backend_type = 'checkpointer'))}),
	"{$h_pid}|{$h_pid}|{}|{}|{}|{}",
	'capaccess_blocking_pids(): H for both waiters; nothing for H, an idle session, no process, the checkpointer'
);

my $gate_event =
  $node->safe_psql('postgres', 'SHOW server_version_num') >= 170000
  ? 'CapaccessGate'
  : 'Extension';
is( as_role(
		'monitor', qq{
SELECT pid, wait_event_type, wait_event FROM pg_stat_activity
 WHERE pid IN ($w1_pid, $w2_pid) ORDER BY pid}),
	join("\n",
		map { "$_|Extension|$gate_event" } sort { $a <=> $b } ($w1_pid, $w2_pid)),
	"pg_stat_activity: both waiters wait on Extension/$gate_event");

# The README's "who is blocking my application?" query, as it stands there.
my $who_blocks = q{
SELECT w.pid AS waiting_pid, w.usename AS waiting_user,
       now() - w.query_start AS waiting_for,
       h.pid AS holder_pid, h.usename AS holder_user, h.state AS holder_state,
       now() - h.state_change AS holder_in_state_for, h.query AS holder_last_query
  FROM pg_stat_activity AS w
  CROSS JOIN LATERAL unnest(capaccess_blocking_pids(w.pid)) AS b(pid)
  JOIN pg_stat_activity AS h ON h.pid = b.pid
 WHERE w.wait_event_type = 'Extension'
};
is( as_role(
		'monitor', qq{
SELECT waiting_pid, waiting_user,
	   waiting_for BETWEEN interval '0' AND interval '10 min',
	   holder_pid, holder_user, holder_state,
	   holder_in_state_for BETWEEN interval '0' AND interval '10 min',
	   holder_last_query LIKE '%capaccess_consume(1, 5)%'
  FROM ($who_blocks) AS q ORDER BY waiting_pid}),
	join("\n",
		map { "$_|app|t|$h_pid|app|idle in transaction|t|t" }
		  sort { $a <=> $b } ($w1_pid, $w2_pid)),
	"the README's blocking query, as pg_monitor: one row per waiter, naming H, idle in transaction, and its last query"
);

my $per_gate = q{
SELECT g.database, g.customer_id, g.holder_pid, h.state AS holder_state,
       g.waiters, now() - g.oldest_wait_since AS longest_wait
  FROM capaccess_gates() AS g
  LEFT JOIN pg_stat_activity AS h ON h.pid = g.holder_pid
 ORDER BY g.waiters DESC, g.held_since
};
is( as_role(
		'monitor', qq{
SELECT database, customer_id, holder_pid, holder_state, waiters,
	   longest_wait BETWEEN interval '0' AND interval '10 min'
  FROM ($per_gate) AS q}),
	"postgres|1|$h_pid|idle in transaction|2|t",
	"the README's per-gate overview, as pg_monitor: customer 1, held by H, 2 waiting"
);

# H commits: W1 gets the gate and keeps it, W2 waits for W1.
$h->query_safe('COMMIT');
is(outcome($w1), '9', 'W1 builds on H\'s commit (used 9) and now holds the gate');
is(reader_peek(1), "8|1000|992|gold|2|$seq2|$hash2",
	'after H commits, a peek shows its state, while W1 holds the gate');
is($node->safe_psql('postgres', "SELECT capaccess.state_hash(1, 2, 8, 1000, 'gold')"),
	$hash2, 'and the hash peeked is the FNV-1a state hash of those fields');
is( as_role(
		'monitor', qq{
SELECT g.holder_pid, g.held_since BETWEEN w.xact_start AND now(),
	   g.waiters, g.oldest_waiter_pid,
	   g.oldest_wait_since > '$w1_since' AND g.oldest_wait_since >= w2.query_start
	   AND g.oldest_wait_since <= g.held_since,
	   capaccess_blocking_pids($w2_pid), capaccess_blocking_pids($w1_pid)
  FROM capaccess_gates() AS g
  LEFT JOIN pg_stat_activity AS w ON w.pid = $w1_pid
  LEFT JOIN pg_stat_activity AS w2 ON w2.pid = $w2_pid
 WHERE g.database = 'postgres' AND g.customer_id = 1}),
	"$w1_pid|t|1|$w2_pid|t|{$w1_pid}|{}",
	'after H commits: W1 holds (since its transaction began), 1 waits (W2, since after W1), and W2 is blocked by W1'
);

$w1->query_safe('COMMIT');
is(outcome($w2), '10', 'W2 builds on W1\'s commit (used 10)');
$w2->query_safe('COMMIT');
my ($seq4, $hash4) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT seq, state_hash FROM capaccess.customer WHERE customer_id = 1');
is(as_role('monitor', 'SELECT * FROM capaccess_gates()'),
	'', 'once all have committed, capaccess_gates() has no row');
is(as_role('monitor', "SELECT capaccess_blocking_pids($w2_pid)"),
	'{}', 'and W2, idle, is blocked by nobody');
is( reader_peek(1),
	$node->safe_psql(
		'postgres', q{
SELECT used, cap, greatest(cap - used, 0), access, clock, seq, state_hash
  FROM capaccess.customer WHERE customer_id = 1}),
	'the final peek equals the table row');

# In REPEATABLE READ a peek reads the transaction's snapshot, like a SELECT.
$reader->query_safe(
	'BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT clock FROM capaccess_peek(1)');
as_role('app', 'SELECT capaccess_consume(1, -1)');
is(reader_peek(1), "10|1000|990|gold|4|$seq4|$hash4",
	'a REPEATABLE READ peek keeps its snapshot after another commit');
$reader->query_safe('COMMIT');
like(reader_peek(1), qr/^9\|1000\|991\|gold\|5\|/,
	'and the next transaction sees the refund (used 9, clock 5)');

# --- 3. a gate nobody waits for, and the same customer in a second database
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql('db2',
	'CREATE EXTENSION capaccess; SELECT capaccess_register(1, 1000)');
my ($s, $s_pid) = role_session();
$s->query_safe('BEGIN');
is($s->query_safe('SELECT clock FROM capaccess_update(1, 0, 2000)'),
	'6', 'a superuser takes customer 1\'s gate in postgres (clock 6)');
is($s->query_safe('SELECT cap, clock FROM capaccess_peek(1)'),
	'2000|6', 'its own peek sees its uncommitted change');
like(reader_peek(1), qr/^9\|1000\|991\|gold\|5\|/,
	'the reader still sees the committed state (cap 1000, clock 5)');

my ($d, $d_pid) = role_session(undef, 'db2');
$d->query_safe('BEGIN; SELECT capaccess_update(1, 1)');
my ($dc, $dc_pid) = role_session(undef, 'db2');
start($dc, 'SELECT clock FROM capaccess_update(1, 1)');
ok(waiting_are($node, 'Extension', 1), 'a session in db2 waits for db2\'s customer 1');
my ($dw, $dw_pid) = role_session(undef, 'db2');
start($dw, 'SELECT clock FROM capaccess_update(1, 1)');
ok(waiting_are($node, 'Extension', 2), 'and a second one behind it');
is( as_role(
		'monitor',
		"SELECT waiters, oldest_waiter_pid FROM capaccess_gates() WHERE database = 'db2'"
	),
	"2|$dc_pid",
	'capaccess_gates(): two wait in db2, the first one longest');

# The first waiter is cancelled: the queue shows it gone.
my $dc_since = as_role('monitor',
	"SELECT oldest_wait_since FROM capaccess_gates() WHERE database = 'db2'");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($dc_pid)");
like(outcome($dc), qr/ERROR:  57014/, 'the first waiter in db2 is cancelled');

is( as_role(
		'monitor', qq{
SELECT g.database, g.customer_id, g.holder_pid,
	   g.held_since BETWEEN a.xact_start AND now(), g.waiters,
	   coalesce(g.oldest_waiter_pid::text, 'none'),
	   coalesce((g.oldest_wait_since BETWEEN g.held_since AND now()
				 AND g.oldest_wait_since > '$dc_since')::text, 'none')
  FROM capaccess_gates() AS g
  LEFT JOIN pg_stat_activity AS a ON a.pid = g.holder_pid
 ORDER BY g.database}),
	"db2|1|$d_pid|t|1|$dw_pid|true\npostgres|1|$s_pid|t|0|none|none",
	'two gates of customer 1, one per database, each named by its database; in db2 one waits, the second, since after the first; nobody waits in postgres'
);
is( as_role('monitor',
		"SELECT capaccess_blocking_pids($dw_pid), capaccess_blocking_pids($s_pid), capaccess_blocking_pids($dc_pid)"
	),
	"{$d_pid}|{}|{}",
	'the waiter in db2 is blocked by the holder in db2, not by postgres\'s; the cancelled one by nobody'
);
$d->query_safe('COMMIT');
is(outcome($dw), '2', 'the waiter in db2 goes on (clock 2)');
$s->query_safe('COMMIT');
is(as_role('monitor', 'SELECT count(*) FROM capaccess_gates()'),
	'0', 'no gate is left');
$_->quit for ($h, $w1, $w2, $idle, $s, $d, $dc, $dw);

# --- 2. peeks are never torn -------------------------------------------------
# Four writers update customer 10's used and access, of varying lengths, and
# log each accepted state in the same transaction; two readers peek and log
# what they saw.
$node->safe_psql(
	'postgres', q{
CREATE TABLE wlog (clock bigint PRIMARY KEY, used bigint, cap bigint,
				   access text, seq bigint, state_hash bigint);
INSERT INTO wlog SELECT clock, used, cap, access, seq, state_hash
  FROM capaccess.customer WHERE customer_id = 10;
CREATE TABLE peeks (id bigint GENERATED ALWAYS AS IDENTITY, client int,
					used bigint, cap bigint, remaining bigint, access text,
					clock bigint, seq bigint, state_hash bigint);
GRANT INSERT ON peeks TO reader;
});
my $write_script = $node->basedir . '/write.pgbench';
append_to_file(
	$write_script, q{\set r random(1, 1000000)
INSERT INTO wlog SELECT clock, used, cap, access, seq, state_hash
  FROM capaccess_update(10, 1, NULL, repeat('x', :r % 300) || ':' || :r || '/' || :client_id)
 WHERE updated;
});
my $peek_script = $node->basedir . '/peek.pgbench';
append_to_file(
	$peek_script, q{INSERT INTO peeks (client, used, cap, remaining, access, clock, seq, state_hash)
SELECT :client_id, p.* FROM capaccess_peek(10) AS p;
});

my $seconds = 8;
my @bench;
for my $b ([ 'postgres', 4, $write_script ], [ 'reader', 2, $peek_script ])
{
	my ($user, $clients, $script) = @$b;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[
			'pgbench', '--no-vacuum',
			'--client' => $clients,
			'--jobs' => 1,
			'--time' => $seconds,
			'--file' => $script,
			'--host' => $node->host,
			'--port' => $node->port,
			'--username' => $user,
			'postgres'
		],
		'>' => \$run{out},
		'2>' => \$run{err});
	push @bench, \%run;
}
for my $i (0 .. 1)
{
	my $run = $bench[$i];
	my $who = $i == 0 ? 'the writers' : 'the peekers';
	$run->{h}->finish;
	is($run->{h}->result(0), 0, "pgbench of $who ran to the end")
	  or diag($run->{err});
	like($run->{out}, qr/number of failed transactions: 0 /,
		"no transaction of $who failed");
}

my ($npeeks, $nclocks, $nwrites) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT (SELECT count(*) FROM peeks), (SELECT count(DISTINCT clock) FROM peeks), (SELECT count(*) - 1 FROM wlog)'
  );
note "$nwrites updates, $npeeks peeks, $nclocks distinct clocks peeked";
cmp_ok($npeeks, '>', 100, 'more than 100 peeks were made');
cmp_ok($nclocks, '>', 10,
	'the peeks saw more than 10 states: they ran while the writers wrote');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM peeks
 WHERE state_hash IS DISTINCT FROM capaccess.state_hash(10, clock, used, cap, access)}),
	'0',
	'every peeked state_hash is the hash of the fields peeked with it');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM peeks p
 WHERE NOT EXISTS (SELECT FROM wlog w
					WHERE w.clock = p.clock AND w.used = p.used AND w.cap = p.cap
					  AND w.access = p.access AND w.state_hash = p.state_hash
					  AND w.seq IS NOT DISTINCT FROM p.seq)
	OR p.used <> p.clock OR p.remaining <> greatest(p.cap - p.used, 0)}),
	'0',
	'every peeked row is a state a writer committed, whole (used = clock here), with remaining = cap - used'
);
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM (SELECT clock, lag(clock) OVER (PARTITION BY client ORDER BY id) AS prev
						FROM peeks) AS s
 WHERE clock < prev}),
	'0',
	'the clocks each peeking client saw never went backwards');
is( $node->safe_psql(
		'postgres', q{
SELECT (SELECT clock FROM capaccess.customer WHERE customer_id = 10)
	   = (SELECT max(clock) FROM wlog)
   AND (SELECT max(clock) FROM wlog) = (SELECT count(*) - 1 FROM wlog)}),
	't', 'the writers\' clocks are gapless and end at the table\'s');

# --- 6. capaccess_stats_reset() ----------------------------------------------
is( as_role(
		'monitor', q{
SELECT string_agg(counter, ',' ORDER BY counter) FROM capaccess_counters()
 WHERE counter IN ('accepted', 'waits', 'handoffs', 'holds') AND value > 0}),
	'accepted,handoffs,holds,waits',
	'after the activity, the counters of accepted calls, waits, hand-offs and holds are not 0 (as pg_monitor)'
);
is(sqlstate_as('monitor', 'SELECT capaccess_stats_reset()'),
	'42501', 'pg_monitor cannot call capaccess_stats_reset()');
is( as_role('monitor',
		"SELECT count(*) FROM capaccess_counters() WHERE counter = 'accepted' AND value > 0"
	),
	'1',
	'and the refused call changed nothing');

my ($ncounters, $slots, $loaded) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT (SELECT count(*) FROM capaccess_counters()), slots, slots_loaded FROM capaccess_stats()'
  );
cmp_ok($loaded, '>', 0, 'some slots are loaded before the reset');
is( $node->safe_psql(
		'postgres', q{
SELECT capaccess_stats_reset();
SELECT count(*), count(*) FILTER (WHERE value <> 0) FROM capaccess_counters();
SELECT accepted, rejected, fast_rejected, waits, deadlocks, lock_timeouts,
	   evictions, handoffs, handoff_time_ms, holds, hold_time_ms,
	   early_releases, slots, slots_loaded, slots_held
  FROM capaccess_stats()}),
	"\n$ncounters|0\n0|0|0|0|0|0|0|0|0|0|0|0|$max_customers|$loaded|0",
	"a superuser's capaccess_stats_reset() sets every counter to 0; slots stays $max_customers, slots_loaded stays $loaded"
);
is( as_role(
		'monitor', q{
SELECT string_agg(counter || '=' || value, ',' ORDER BY counter)
  FROM capaccess_counters() WHERE value <> 0}),
	'', 'the monitoring role reads the same zeros');
is( $node->safe_psql(
		'postgres', q{
SELECT updated FROM capaccess_update(2, 1);
SELECT counter || '=' || value FROM capaccess_counters() WHERE value <> 0 AND counter IN ('accepted', 'holds') ORDER BY 1}),
	"t\naccepted=1\nholds=1",
	'counting starts again from 0: one call, one acceptance, one hold');

# --- 7. who may call what ----------------------------------------------------
for my $case (
	[ 'reader', 'SELECT * FROM capaccess_gates()' ],
	[ 'reader', 'SELECT capaccess_blocking_pids(1)' ],
	[ 'reader', 'SELECT * FROM capaccess_stats()' ],
	[ 'reader', 'SELECT * FROM capaccess_consume(1, 1)' ],
	[ 'monitor', 'SELECT * FROM capaccess_peek(1)' ],
	[ 'monitor', 'SELECT * FROM capaccess_verify()' ],
	[ 'monitor', 'SELECT * FROM capaccess_stats()' ],
	[ 'monitor', 'SELECT * FROM capaccess_consume(1, 1)' ],
	[ 'app', 'SELECT * FROM capaccess_peek(1)' ],
	[ 'app', 'SELECT * FROM capaccess_gates()' ],
	[ 'nobody', 'SELECT * FROM capaccess_gates()' ],
	[ 'nobody', 'SELECT * FROM capaccess_stats()' ],
	[ 'nobody', 'SELECT * FROM capaccess_counters()' ],
	[ 'nobody', 'SELECT capaccess_blocking_pids(1)' ],
	[ 'nobody', 'SELECT * FROM capaccess_peek(1)' ],
	[ 'nobody', 'SELECT capaccess_stats_reset()' ])
{
	my ($role, $sql) = @$case;
	is(sqlstate_as($role, $sql), '42501', "$role: $sql fails with 42501");
}
is( as_role(
		'monitor', q{
SELECT (SELECT count(*) > 0 FROM capaccess_counters()),
	   (SELECT count(*) >= 0 FROM capaccess_gates()),
	   capaccess_blocking_pids(pg_backend_pid())}),
	"t|t|{}",
	'the monitoring role can call capaccess_counters, capaccess_gates and capaccess_blocking_pids');
is(as_role('reader', 'SELECT used FROM capaccess_peek(2)'),
	'1', 'the reader can peek without any privilege on the table');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM information_schema.table_privileges
 WHERE grantee IN ('reader', 'monitor', 'app', 'PUBLIC')
   AND table_schema = 'capaccess'}),
	'0',
	'none of the roles has any privilege on the table');

is($node->safe_psql('postgres', 'SELECT * FROM capaccess_verify()'),
	'', 'capaccess_verify() is empty at the end');
$reader->quit;
$node->stop;
done_testing();
