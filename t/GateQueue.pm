# Helpers the TAP tests share for sessions that wait on a capaccess gate.
package GateQueue;

use strict;
use warnings;

use Exporter 'import';
our @EXPORT = qw(session start outcome waiting_are queue_on_gate reap_sessions);

# A session in the background that reports SQLSTATEs with its errors.
sub session
{
	my ($node) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('\set VERBOSITY verbose');
	return $s;
}

# Start a statement in $s that is expected to wait; returns at once.
sub start
{
	my ($s, $sql) = @_;
	$s->query_until(qr/started/, "\\echo started\n$sql;\n");
}

# What the statement started in $s returned, or "error: " and its error.
sub outcome
{
	my ($s) = @_;
	my $out = $s->query('SELECT 1');
	return "error: $s->{stderr}" if $s->{stderr} =~ /ERROR/;
	return $out =~ /^(?:(.*)\n)?1$/s ? ($1 // '') : "unexpected: $out";
}

# Wait until $n backends wait with wait_event_type $type: 'Extension' for
# a capaccess gate, 'Lock' for a heavyweight lock.  True once they do.
sub waiting_are
{
	my ($node, $type, $n) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_activity WHERE wait_event_type = '$type'"
	);
}

# Start a session that runs $sql (one statement) and returns once it is
# sleeping on a gate, as the $n-th session to do so.  The statement is
# still running: quit() waits for it.
sub queue_on_gate
{
	my ($node, $n, $sql) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_until(qr/started/, "\\echo started\n$sql\n");
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
	) or die "session $n did not queue on the gate";
	return $s;
}

# Sessions that died with the server: reap their psql processes.
sub reap_sessions
{
	for my $s (@_)
	{
		eval { $s->{run}->kill_kill; };
	}
}

1;
