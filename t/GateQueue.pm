# Helpers the TAP tests share for sessions that wait on a capaccess gate.
package GateQueue;

use strict;
use warnings;

use Exporter 'import';
our @EXPORT = qw(queue_on_gate reap_sessions);

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
