# A streaming standby: capaccess_update fails there with 25006 and takes no
# gate; early release stays off on the primary while the standby is
# synchronous; after promotion, updates continue with correct clocks.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use FindBin;
use lib $FindBin::RealBin;
use GateQueue;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf',
	"shared_preload_libraries = 'capaccess'\nlog_statement = none\n");
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION capaccess;
SELECT capaccess_register(1, 100);
SELECT capaccess_update(1, 1) FROM generate_series(1, 5);
});

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->safe_psql('postgres', 'SELECT capaccess_update(1, 2)');
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres',
		'SELECT used || \'/\' || clock FROM capaccess.customer WHERE customer_id = 1'),
	'7/6', 'the standby has the committed state');

my ($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM capaccess_update(1, 1);");
like($err, qr/ERROR:  25006: cannot execute capaccess_update\(\) in a read-only transaction/,
	'capaccess_update on a standby fails with 25006');
($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM capaccess_register(2, 1);");
like($err, qr/ERROR:  25006/, 'capaccess_register on a standby fails with 25006');
is($standby->safe_psql('postgres',
		'SELECT slots_held, slots_loaded, accepted, waits FROM capaccess_stats()'),
	'0|0|0|0', 'the standby took no gate and cached nothing');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM capaccess_verify()'),
	'0', 'capaccess_verify() runs on the standby and finds nothing');

# Early release on the primary.  With a synchronous standby, a commit must
# not be seen before the standby has it, so there is none; a session that
# does not wait for the standby (synchronous_commit = local) still gets it.
sub early_releases
{
	return $primary->safe_psql('postgres',
		'SELECT early_releases FROM capaccess_stats()');
}

# Two updates: the first one commits (with synchronous_commit = $level)
# while the second is queued on its gate, the only case where early release
# applies.
sub commit_with_waiter
{
	my ($level) = @_;
	my $s1 = $primary->background_psql('postgres');
	$s1->query_safe("SET synchronous_commit = $level");
	$s1->query_safe('BEGIN');
	$s1->query_safe('SELECT capaccess_update(1, 1)');
	my $s2 = queue_on_gate($primary, 1, 'SELECT capaccess_update(1, 1);');
	$s1->query_safe('COMMIT');
	$s1->quit;
	$s2->quit;
}

my $early = early_releases();
commit_with_waiter('on');
is(early_releases(), $early + 1, 'without a synchronous standby, early release');

# The standby becomes synchronous while two sessions wait on the gate.  A
# backend reads a new configuration only between commands, so the first
# waiter still has the old synchronous_standby_names when it commits, with
# the second queued behind it; it must not release early either.
my $holder = $primary->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT capaccess_update(1, 1)');
my @queued =
  map { queue_on_gate($primary, $_, 'SELECT capaccess_update(1, 1);') } 1 .. 2;
$primary->safe_psql('postgres',
	"ALTER SYSTEM SET synchronous_standby_names = '*'");
$primary->reload;
$primary->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication")
  or die 'the standby did not become synchronous';
$early = early_releases();
$holder->query_safe('COMMIT');
$_->quit for @queued;
$holder->quit;
is(early_releases(), $early,
	'a waiter that has not read the new setting yet does not release early');

commit_with_waiter('on');
is(early_releases(), $early, 'with a synchronous standby, none');
commit_with_waiter('local');
is(early_releases(), $early + 1, 'with synchronous_commit = local, early release');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
		'SELECT used || \'/\' || clock FROM capaccess.customer WHERE customer_id = 1'),
	'16/15', 'the standby has all nine');
$primary->safe_psql('postgres', 'ALTER SYSTEM RESET synchronous_standby_names');
$primary->reload;

# the primary goes away; the standby takes over
my $maxseq = $primary->safe_psql('postgres', 'SELECT max(seq) FROM capaccess.customer');
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion did not finish';

my ($clock, $used, $seq) = split /\|/, $standby->safe_psql('postgres',
	'SELECT clock, used, seq FROM capaccess_update(1, 1)');
is("$used/$clock", '17/16', 'after promotion the next update continues the clock');
cmp_ok($seq, '>', $maxseq, 'and its seq is above the primary\'s');
is($standby->safe_psql('postgres',
		'SELECT string_agg(clock::text, \',\') FROM '
		  . '(SELECT (capaccess_update(1, 1)).clock FROM generate_series(1, 3)) s'),
	'17,18,19', 'later updates go on 17, 18, 19');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM capaccess_verify()'),
	'0', 'capaccess_verify() is empty after promotion');

$standby->stop;
done_testing();
