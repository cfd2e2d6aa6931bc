# The limits on what one caller can do, each tested with the attack it stops.
#
# A gate is held until its transaction ends and keeps its customer's other
# callers waiting, and a pinned slot cannot be taken back, so a caller with
# nothing but EXECUTE on capaccess_consume (or capaccess_register) could
# otherwise stall other sessions or starve other databases.  The attacks
# run as the non-superuser LOGIN role "app", on one server with 32 slots
# (capaccess.max_customers = 32) and two databases, alpha and beta; the
# settings are changed server-wide (ALTER SYSTEM, reload) or for the role
# (ALTER ROLE) by the superuser, and put back after each part.
#
# 1. An idle holder with waiters: "app" updates a customer in an open
#    transaction and goes idle while another session waits for the gate.
#    With capaccess.idle_holder_timeout = 1s the holder's session is ended
#    (FATAL, SQLSTATE 25P03, our message in its psql and in the server log),
#    its update is rolled back, the waiter gets the next clock, and
#    idle_holders_ended counts it.  The role can neither turn the timeout
#    off (42501) nor escape it by turning off
#    idle_in_transaction_session_timeout, which it may set.
# 2. A holder nobody waits for is never ended: it stays idle for more than
#    three times the timeout, while another idle holder that has a waiter
#    is ended meanwhile, and then commits.
# 3. A busy holder is not idle: one that runs pg_sleep inside its
#    transaction while a waiter queues for longer than the timeout is not
#    ended, and commits.
# 4. capaccess.max_gates_per_transaction = 5: a transaction gets 5 gates
#    and the 6th call fails with 53400 naming the setting; the role cannot
#    raise its limit (42501); the failed transaction holds no gate even
#    before its ROLLBACK.  capaccess_reset_all(), run by a superuser while
#    10 customers are busy, is exempt: it ends up holding all 10 gates.
# 5. A loop of SAVEPOINT; capaccess_register(new id); ROLLBACK TO SAVEPOINT
#    for 500 ids in one transaction, left idle: every registration had its
#    gate and gave it back, so nothing stays pinned; afterwards alpha and
#    beta still get a gate for every call (32 calls, all slots).  The same
#    loop without ROLLBACK TO stops at max_gates_per_transaction.
# 6. capaccess.database_slot_share = 50: one transaction in alpha consuming
#    for 40 customers gets 16 gates and 24 slotless calls, all accepted with
#    the next clock, and beta still gets a gate for each of 16 customers.
#    With the share at 100, alpha takes all 32 slots and beta's calls go
#    slotless: the share is what protects beta.
# 7. The slotless path under concurrency: with the share at 1 (one slot
#    for the whole database) two pgbench runs of 8 clients each, at once,
#    one over 5 customers with a large cap, one on a customer with a cap of
#    500.  The one slot is taken in turns and many calls go slotless, so
#    gated and slotless calls on the same customer interleave; yet every
#    customer's clocks are exactly 1..n for its n accepted calls, used = n,
#    and the capped customer stops at exactly 500.
# 8. The access text is at most 1024 bytes (bytes, not characters): 22001
#    from capaccess_register and both forms of capaccess_update, and 23514
#    naming access_max_length for a direct INSERT by the table's owner.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use IPC::Run;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $node = PostgreSQL::Test::Cluster->new('limits');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'capaccess'
capaccess.max_customers = 32
max_connections = 60
log_statement = none
});
$node->start;

$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');
for my $db ('alpha', 'beta')
{
	$node->safe_psql('postgres',
		"CREATE DATABASE $db ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
	);
	$node->safe_psql(
		$db, q{
CREATE EXTENSION capaccess;
SELECT count(capaccess_register(i, 1000000000)) FROM generate_series(1, 40) i;
GRANT EXECUTE ON FUNCTION capaccess_consume(bigint, bigint),
                          capaccess_register(bigint, bigint, text) TO app;
});
}

# --- helpers ----------------------------------------------------------------

sub alpha
{
	return $node->safe_psql('alpha', $_[0]);
}

sub counter
{
	my ($name) = @_;
	return alpha(
		"SELECT value FROM capaccess_counters() WHERE counter = '$name'");
}

# "used/clock" of a customer, committed
sub peek
{
	my ($db, $id) = @_;
	return $node->safe_psql($db,
		"SELECT used || '/' || clock FROM capaccess_peek($id)");
}

# gates held or waited for, as "database:count ..."
sub gates
{
	return alpha(
		q{SELECT coalesce(string_agg(database || ':' || n, ' ' ORDER BY database), 'none')
		    FROM (SELECT database, count(*) n FROM capaccess_gates() GROUP BY 1) g});
}

sub slots_held
{
	return alpha('SELECT slots_held FROM capaccess_stats()');
}

# A background session of the role "app" that reports SQLSTATEs.
sub app_session
{
	my ($db) = @_;
	my $s = $node->background_psql(
		$db,
		on_error_stop => 0,
		extra_params => [ '-U', 'app' ]);
	$s->query_safe('\set VERBOSITY verbose');
	return $s;
}

# Run $sql in session $s; return what it wrote to stderr (errors), alone.
sub stderr_of
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return $err;
}

# Run $sql in a new psql of the superuser; return its stderr.
sub psql_error
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) =
	  $node->psql($db, "\\set VERBOSITY verbose\n$sql", on_error_stop => 1);
	return $err;
}

# Change settings server-wide (undef: back to the default), reload, and
# wait until a new session sees every change.  Values are in the setting's
# base unit, as pg_settings.setting shows them.
sub set_config
{
	my (%set) = @_;
	my @cond;
	for my $name (sort keys %set)
	{
		if (defined $set{$name})
		{
			$node->safe_psql('postgres',
				"ALTER SYSTEM SET $name = '$set{$name}'");
			push @cond, "(name = '$name' AND setting = '$set{$name}')";
		}
		else
		{
			$node->safe_psql('postgres', "ALTER SYSTEM RESET $name");
			push @cond, "(name = '$name' AND setting = boot_val)";
		}
	}
	$node->reload;
	my $n = scalar @cond;
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_settings WHERE " . join(' OR ', @cond))
	  or die 'the new settings were not taken';
}

# Poll $sql until its output matches $want, for at most $secs seconds;
# return the last output.
sub poll_for
{
	my ($db, $sql, $want, $secs) = @_;
	my $deadline = time + $secs;
	my $out;
	for (;;)
	{
		$out = $node->safe_psql($db, $sql);
		return $out if $out =~ $want || time > $deadline;
		usleep(100_000);
	}
}

# Is the backend still there?
sub alive
{
	my ($pid) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid");
}

sub log_since
{
	my ($offset) = @_;
	return slurp_file($node->logfile, $offset);
}

# Wait (10 s at most) until the log after $offset matches.
sub log_shows
{
	my ($re, $offset) = @_;
	my $deadline = time + 10;
	until (log_since($offset) =~ $re)
	{
		return 0 if time > $deadline;
		usleep(100_000);
	}
	return 1;
}

# Note how long the previous part took, and start timing the next.
my ($part, $part_start);

sub part
{
	my ($name) = @_;
	note sprintf('part %s took %.1f s', $part, time - $part_start)
	  if defined $part;
	($part, $part_start) = ($name, time);
}

# --- 1. an idle holder with a waiter is ended -----------------------------
part('1');

set_config('capaccess.idle_holder_timeout' => 1000);

# The role opens a transaction, updates $id and goes idle; a waiter queues.
# With $escape, the role first tries to switch the timeouts off.
sub idle_holder_is_ended
{
	my ($id, $escape) = @_;
	my $what =
	  $escape ? 'a holder that tried to turn the timeouts off' : 'an idle holder';
	my ($used0, $clock0) = split m{/}, peek('alpha', $id);
	my $ended = counter('idle_holders_ended');
	my $offset = -s $node->logfile;

	my $holder = app_session('alpha');
	my $pid = $holder->query_safe('SELECT pg_backend_pid()');
	if ($escape)
	{
		like(
			stderr_of($holder, 'SET capaccess.idle_holder_timeout = 0'),
			qr/ERROR:  42501: permission denied to set parameter "capaccess.idle_holder_timeout"/,
			'the role cannot turn capaccess.idle_holder_timeout off');
		is( $holder->query_safe(
				'SET idle_in_transaction_session_timeout = 0; SHOW idle_in_transaction_session_timeout'
			),
			'0',
			'the role may turn idle_in_transaction_session_timeout off');
		is($holder->query_safe('SHOW capaccess.idle_holder_timeout'),
			'1s', 'capaccess.idle_holder_timeout is still 1s in its session');
	}
	$holder->query_safe('BEGIN');
	is($holder->query_safe("SELECT clock FROM capaccess_consume($id, 1)"),
		$clock0 + 1, "$what: its update gets clock " . ($clock0 + 1));

	my $waiter = app_session('alpha');
	my $t0 = time;
	start($waiter, "SELECT clock FROM capaccess_consume($id, 1)");
	my $gone = poll_for('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid",
		qr/^0$/, 30);
	my $secs = time - $t0;
	is($gone, '0', "$what: its session is ended");
	note sprintf('ended %.1f s after the waiter came', $secs);
	if ($gone ne '0')
	{
		# do not leave the waiter hanging
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	}
	is(outcome($waiter), $clock0 + 1,
		"$what: the waiter's call completes with the next clock, "
		  . ($clock0 + 1));
	ok($secs < 20, "$what: within seconds, not never");

	# the holder's next query fails, and its psql says why
	$holder->{stderr} = '';
	eval { $holder->query('SELECT 1'); };
	like(
		$holder->{stderr},
		qr/FATAL:  25P03: terminating connection because it held a capaccess gate while idle in transaction/,
		"$what: its psql gets the FATAL, 25P03");
	like(
		$holder->{stderr},
		qr/DETAIL:  The session held the gate of customer $id, which other sessions waited for/,
		"$what: with a detail naming customer $id");
	reap_sessions($holder);

	is(peek('alpha', $id), ($used0 + 1) . '/' . ($clock0 + 1),
		"$what: its uncommitted update is gone, the waiter's is there");
	is(counter('idle_holders_ended'), $ended + 1,
		"$what: idle_holders_ended rose by 1");

	ok( log_shows(
			qr/\[$pid\] .*FATAL:  terminating connection because it held a capaccess gate while idle in transaction/,
			$offset),
		"$what: the server log has its FATAL");
	my $log = log_since($offset);
	like(
		$log,
		qr/LOG:  capaccess: terminating process $pid, which held the gate of customer $id while idle in transaction/,
		"$what: the server log names the process and the customer");
	my ($idle_ms) = $log =~ /It was idle in transaction for (\d+) ms/;
	ok(defined $idle_ms && $idle_ms >= 1000,
		"$what: ended after the timeout, not before (idle "
		  . ($idle_ms // '?') . ' ms)');
	unlike(
		$log,
		qr/\[$pid\] .*FATAL:  terminating connection due to administrator command/,
		"$what: the log does not blame an administrator");
	$waiter->quit;
}

idle_holder_is_ended(1, 0);
idle_holder_is_ended(2, 1);

# --- 2. a holder nobody waits for is left alone ---------------------------
part('2');
{
	my ($used0, $clock0) = split m{/}, peek('alpha', 3);
	my $ended = counter('idle_holders_ended');
	my $quiet = app_session('alpha');
	my $pid = $quiet->query_safe('SELECT pg_backend_pid()');
	$quiet->query_safe('BEGIN; SELECT clock FROM capaccess_consume(3, 1)');

	# meanwhile, another idle holder, of customer 4, has a waiter: it is
	# ended, and only it
	my $other = app_session('alpha');
	my $other_pid = $other->query_safe('SELECT pg_backend_pid()');
	$other->query_safe('BEGIN; SELECT clock FROM capaccess_consume(4, 1)');
	my $waiter = app_session('alpha');
	start($waiter, 'SELECT clock FROM capaccess_consume(4, 1)');
	is( poll_for(
			'postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $other_pid",
			qr/^0$/, 30),
		'0',
		'an idle holder with a waiter, beside it, is ended')
	  or $node->safe_psql('postgres', "SELECT pg_terminate_backend($other_pid)");
	like(outcome($waiter), qr/^\d+$/, 'and its waiter completes');
	reap_sessions($other);

	is( poll_for(
			'postgres', qq{
SELECT CASE WHEN state <> 'idle in transaction' THEN state
            WHEN clock_timestamp() - state_change > interval '3.5 s' THEN 'long idle'
            ELSE 'idle' END
  FROM pg_stat_activity WHERE pid = $pid},
			qr/^(?!idle$)/,
			30),
		'long idle',
		'a holder nobody waits for stays idle in transaction for 3.5 s, 3.5 times the timeout'
	);
	is(alive($pid), '1', 'it is still connected');
	is(stderr_of($quiet, 'COMMIT'), '', 'it commits');
	is(peek('alpha', 3), ($used0 + 1) . '/' . ($clock0 + 1),
		'its update is committed');
	is(counter('idle_holders_ended'), $ended + 1,
		'only the holder that had a waiter was ended');
	$quiet->quit;
	$waiter->quit;
}

# --- 3. a busy holder is not idle -----------------------------------------
part('3');
{
	my ($used0, $clock0) = split m{/}, peek('alpha', 5);
	my $ended = counter('idle_holders_ended');
	my $holder = app_session('alpha');
	my $pid = $holder->query_safe('SELECT pg_backend_pid()');
	$holder->query_safe('BEGIN; SELECT clock FROM capaccess_consume(5, 1)');
	start($holder, 'SELECT pg_sleep(6); COMMIT');
	my $waiter = app_session('alpha');
	start($waiter, 'SELECT clock FROM capaccess_consume(5, 1)');

	# the waiter waits longer than the timeout while the holder is active
	is( poll_for(
			'alpha', qq{
SELECT CASE WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid) THEN 'gone'
            WHEN EXISTS (SELECT FROM capaccess_gates() g
                                JOIN pg_stat_activity a ON a.pid = g.holder_pid
                          WHERE g.database = 'alpha' AND g.customer_id = 5
                            AND g.holder_pid = $pid AND a.state = 'active'
                            AND g.waiters = 1
                            AND clock_timestamp() - g.oldest_wait_since > interval '1.5 s')
                 THEN 'waited'
            ELSE 'not yet' END},
			qr/^(gone|waited)$/,
			30),
		'waited',
		'a waiter queues for 1.5 s behind a holder running pg_sleep');
	is(outcome($holder), '', 'the busy holder finishes and commits');
	is($holder->query_safe('SELECT pg_backend_pid()'),
		$pid, 'in the same session: it was not ended');
	is(outcome($waiter), $clock0 + 2, 'the waiter builds on its commit');
	is(peek('alpha', 5), ($used0 + 2) . '/' . ($clock0 + 2),
		'both updates are committed');
	is(counter('idle_holders_ended'), $ended, 'nobody was ended');
	$holder->quit;
	$waiter->quit;
}

# --- 4. many gates in one transaction -------------------------------------
part('4');

# idle_holder_timeout off: the holders below must not be ended however long
# this part takes on a loaded machine
set_config(
	'capaccess.idle_holder_timeout' => 0,
	'capaccess.max_gates_per_transaction' => 5);
{
	my $s = app_session('alpha');
	like(
		stderr_of($s, 'SET capaccess.max_gates_per_transaction = 1000'),
		qr/ERROR:  42501: permission denied to set parameter "capaccess.max_gates_per_transaction"/,
		'the role cannot raise capaccess.max_gates_per_transaction');
	my $errors = counter('gate_limit_errors');
	my $clocks = alpha(
		"SELECT string_agg(clock::text, ',' ORDER BY i) FROM generate_series(11, 16) i, capaccess_peek(i)"
	);
	$s->query_safe('BEGIN');
	is( $s->query_safe(
			'SELECT count(*) FROM generate_series(11, 15) i, capaccess_consume(i, 1) c WHERE c.updated'
		),
		'5',
		'a transaction consumes for 5 customers, 5 gates');
	is(gates(), 'alpha:5', 'it holds 5 gates');
	my $err = stderr_of($s, 'SELECT clock FROM capaccess_consume(16, 1)');
	like(
		$err,
		qr/ERROR:  53400: too many capaccess gates held by one transaction/,
		'the 6th customer fails with 53400');
	like($err, qr/DETAIL:  .*"capaccess\.max_gates_per_transaction"/,
		'the message names capaccess.max_gates_per_transaction');
	is(counter('gate_limit_errors'), $errors + 1, 'gate_limit_errors rose by 1');
	is(gates(), 'none', 'the failed transaction holds no gate, even before ROLLBACK');
	is(slots_held(), '0', 'slots_held is 0');
	$s->query_safe('ROLLBACK');
	is( alpha(
			"SELECT string_agg(clock::text, ',' ORDER BY i) FROM generate_series(11, 16) i, capaccess_peek(i)"
		),
		$clocks,
		'nothing of it was committed');
	$s->quit;
}

# capaccess_reset_all() is exempt: 10 busy customers, 10 gates
{
	my $errors = counter('gate_limit_errors');
	my @holders;
	for my $id (21 .. 30)
	{
		my $h = app_session('alpha');
		$h->query_safe("BEGIN; SELECT clock FROM capaccess_consume($id, 1)");
		push @holders, $h;
	}
	is(gates(), 'alpha:10', '10 customers are busy');
	my $total = alpha('SELECT count(*) FROM capaccess.customer');
	my $admin = $node->background_psql('alpha', on_error_stop => 0);
	$admin->query_safe('\set VERBOSITY verbose');
	my $admin_pid = $admin->query_safe('SELECT pg_backend_pid()');
	$admin->query_safe('BEGIN');
	start($admin, 'SELECT capaccess_reset_all()');
	ok(waiting_are($node, 'Extension', 1),
		'reset_all waits its turn at the first busy gate');
	$_->query_safe('COMMIT') for @holders;
	is(outcome($admin), $total, "reset_all resets all $total customers");
	is( alpha(
			"SELECT count(*) FROM capaccess_gates() WHERE holder_pid = $admin_pid"),
		'10',
		'its transaction holds the 10 busy gates, beyond the limit of 5');
	is(stderr_of($admin, 'COMMIT'), '', 'and commits');
	is( alpha(
			'SELECT count(*) FILTER (WHERE used = 0) || \'/\' || count(*) FROM capaccess.customer'
		),
		"$total/$total",
		'every customer is reset');
	is(counter('gate_limit_errors'), $errors, 'no gate_limit_errors');
	is(gates(), 'none', 'no gate is left held');
	$_->quit for (@holders, $admin);
}

# --- 5. the savepoint + register loop -------------------------------------
part('5');

set_config(
	'capaccess.idle_holder_timeout' => undef,
	'capaccess.max_gates_per_transaction' => undef);
# this time a limit of 10 for the role only
$node->safe_psql('postgres',
	'ALTER ROLE app SET capaccess.max_gates_per_transaction = 10');
{
	my $slotless = counter('slotless_calls');
	my $loop = app_session('alpha');
	my $loop_pid = $loop->query_safe('SELECT pg_backend_pid()');
	is($loop->query_safe('SHOW capaccess.max_gates_per_transaction'),
		'10', "the role's sessions have a limit of 10 gates");
	$node->safe_psql('postgres',
		'ALTER ROLE app RESET capaccess.max_gates_per_transaction');
	my $script = "BEGIN;\n"
	  . join('',
		map {
			"SAVEPOINT s;\nSELECT clock FROM capaccess_register($_, 1);\nROLLBACK TO SAVEPOINT s;\n"
		} 1001 .. 1500);
	my $out = $loop->query_safe($script);
	is(scalar(grep { $_ eq '0' } split /\n/, $out),
		500,
		'500 registrations, each undone by ROLLBACK TO SAVEPOINT, in one transaction');
	is(counter('slotless_calls'), $slotless,
		'every one had its gate: a gate goes with ROLLBACK TO SAVEPOINT');
	is( alpha(
			"SELECT count(*) FROM capaccess_gates() WHERE holder_pid = $loop_pid"),
		'0',
		'the transaction, idle now, holds no gate');
	is(slots_held(), '0', 'slots_held is 0');

	# alpha's share and beta's slots are all there: 16 + 16 = every slot
	my $a = app_session('alpha');
	my $b = app_session('beta');
	my %want;
	for my $db ('alpha', 'beta')
	{
		$want{$db} = $node->safe_psql($db,
			"SELECT string_agg((clock + 1)::text, ',' ORDER BY i) FROM generate_series(1, 16) i, capaccess_peek(i)"
		);
	}
	for my $pair ([ $a, 'alpha' ], [ $b, 'beta' ])
	{
		my ($s, $db) = @$pair;
		$s->query_safe('BEGIN');
		is( $s->query_safe(
				"SELECT string_agg(c.clock::text, ',' ORDER BY i) FROM generate_series(1, 16) i, capaccess_consume(i, 1) c WHERE c.updated"
			),
			$want{$db},
			"$db: 16 customers consume in one transaction, each with the next clock"
		);
	}
	is(gates(), 'alpha:16 beta:16', 'each with its gate');
	is(counter('slotless_calls'), $slotless, 'none went slotless');
	$a->query_safe('COMMIT');
	$b->query_safe('COMMIT');
	$loop->query_safe('COMMIT');
	is(alpha('SELECT count(*) FROM capaccess.customer WHERE customer_id > 1000'),
		'0', 'none of the 500 was registered');
	$_->quit for ($loop, $a, $b);
}

# the same loop without ROLLBACK TO SAVEPOINT
$node->safe_psql('postgres',
	'ALTER ROLE app SET capaccess.max_gates_per_transaction = 10');
{
	my $errors = counter('gate_limit_errors');
	my $script = "\\set VERBOSITY verbose\nBEGIN;\n"
	  . join('',
		map { "SAVEPOINT s;\nSELECT clock FROM capaccess_register($_, 1);\n" }
		  2001 .. 2500)
	  . "COMMIT;\n";
	my ($ret, $out, $err) = $node->psql(
		'alpha', $script,
		on_error_stop => 1,
		extra_params => [ '-U', 'app' ]);
	isnt($ret, 0, 'without ROLLBACK TO SAVEPOINT the loop fails');
	is(scalar(grep { $_ eq '0' } split /\n/, $out),
		10, 'after 10 registrations, each holding its gate');
	like(
		$err,
		qr/ERROR:  53400: too many capaccess gates held by one transaction\nDETAIL:  The transaction holds the gates of 10 customers/,
		'the 11th fails with 53400');
	is(counter('gate_limit_errors'), $errors + 1, 'gate_limit_errors rose by 1');
	is(alpha('SELECT count(*) FROM capaccess.customer WHERE customer_id > 2000'),
		'0', 'none was registered');
	is(gates(), 'none', 'no gate is left held');
}
$node->safe_psql('postgres',
	'ALTER ROLE app RESET capaccess.max_gates_per_transaction');

# --- 6. one database cannot take the slots another needs ------------------
part('6');

# One transaction in alpha consumes for customers 1..40, one in beta for
# 1..16, both left open.  Returns the gates held and the slotless calls of
# each, as "alpha gates/slotless, beta gates/slotless".
sub alpha_then_beta
{
	my ($share) = @_;
	my %n = (alpha => 40, beta => 16);
	my %want;
	for my $db ('alpha', 'beta')
	{
		$want{$db} = $node->safe_psql($db,
			"SELECT string_agg((clock + 1)::text, ',' ORDER BY i) FROM generate_series(1, $n{$db}) i, capaccess_peek(i)"
		);
	}
	my $slotless = counter('slotless_calls');
	my $a = app_session('alpha');
	$a->query_safe('BEGIN');
	is( $a->query_safe(
			"SELECT string_agg(c.clock::text, ',' ORDER BY i) FROM generate_series(1, 40) i, capaccess_consume(i, 1) c WHERE c.updated"
		),
		$want{alpha},
		"share $share: alpha's 40 calls in one transaction are accepted, each with the next clock"
	);
	my $a_slotless = counter('slotless_calls') - $slotless;
	my $a_gates = alpha(
		"SELECT count(*) FROM capaccess_gates() WHERE database = 'alpha'");
	my $b = app_session('beta');
	$b->query_safe('BEGIN');
	is( $b->query_safe(
			"SELECT string_agg(c.clock::text, ',' ORDER BY i) FROM generate_series(1, 16) i, capaccess_consume(i, 1) c WHERE c.updated"
		),
		$want{beta},
		"share $share: beta's 16 calls in one transaction are accepted, each with the next clock"
	);
	my $b_slotless = counter('slotless_calls') - $slotless - $a_slotless;
	my $b_gates = alpha(
		"SELECT count(*) FROM capaccess_gates() WHERE database = 'beta'");
	$a->query_safe('COMMIT');
	$b->query_safe('COMMIT');
	$_->quit for ($a, $b);
	return "alpha $a_gates/$a_slotless, beta $b_gates/$b_slotless";
}

set_config('capaccess.database_slot_share' => 50);
is(alpha_then_beta(50), 'alpha 16/24, beta 16/0',
	'share 50: alpha gets 16 gates and 24 slotless calls, beta a gate for each of its 16'
);
set_config('capaccess.database_slot_share' => 100);
is(alpha_then_beta(100), 'alpha 32/8, beta 0/16',
	'share 100: alpha takes all 32 slots, and beta goes slotless');
is(gates(), 'none', 'no gate is left held');

# --- 7. the slotless path is exact under concurrency ----------------------
part('7');

set_config('capaccess.database_slot_share' => 1);
{
	# five customers with a large cap, one capped at 500, and the log of
	# accepted calls
	alpha(
		q{
SELECT count(capaccess_register(i, 1000000000)) FROM generate_series(101, 105) i;
SELECT count(capaccess_register(106, 500));
CREATE TABLE log (id bigint, clock bigint);
GRANT INSERT ON log TO app;
});
	my $slotless = counter('slotless_calls');
	my $rejected = counter('rejected');
	my %script = (
		five => q{\set id random(101, 105)
INSERT INTO log SELECT :id, clock FROM capaccess_consume(:id, 1) WHERE updated;
},
		capped => q{INSERT INTO log SELECT 106, clock FROM capaccess_consume(106, 1) WHERE updated;
});
	my (%run, %out, %err);
	for my $name (sort keys %script)
	{
		my $file = $node->basedir . "/011_$name.sql";
		unlink $file;
		append_to_file($file, $script{$name});
		($out{$name}, $err{$name}) = ('', '');
		$run{$name} = IPC::Run::start(
			[
				'pgbench', '--no-vacuum', '--client=8', '--jobs=2',
				'--time=12', '--username=app', '--host=' . $node->host,
				'--port=' . $node->port, "--file=$file", 'alpha'
			],
			'>', \$out{$name}, '2>', \$err{$name},
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	}
	my %done;
	for my $name (sort keys %script)
	{
		$run{$name}->finish;
		is($run{$name}->result(0), 0, "pgbench '$name' succeeds")
		  or diag $err{$name};
		like($out{$name}, qr/number of failed transactions: 0 /,
			"pgbench '$name': no failed transaction");
		($done{$name}) =
		  $out{$name} =~ /number of transactions actually processed: (\d+)/;
		note "$name: $done{$name} transactions";
	}
	my $calls = $done{five} + $done{capped};
	my $went_slotless = counter('slotless_calls') - $slotless;
	note "$went_slotless of $calls calls went slotless";
	# how many depends on the timing: a call that finds the one slot free
	# takes it (from about half of them on an idle 2-core machine, to about
	# one in seven when it is busy)
	ok($went_slotless > 1000,
		"many calls went slotless ($went_slotless of $calls)");

	# per customer: accepted calls, distinct clocks, lowest, highest clock,
	# and the row's used, clock and cap
	my $rows = alpha(
		q{SELECT l.id, count(*), count(DISTINCT l.clock), min(l.clock), max(l.clock),
		         p.used, p.clock, p.cap
		    FROM log l, capaccess_peek(l.id) p
		   GROUP BY l.id, p.used, p.clock, p.cap ORDER BY l.id});
	my %n;
	for my $row (split /\n/, $rows)
	{
		my ($id, $n, $distinct, $min, $max, $used, $clock, $cap) =
		  split /\|/, $row;
		$n{$id} = $n;
		is( "$distinct $min..$max used $used clock $clock",
			"$n 1..$n used $n clock $n",
			"customer $id: $n accepted calls, clocks exactly 1..$n, used $n");
		ok($used <= $cap, "customer $id: used $used within its cap $cap");
	}
	is(join(',', sort keys %n), '101,102,103,104,105,106',
		'every customer had calls accepted');
	is($n{101} + $n{102} + $n{103} + $n{104} + $n{105},
		$done{five}, 'every call on the five customers was accepted');
	is($n{106}, 500, 'the capped customer stops at exactly its cap, 500');
	is(counter('rejected') - $rejected,
		$done{capped} - 500, 'every other call on it was refused');
	is(alpha('SELECT count(*) FROM capaccess_verify()'),
		'0', 'capaccess_verify() is empty');
}

# --- 8. the access text is at most 1024 bytes -----------------------------
part('8');

set_config('capaccess.database_slot_share' => undef);
{
	like(
		psql_error('alpha',
			"SELECT customer_id FROM capaccess_register(900, 1, repeat('x', 1025))"),
		qr/ERROR:  22001:/,
		'capaccess_register: 1025 bytes of access is 22001');
	like(
		psql_error('alpha',
			"SELECT customer_id FROM capaccess_register(900, 1, repeat(chr(233), 513))"
		),
		qr/ERROR:  22001:/,
		'capaccess_register: 513 two-byte characters (1026 bytes) is 22001');
	is( psql_error('alpha',
			"SELECT customer_id FROM capaccess_register(900, 1, repeat('x', 1024))"),
		'',
		'capaccess_register: 1024 bytes is accepted');
	like(
		psql_error('alpha',
			"SELECT updated FROM capaccess_update(900, 0, NULL, repeat('y', 1025))"),
		qr/ERROR:  22001:/,
		'capaccess_update: 1025 bytes of access is 22001');
	like(
		psql_error('alpha',
			q{SELECT capaccess_update('{"customer_id": 900}'::jsonb, jsonb_build_object('access', repeat('y', 1025)))}
		),
		qr/ERROR:  22001:/,
		'capaccess_update(jsonb, jsonb): 1025 bytes of access is 22001');
	is( psql_error('alpha',
			"SELECT updated FROM capaccess_update(900, 0, NULL, repeat('y', 1024))"),
		'',
		'capaccess_update: 1024 bytes is accepted');
	is( alpha(
			"SELECT octet_length(access) || ' ' || left(access, 1) || ' ' || clock FROM capaccess_peek(900)"
		),
		'1024 y 1',
		'the row has the 1024 bytes of the accepted update');
	like(
		psql_error('alpha',
			"INSERT INTO capaccess.customer (customer_id, cap, access, state_hash) VALUES (902, 1, repeat('x', 1025), 0)"
		),
		qr/ERROR:  23514: new row for relation "customer" violates check constraint "access_max_length"/,
		'a direct INSERT by the owner of 1025 bytes fails with 23514, access_max_length'
	);
	is(alpha('SELECT count(*) FROM capaccess.customer WHERE customer_id IN (901, 902)'),
		'0', 'nothing over-long was written');
}

part(undef);
done_testing();
