# seq values in blocks (src/seq.c) under concurrency, across a crash and
# across more databases than there are blocks in shared memory.
#
# Two databases are updated at once by pgbench, each call through the
# direct write or through SPI at random, and each call records the clock
# and seq it got.  Then, per database: every seq is distinct, each
# customer's seq rises with its clock, and the sequence is at or above every
# seq handed out.  Once with the extension's INCREMENT 1024, once with
# INCREMENT 3 so that refills happen all the time.  After an immediate
# shutdown, the next seq is above every earlier one.  Finally 70 databases
# take turns, so that blocks are evicted and refilled, and each database's
# seq still rises.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $clients = 48;
my $per_client = 200;
my $customers = 8;
my @dbs = ('postgres', 'seqdb2');

my $node = PostgreSQL::Test::Cluster->new('seq_blocks');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'capaccess'
max_connections = 100
autovacuum = off
log_statement = none
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE seqdb2');
for my $db (@dbs)
{
	$node->safe_psql(
		$db, qq{
CREATE EXTENSION capaccess;
SELECT count(capaccess_register(c, 1000000000)) FROM generate_series(1, $customers) c;
CREATE TABLE hist (c bigint, clock bigint, seq bigint);
});
}

my $script = $node->basedir . '/draw.pgbench';
open my $fh, '>', $script or die "could not write $script: $!";
print $fh <<"EOS";
\\set c random(1, $customers)
\\set d random(0, 1)
BEGIN;
SELECT set_config('capaccess.direct_write', CASE WHEN :d = 1 THEN 'on' ELSE 'off' END, true);
INSERT INTO hist SELECT :c, clock, seq FROM capaccess_update(:c, 1);
END;
EOS
close $fh;

# pgbench on every database at once
sub draw_everywhere
{
	my ($what) = @_;
	my (%out, %err, %h);
	for my $db (@dbs)
	{
		$h{$db} = IPC::Run::start(
			[
				'pgbench', '--no-vacuum', '--client' => $clients,
				'--jobs' => 2, '--transactions' => $per_client,
				'--file' => $script, '-p' => $node->port, $db
			],
			'>' => \$out{$db},
			'2>' => \$err{$db});
	}
	for my $db (@dbs)
	{
		ok($h{$db}->finish, "$what: pgbench on $db")
		  or diag $err{$db};
	}
}

sub check_history
{
	my ($what) = @_;
	for my $db (@dbs)
	{
		my ($rows, $distinct, $falls, $clock_gaps, $above) = split /\|/,
		  $node->safe_psql(
			$db, q{
SELECT count(*), count(DISTINCT seq),
       count(*) FILTER (WHERE seq <= prev_seq),
       count(*) FILTER (WHERE clock <> prev_clock + 1),
       (SELECT last_value FROM capaccess.seq) >= max(seq)
  FROM (SELECT c, clock, seq,
               lag(seq) OVER w AS prev_seq, lag(clock) OVER w AS prev_clock
          FROM hist WINDOW w AS (PARTITION BY c ORDER BY clock)) h});
		is($distinct, $rows, "$what, $db: $rows seq values, all distinct");
		is($falls, 0, "$what, $db: each customer's seq rises with its clock");
		is($clock_gaps, 0, "$what, $db: each customer's clock has no gap");
		is($above, 't', "$what, $db: the sequence is at or above every seq");
		is($node->safe_psql($db, 'SELECT count(*) FROM capaccess_verify()'),
			'0', "$what, $db: capaccess_verify() is empty");
	}
}

draw_everywhere('increment 1024');
check_history('increment 1024');
for my $db (@dbs)
{
	is( $node->safe_psql(
			$db, q{
SELECT (SELECT last_value FROM capaccess.seq) / 1024 <= count(*) / 1024 + 2
  FROM hist}),
		't',
		"increment 1024, $db: the sequence moved once per block, not once per call"
	);
}

for my $db (@dbs)
{
	$node->safe_psql($db, 'ALTER SEQUENCE capaccess.seq INCREMENT BY 3');
}
draw_everywhere('increment 3');
check_history('increment 1024 then 3');

# an immediate shutdown: the rest of each block is lost, nothing is reused
$node->stop('immediate');
$node->start;
for my $db (@dbs)
{
	my ($seq, $max, $last) = split /\|/,
	  $node->safe_psql(
		$db, q{
SELECT u.seq, (SELECT max(seq) FROM hist), (SELECT last_value FROM capaccess.seq)
  FROM capaccess_update(1, 1) u});
	cmp_ok($seq, '>', $max,
		"after an immediate shutdown, $db: the next seq is above every earlier one");
	cmp_ok($seq, '<=', $last,
		"after an immediate shutdown, $db: and not above the sequence");
}

# More databases than blocks: each takes a block in turn and loses it to
# the others before its next turn.
my $many = 70;
$node->safe_psql(
	'postgres', q{
CREATE DATABASE seqtpl;
});
$node->safe_psql('seqtpl',
	'CREATE EXTENSION capaccess; SELECT capaccess_register(1, 1000000)');
$node->safe_psql('postgres', "CREATE DATABASE seqmany$_ TEMPLATE seqtpl")
  for 1 .. $many;
my %seen;
my $bad = 0;
for my $round (1 .. 3)
{
	for my $i (1 .. $many)
	{
		my @seqs = split /\n/,
		  $node->safe_psql("seqmany$i",
			'SELECT seq FROM capaccess_update(1, 1); SELECT seq FROM capaccess_update(1, 1)'
		  );
		my $prev = $seen{$i}[-1] // 0;
		for my $s (@seqs)
		{
			$bad++ if $s <= $prev;
			$prev = $s;
		}
		push @{ $seen{$i} }, @seqs;
	}
}
is($bad, 0, "$many databases in turn: each database's seq rises at every call");
my $evictions = 0;
for my $i (1 .. $many)
{
	# a block kept from one turn to the next gives consecutive values
	my @s = @{ $seen{$i} };
	$evictions++ if $s[2] != $s[1] + 1;
}
cmp_ok($evictions, '>', 0, 'blocks were evicted between turns');

$node->stop;
done_testing();
