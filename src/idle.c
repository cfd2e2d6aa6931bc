/*-------------------------------------------------------------------------
 *
 * idle.c
 *	  capaccess.idle_holder_timeout: ending a session that sits idle in
 *	  transaction while it holds a gate somebody waits for.
 *
 * A gate is held until its transaction ends, so a client that opens a
 * transaction, updates a customer and then does nothing keeps everyone
 * else's updates of that customer waiting.  PostgreSQL's own
 * idle_in_transaction_session_timeout does not help: it is off by default,
 * and any session may turn it off for itself.  capaccess.idle_holder_timeout
 * can be set only by a superuser.
 *
 * Protocol.  The idle holder runs no code of ours, so its first waiter
 * watches it, in the same sleep loop that checks for deadlocks (gate.c).
 * Under the slot's qlock the watcher reads whether it is first in the queue,
 * who holds the gate and the gate's release counter.  It then reads the
 * holder's activity entry (pg_stat_activity's source).  If the holder has
 * been "idle in transaction" for longer than the timeout, the watcher leaves
 * a note in the holder's CapaccessProc, reads holder and counter again under
 * qlock and the holder's activity entry again; if the same transaction
 * still holds the gate and is still in the same idle spell, it ends the
 * holder's session with SIGTERM, as pg_terminate_backend() would, and only
 * then logs.  The note makes the holder's FATAL message say why it ended
 * (the emit_log_hook below) instead of blaming an administrator; the hook
 * uses it only if the backend still holds a gate when the FATAL comes, so a
 * holder that committed in the instant before the signal is told
 * "administrator command" (57P01), not that it was idle in transaction
 * (25P03), which would suggest a rollback.  The holder's abort releases its
 * gates, and the next waiter gets this one.
 *
 * The holder's state comes from the activity statistics, so a holder whose
 * track_activities is off is never seen as idle (the setting is
 * superuser-only).  A holder nobody waits for is never watched.  As with
 * any timeout, a client that sends its next command at the very moment the
 * watcher decides may be ended just as it stops being idle.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "capaccess.h"

/* How often a waiter that is not first, or has nothing to watch, looks again. */
#define IDLE_RECHECK_MS		1000

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * Is the backend with this pid idle in transaction, and since when?  Reads
 * a fresh copy of the activity entries, and drops it again, so that this
 * transaction's own view of pg_stat_activity is not frozen at this moment.
 */
static bool
holder_idle_since(int pid, TimestampTz *since)
{
	bool		idle = false;
	int			n;

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *entry = CAPACCESS_LOCAL_BEENTRY(i);

		if (entry == NULL || entry->backendStatus.st_procpid != pid)
			continue;
		if (entry->backendStatus.st_state == STATE_IDLEINTRANSACTION)
		{
			*since = entry->backendStatus.st_state_start_timestamp;
			idle = true;
		}
		break;
	}
	pgstat_clear_backend_activity_snapshot();
	return idle;
}

/* Under qlock: are we first in line, and who holds the gate how often. */
static bool
read_gate(CapaccessSlot *s, uint32 *holder, uint64 *releases)
{
	bool		first;

	SpinLockAcquire(&s->qlock);
	first = (s->qhead == CAPACCESS_MY_PROCNO);
	*holder = pg_atomic_read_u32(&s->holder);
	*releases = pg_atomic_read_u64(&s->releases);
	SpinLockRelease(&s->qlock);
	return first;
}

/*
 * Called by a waiter on the slot's gate.  If it is first in line and the
 * holder has been idle in transaction longer than the timeout, end the
 * holder's session.  Returns when to look again.
 */
TimestampTz
capaccess_idle_holder_check(int slot, int64 customer_id, TimestampTz now)
{
	CapaccessSlot *s = capaccess_slot_at(slot);
	int			timeout = capaccess_idle_holder_timeout;
	uint32		holder;
	uint64		releases;
	uint32		holder_now;
	uint64		releases_now;
	PGPROC	   *proc;
	int			pid;
	TimestampTz since;
	TimestampTz since_now;
	TimestampTz expires;
	CapaccessProc *victim;

	if (timeout <= 0 || !read_gate(s, &holder, &releases) || holder == 0)
		return TimestampTzPlusMilliseconds(now, IDLE_RECHECK_MS);

	proc = GetPGProcByNumber(holder - 1);
	pid = proc->pid;
	if (pid == 0 || !holder_idle_since(pid, &since))
		return TimestampTzPlusMilliseconds(now, Min(timeout, IDLE_RECHECK_MS));
	expires = TimestampTzPlusMilliseconds(since, timeout);
	if (now < expires)
		return expires;

	victim = capaccess_proc_at(holder - 1);
	victim->idle_ended_customer = customer_id;
	pg_write_barrier();
	victim->idle_ended_pid = pid;

	/* the same transaction must still hold the gate, in the same idle spell */
	if (!read_gate(s, &holder_now, &releases_now) ||
		holder_now != holder || releases_now != releases || proc->pid != pid ||
		!holder_idle_since(pid, &since_now) || since_now != since)
	{
		victim->idle_ended_pid = 0;
		return TimestampTzPlusMilliseconds(now, 1);
	}

	/* as pg_terminate_backend(): backends lead their own process group */
	if (kill(-pid, SIGTERM) != 0)
	{
		victim->idle_ended_pid = 0;
		ereport(WARNING,
				(errmsg("could not send signal to process %d: %m", pid)));
		return TimestampTzPlusMilliseconds(now, timeout);
	}
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.idle_holders_ended, 1);
	ereport(LOG,
			(errmsg("capaccess: terminating process %d, which held the gate of customer " INT64_FORMAT " while idle in transaction",
					pid, customer_id),
			 errdetail("It was idle in transaction for %ld ms, longer than \"capaccess.idle_holder_timeout\" (%d ms), while this process waited.",
					   (long) ((now - since) / 1000), timeout)));
	return TimestampTzPlusMilliseconds(now, timeout);
}

/*
 * In the ended session: say why it ends.  The FATAL that SIGTERM causes
 * says "administrator command"; when a watcher sent it for an idle holder,
 * the message says so instead, with the SQLSTATE of
 * idle_in_transaction_session_timeout.
 */
static void
idle_emit_log(ErrorData *edata)
{
	if (edata->elevel == FATAL && edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN &&
		capaccess_shared != NULL && MyProc != NULL)
	{
		CapaccessProc *mine = capaccess_proc_at(CAPACCESS_MY_PROCNO);

		if (mine->idle_ended_pid == MyProcPid && capaccess_gate_holds_any())
		{
			pg_read_barrier();
			edata->sqlerrcode = ERRCODE_IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
			edata->message = psprintf("terminating connection because it held a capaccess gate while idle in transaction");
			edata->detail = psprintf("The session held the gate of customer " INT64_FORMAT ", which other sessions waited for, for longer than \"capaccess.idle_holder_timeout\" while idle in transaction.",
									 mine->idle_ended_customer);
			edata->hint = NULL;
			mine->idle_ended_pid = 0;
		}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
capaccess_idle_install_hook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = idle_emit_log;
}
