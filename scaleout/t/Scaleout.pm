# Helpers the scale-out tests share: a cluster of their own (scaleout/cluster
# in a private directory and port range), DBI connections to the proxy or
# a partition, and workers that call the proxy in a loop and log each call.
package Scaleout;

use strict;
use warnings;

use Cwd 'abs_path';
use DBI;
use File::Basename 'dirname';
use File::Temp 'tempdir';
use POSIX ':sys_wait_h';
use Test::More;
use Time::HiRes qw(time sleep);

use Exporter 'import';
our @EXPORT = qw(cluster start_cluster stop_cluster db one rows
  start_workers stop_workers read_log wait_until);

my $top = abs_path(dirname(__FILE__) . '/../..');
my %workers;		# every worker still running, so that END stops them
my $parent = $$;
my $cluster = "$top/scaleout/cluster";

# run scaleout/cluster ARG...; dies on failure, returns its output
sub cluster
{
	my @args = @_;
	my $out = `"$cluster" @args 2>&1`;
	die "scaleout/cluster @args failed:\n$out" if $? != 0;
	return $out;
}

# a cluster of N partitions in a directory and ports of this test's own
sub start_cluster
{
	my ($n, $port) = @_;
	my $dir = tempdir('capaccess-scaleout-test.XXXXXX', TMPDIR => 1, CLEANUP => 0);
	rmdir $dir;
	$ENV{CAPACCESS_SCALEOUT_DIR} = $dir;
	$ENV{CAPACCESS_SCALEOUT_PORT} = $port;
	cluster('start', $n);
	return $dir;
}

sub stop_cluster
{
	stop_workers([ keys %workers ]) if %workers;
	cluster('stop') if $ENV{CAPACCESS_SCALEOUT_DIR};
}

# db(TARGET, USER): a connection to the proxy ("proxy") or partition K
sub db
{
	my ($target, $user) = @_;
	my $env = cluster('env', $target eq 'proxy' ? () : ($target));
	my ($host) = $env =~ /PGHOST=(\S+)/;
	my ($port) = $env =~ /PGPORT=(\S+)/;
	return DBI->connect("dbi:Pg:dbname=capaccess;host=$host;port=$port",
		$user // 'postgres', '',
		{ AutoCommit => 1, RaiseError => 1, PrintError => 0 });
}

# one(DBH, SQL, BIND...): the first column of the first row
sub one
{
	my ($dbh, $sql, @bind) = @_;
	my @row = $dbh->selectrow_array($sql, undef, @bind);
	return $row[0];
}

# rows(DBH, SQL, BIND...): every row, as array references
sub rows
{
	my ($dbh, $sql, @bind) = @_;
	return @{ $dbh->selectall_arrayref($sql, undef, @bind) };
}

# Poll CODE every 0.1 s until it returns true or SECONDS pass.
sub wait_until
{
	my ($seconds, $code) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		my $ok = eval { $code->() };
		return 1 if $ok;
		sleep 0.1;
	}
	return 0;
}

# start_workers(DIR, USER, CUSTOMER...): one process per customer, each
# calling capaccess_consume(customer, 1) through the proxy in a loop until
# stop_workers(), and logging every call to DIR/<customer>:
#   ok START END CLOCK SEQ        or     err START END SQLSTATE MESSAGE
# A lost connection to the proxy is reopened (the proxy itself never
# stops in these tests; its connections to a partition do).
END
{
	if ($$ == $parent && %workers)
	{
		kill 'KILL', keys %workers;
		waitpid($_, 0) for keys %workers;
	}
}

sub start_workers
{
	my ($dir, $user, @customers) = @_;
	my @pids;
	for my $c (@customers)
	{
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			# a worker never returns into the test, nor runs its END blocks
			eval { work("$dir/$c", $user, $c) };
			print STDERR "worker for customer $c: $@" if $@;
			POSIX::_exit(0);
		}
		$workers{$pid} = 1;
		push @pids, $pid;
	}
	return \@pids;
}

# one worker's loop, until SIGTERM or its parent is gone
sub work
{
	my ($file, $user, $c) = @_;
	open my $log, '>', $file or die "$file: $!";
	$log->autoflush(1);
	my $stop = 0;
	local $SIG{TERM} = sub { $stop = 1 };
	my $dbh;
	while (!$stop && getppid() == $parent)
	{
		my $t0 = time;
		my @r = eval {
			$dbh //= db('proxy', $user);
			$dbh->selectrow_array(
				'SELECT clock, seq FROM capaccess_consume(?, 1)', undef, $c);
		};
		my $t1 = time;
		if (@r && defined $r[0])
		{
			printf $log "ok %.3f %.3f %d %d\n", $t0, $t1, @r;
		}
		else
		{
			my $state = ($dbh && $dbh->state) || 'none';
			my $msg = $@ || 'no row';
			$msg =~ s/\s+/ /g;
			printf $log "err %.3f %.3f %s %s\n", $t0, $t1, $state, $msg;
			$dbh = undef if !$dbh || !$dbh->ping;
			sleep 0.05;
		}
	}
}

sub stop_workers
{
	my ($pids) = @_;
	kill 'TERM', @$pids;
	for (@$pids)
	{
		waitpid($_, 0);
		delete $workers{$_};
	}
}

# read_log(FILE): [ { ok, t0, t1, clock, seq | state, msg } ... ] in order
sub read_log
{
	my ($file) = @_;
	my @calls;
	open my $fh, '<', $file or die "$file: $!";
	while (my $line = <$fh>)
	{
		chomp $line;
		if ($line =~ /^ok (\S+) (\S+) (\d+) (\d+)$/)
		{
			push @calls, { ok => 1, t0 => $1, t1 => $2, clock => $3, seq => $4 };
		}
		elsif ($line =~ /^err (\S+) (\S+) (\S+) (.*)$/)
		{
			push @calls, { ok => 0, t0 => $1, t1 => $2, state => $3, msg => $4 };
		}
	}
	return \@calls;
}

1;
