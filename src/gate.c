/*-------------------------------------------------------------------------
 *
 * gate.c
 *	  The per-customer gate: who may update a customer now, and who is next.
 *
 * Locking protocol
 * ----------------
 * Each slot (slots.c) has a gate: the word "holder" (0 when free, else the
 * holder's pgprocno + 1) and a FIFO queue of waiting backends, a doubly
 * linked list threaded through the per-backend CapaccessProc nodes, guarded
 * by the slot's spinlock qlock.  The invariant is
 *
 *		holder == 0  implies  the queue is empty
 *
 * because a release with waiters hands the gate straight to the first one
 * and never makes it free.
 *
 * Acquire.  A backend first tries compare-and-swap holder 0 -> me, without
 * any lock: the uncontended path.  If that fails it takes qlock, tries the
 * CAS once more (the holder may have just left), and otherwise appends its
 * node to the queue, records in its node which slot it waits on, and sleeps
 * on its own latch.  It never spins.
 *
 * Release (at the end of the holder's top-level transaction, from the
 * transaction callback, or right away for a call that changed nothing).
 * Under qlock: if the queue is empty, holder = 0; otherwise pop the first
 * waiter W, set holder = W, clear W's waiting record, set W's granted flag.
 * After qlock is released, SetLatch(W).  The work is the same with one
 * waiter or a thousand, and only the new holder is woken.
 *
 * Leaving the queue.  A waiter that stops waiting (cancel, statement_timeout,
 * lock_timeout, deadlock, backend exit) takes qlock: if it was granted the
 * gate meanwhile, it releases it at once as above; otherwise it unlinks its
 * node, which is O(1) in a doubly linked list.
 *
 * Commit and abort.  The gate is held until the top-level transaction ends,
 * or until the subtransaction that took it rolls back: like a row lock, a
 * gate taken after a savepoint goes with ROLLBACK TO SAVEPOINT, since what
 * it protected is gone.
 * The state written by the transaction's UPDATEs is staged in backend-local
 * memory; the commit callback (after the transaction is visible to new
 * snapshots) publishes it to the slot cache and then releases the gate, so
 * the next holder's fresh snapshot already sees the committed row.  The
 * abort callback publishes nothing.  A subtransaction that rolls back marks
 * what it staged as unknown; at commit the cache is then dropped and will be
 * reloaded from the table.  Releasing uses only spinlocks, atomics and
 * SetLatch, so it cannot fail.  (The flush that follows an early release can
 * fail, but only with a PANIC, as it would inside the commit itself.)
 * PREPARE TRANSACTION is refused while a gate is held, because no callback
 * runs at COMMIT PREPARED.
 *
 * Early release (capaccess.early_release, on by default).  Waiting for the
 * commit record to reach disk is most of a holder's time, and nobody in the
 * queue needs it: a later transaction's commit record follows this one's
 * in the WAL, so the later one cannot be durable unless this one is.  So
 * the pre-commit callback of a transaction that holds a gate with someone
 * queued on it makes this commit asynchronous (synchronous_commit = off,
 * for this transaction only); the commit callback publishes the state,
 * hands the gate on, and only then flushes the WAL up to the commit record,
 * before the client is told anything.  A crash can therefore lose only
 * transactions that no client was told had committed, exactly as without
 * early release.  What changes: for the length of one flush, a session that
 * only reads may see the new state before it is durable.  capaccess's own
 * refusals, which report a state without writing, flush up to that state's
 * commit before they answer.  Early release is not used when nobody waits
 * (an ordinary commit then delays no one, and costs a little less), when
 * synchronous_commit is already off (there is no flush to wait for), or
 * when synchronous standbys must confirm the commit (the state must not be
 * seen before they do).
 *
 * Deadlocks.  Gate waits are invisible to PostgreSQL's deadlock detector,
 * so the first waiter of each queue looks for cycles itself, every
 * deadlock_timeout (deadlock.c).  A waiter that such a check chooses as
 * the victim is marked and woken; unless the gate was handed to it
 * meanwhile, it leaves the queue and fails with 40P01.  To let a check
 * confirm what it saw, every release of a gate bumps the slot's counter
 * "releases", and every time a backend queues it bumps its "wait_seq",
 * both under qlock.
 *
 * Limits.  A transaction may hold at most capaccess.max_gates_per_transaction
 * gates (capaccess_reset_all's are not counted).  The first waiter of a
 * queue also watches the holder, and ends its session if it stays idle in
 * transaction longer than capaccess.idle_holder_timeout (idle.c).
 *
 * Calls without a gate.  A call that gets no slot (slots.c) updates the
 * row with no gate, and its row lock lasts until the transaction ends.  The
 * customer is remembered as "gateless" for the rest of the transaction (or
 * until the subtransaction that locked it rolls back): later calls for it
 * in the same transaction go without a gate too, since queueing for the
 * gate while holding the row lock that the gate's holder may need would be
 * a deadlock with oneself; and PREPARE TRANSACTION is refused, as with a
 * gate, since nothing would then end the lock.
 *
 * Scope.  A held gate is known by its customer's scope (database and table)
 * and id, so that a transaction that drops and re-creates the extension
 * never mistakes an old gate for the new one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "capaccess.h"

/* What a held gate's transaction has staged for the slot cache. */
typedef enum PendingKind
{
	PENDING_NONE,				/* nothing written: leave the cache alone */
	PENDING_STATE,				/* publish state at commit */
	PENDING_FORGET				/* drop the cache at commit: the row was
								 * deleted, or a rollback to savepoint lost
								 * what was staged */
} PendingKind;

typedef struct HeldGate
{
	uint64		scope;
	int64		customer_id;
	int			slot;
	TimestampTz taken_at;		/* for capaccess_stats() */
	SubTransactionId taken_subid;	/* the subtransaction that took it */
	PendingKind pending;
	SubTransactionId pending_subid;
	CapaccessState state;
} HeldGate;

/* Gates this backend's transaction holds (backend-local). */
static HeldGate *held = NULL;
static int	nheld = 0;
static int	maxheld = 0;

/* Customers this transaction has written (or locked) without a gate. */
typedef struct GatelessCustomer
{
	uint64		scope;
	int64		customer_id;
	SubTransactionId subid;		/* the subtransaction that locked the row */
} GatelessCustomer;

static GatelessCustomer *gateless = NULL;
static int	ngateless = 0;
static int	maxgateless = 0;

/* The slot this backend is queued on, or -1. */
static int	waiting_slot = -1;

static bool exit_hook_registered = false;

/*
 * The wait event of a gate waiter, and of its pauses in a deadlock check
 * (see CAPACCESS_WAIT_EVENT_NEW): looked up once per backend before its
 * first take of a gate, while a failure still changes nothing.  The server
 * has room for 127 custom wait events, shared by all extensions and
 * injection points; if others took them all, taking a gate fails with
 * PostgreSQL's "too many custom wait events" until the server restarts.
 * capaccess takes one.
 */
uint32		capaccess_wait_event_gate = PG_WAIT_EXTENSION;

/* This transaction commits asynchronously and flushes after the release. */
static bool flush_after_release = false;

/* Gates taken now do not count against max_gates_per_transaction. */
static bool limit_exempt = false;

static void gate_xact_callback(XactEvent event, void *arg);
static void gate_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);

static int
held_find(uint64 scope, int64 customer_id)
{
	for (int i = 0; i < nheld; i++)
		if (held[i].customer_id == customer_id && held[i].scope == scope)
			return i;
	return -1;
}

bool
capaccess_gate_is_held(uint64 scope, int64 customer_id)
{
	return held_find(scope, customer_id) >= 0;
}

/*
 * Hand the gate to the next waiter, or make it free.  Caller must hold the
 * gate.  Cannot fail: it runs in transaction callbacks.
 */
static void
gate_handoff(int slot, TimestampTz now)
{
	CapaccessSlot *s = capaccess_slot_at(slot);
	int			next;

	SpinLockAcquire(&s->qlock);
	pg_atomic_write_u64(&s->releases, pg_atomic_read_u64(&s->releases) + 1);
	next = s->qhead;
	if (next < 0)
		pg_atomic_write_u32(&s->holder, 0);
	else
	{
		CapaccessProc *w = capaccess_proc_at(next);

		s->nwaiters--;
		s->held_since = now;
		s->qhead = w->next;
		if (s->qhead >= 0)
			capaccess_proc_at(s->qhead)->prev = -1;
		else
			s->qtail = -1;
		w->next = -1;
		w->prev = -1;
		pg_atomic_write_u32(&s->holder, (uint32) next + 1);
		pg_atomic_write_u32(&w->waiting_slot, 0);
		w->granted_at = now;
		pg_write_barrier();		/* granted_at before granted */
		pg_atomic_write_u32(&w->granted, 1);
	}
	SpinLockRelease(&s->qlock);

	if (next >= 0)
		SetLatch(&GetPGProcByNumber(next)->procLatch);
}

/*
 * Leave the queue of the slot we wait on, for whatever reason.  Returns
 * true if the gate had been handed to us meanwhile.  Then, with
 * keep_if_granted, we keep it and the caller goes on as its holder;
 * otherwise it is passed on at once.  The waiter's pin is dropped unless
 * the gate is kept.  Cannot fail.
 */
static bool
gate_leave_queue(bool keep_if_granted)
{
	int			slot = waiting_slot;
	CapaccessSlot *s;
	CapaccessProc *mine;
	bool		granted;

	if (slot < 0)
		return false;
	s = capaccess_slot_at(slot);
	mine = capaccess_proc_at(CAPACCESS_MY_PROCNO);

	SpinLockAcquire(&s->qlock);
	granted = pg_atomic_read_u32(&mine->granted) != 0;
	if (!granted)
	{
		if (mine->prev >= 0)
			capaccess_proc_at(mine->prev)->next = mine->next;
		else
			s->qhead = mine->next;
		if (mine->next >= 0)
			capaccess_proc_at(mine->next)->prev = mine->prev;
		else
			s->qtail = mine->prev;
		mine->next = -1;
		mine->prev = -1;
		s->nwaiters--;
	}
	pg_atomic_write_u32(&mine->waiting_slot, 0);
	pg_atomic_write_u32(&mine->victim_of, 0);
	SpinLockRelease(&s->qlock);

	if (granted && keep_if_granted)
		return true;
	waiting_slot = -1;
	if (granted)
		gate_handoff(slot, GetCurrentTimestamp());
	capaccess_slot_drop_kept_pin(slot);
	return granted;
}

/* Count a held gate's release, for capaccess_stats(). */
static void
count_release(const HeldGate *h, TimestampTz now)
{
	CapaccessCounters *c = &capaccess_shared->counters;

	pg_atomic_fetch_add_u64(&c->holds, 1);
	if (now > h->taken_at)
		pg_atomic_fetch_add_u64(&c->hold_us, (uint64) (now - h->taken_at));
}

/* Release every gate we hold; at commit, publish what was staged. */
static void
gate_release_all(bool commit)
{
	TimestampTz now;

	(void) gate_leave_queue(false);
	if (nheld == 0)
		return;

	now = GetCurrentTimestamp();
	for (int i = 0; i < nheld; i++)
	{
		HeldGate   *h = &held[i];

		if (commit && h->pending == PENDING_STATE)
		{
			h->state.lsn = XactLastCommitEnd;
			capaccess_slot_write_cache(h->slot, &h->state);
		}
		else if (commit && h->pending == PENDING_FORGET)
			capaccess_slot_forget_cache(h->slot);
		count_release(h, now);
		gate_handoff(h->slot, now);
		capaccess_slot_drop_kept_pin(h->slot);
	}
	nheld = 0;
}

/* Safety net: a backend that exits outside a transaction holds nothing. */
static void
gate_shmem_exit(int code, Datum arg)
{
	if (capaccess_shared != NULL)
	{
		(void) capaccess_slot_release_loose_pins(InvalidSubTransactionId);
		gate_release_all(false);
	}
}

/* Make room for one more held gate, before we take it. */
static void
held_reserve(void)
{
	if (nheld < maxheld)
		return;
	/* maxheld changes only once the allocation has succeeded */
	if (held == NULL)
	{
		held = MemoryContextAlloc(TopMemoryContext, 8 * sizeof(HeldGate));
		maxheld = 8;
	}
	else
	{
		held = repalloc(held, mul_size(maxheld, 2 * sizeof(HeldGate)));
		maxheld *= 2;
	}
}

/* Was the customer written without a gate earlier in this transaction? */
bool
capaccess_gate_is_gateless(uint64 scope, int64 customer_id)
{
	for (int i = 0; i < ngateless; i++)
		if (gateless[i].customer_id == customer_id && gateless[i].scope == scope)
			return true;
	return false;
}

/*
 * Remember that this transaction goes on without the customer's gate (it
 * got no slot), before it locks the row.
 */
static void
gate_note_gateless(uint64 scope, int64 customer_id)
{
	if (capaccess_gate_is_gateless(scope, customer_id))
		return;
	if (ngateless >= maxgateless)
	{
		if (gateless == NULL)
		{
			gateless = MemoryContextAlloc(TopMemoryContext,
										  8 * sizeof(GatelessCustomer));
			maxgateless = 8;
		}
		else
		{
			gateless = repalloc(gateless,
								mul_size(maxgateless, 2 * sizeof(GatelessCustomer)));
			maxgateless *= 2;
		}
	}
	gateless[ngateless].scope = scope;
	gateless[ngateless].customer_id = customer_id;
	gateless[ngateless].subid = GetCurrentSubTransactionId();
	ngateless++;
}

/*
 * Go on without the customer's gate (no slot, or this transaction holds its
 * row already): remembered for the rest of the transaction, and counted.
 */
void
capaccess_gate_go_without(uint64 scope, int64 customer_id)
{
	gate_note_gateless(scope, customer_id);
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.slotless, 1);
}

/*
 * For a call that writes one customer and needs nothing between pinning and
 * queueing (register, unregister): take the customer's gate, waiting in
 * line if need be, unless this transaction holds it already or goes
 * without it.  Returns true if the transaction holds the gate now.
 */
bool
capaccess_gate_take_or_go_without(uint64 scope, int64 customer_id)
{
	int			slot = -1;

	if (held_find(scope, customer_id) >= 0)
		return true;
	if (!capaccess_gate_is_gateless(scope, customer_id))
		slot = capaccess_slot_pin(scope, customer_id, true);
	if (slot < 0)
	{
		capaccess_gate_go_without(scope, customer_id);
		return false;
	}
	(void) capaccess_gate_acquire(slot, scope, customer_id);
	return true;
}

/* Is this backend's transaction holding any gate now? */
bool
capaccess_gate_holds_any(void)
{
	return nheld > 0;
}

static void
held_add(int slot, uint64 scope, int64 customer_id, TimestampTz now)
{
	HeldGate   *h = &held[nheld++];

	h->scope = scope;
	h->customer_id = customer_id;
	h->slot = slot;
	h->taken_at = now;
	h->taken_subid = GetCurrentSubTransactionId();
	h->pending = PENDING_NONE;
	h->pending_subid = InvalidSubTransactionId;
}

/*
 * Sleep until the gate of the slot is handed to us.  Honours cancel and
 * statement_timeout (through CHECK_FOR_INTERRUPTS) and lock_timeout; the
 * first waiter of the queue checks for deadlocks every deadlock_timeout,
 * and a waiter that a check chose as a deadlock's victim gives up.
 */
static void
gate_sleep(int slot, int64 customer_id, uint32 wait_seq)
{
	CapaccessProc *mine = capaccess_proc_at(CAPACCESS_MY_PROCNO);
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz next_check = TimestampTzPlusMilliseconds(start, DeadlockTimeout);

	/* the holder is watched from a second on (idle.c) */
	TimestampTz next_idle_check = TimestampTzPlusMilliseconds(start, 1000);
	TimestampTz deadline = 0;

	if (LockTimeout > 0)
		deadline = TimestampTzPlusMilliseconds(start, LockTimeout);

	for (;;)
	{
		TimestampTz now;
		TimestampTz wake;
		long		timeout_ms;

		if (pg_atomic_read_u32(&mine->granted) != 0)
			break;
		if (pg_atomic_read_u32(&mine->victim_of) == wait_seq)
		{
			/* a check found us on a cycle; it may have broken meanwhile */
			if (gate_leave_queue(true))
				break;
			capaccess_deadlock_report_victim(customer_id);
		}

		now = GetCurrentTimestamp();
		if (deadline != 0 && now >= deadline)
		{
			pg_atomic_fetch_add_u64(&capaccess_shared->counters.lock_timeouts, 1);
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("canceling statement due to lock timeout"),
					 errdetail("The capaccess gate of customer " INT64_FORMAT " was not handed over within \"lock_timeout\" (%d ms).",
							   customer_id, LockTimeout)));
		}
		if (now >= next_check)
		{
			if (capaccess_deadlock_should_check(slot))
				capaccess_deadlock_check(slot, customer_id);
			next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 DeadlockTimeout);
			continue;
		}
		if (now >= next_idle_check)
		{
			next_idle_check = capaccess_idle_holder_check(slot, customer_id, now);
			continue;
		}

		wake = next_check;
		if (next_idle_check < wake)
			wake = next_idle_check;
		if (deadline != 0 && deadline < wake)
			wake = deadline;
		timeout_ms = (long) ((wake - now + 999) / 1000);
		if (timeout_ms < 1)
			timeout_ms = 1;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, capaccess_wait_event_gate);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	pg_read_barrier();
}

/*
 * Take the gate of a slot the caller has pinned (a loose pin, which then
 * belongs to the gate and is dropped when the gate is released).  A
 * transaction that already holds the gate just goes on.  Returns true if
 * the gate was handed over after a wait in the queue, false if it was
 * taken at once.
 */
/* What taking one more gate needs, checked before anything is changed. */
static void
gate_prepare_take(void)
{
	if (nheld >= capaccess_max_gates_per_transaction && !limit_exempt)
	{
		pg_atomic_fetch_add_u64(&capaccess_shared->counters.gate_limit_errors, 1);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many capaccess gates held by one transaction"),
				 errdetail("The transaction holds the gates of %d customers, the most that \"capaccess.max_gates_per_transaction\" allows.",
						   nheld),
				 errhint("Commit more often, or ask a superuser to raise \"capaccess.max_gates_per_transaction\".")));
	}

	if (!exit_hook_registered)
	{
		capaccess_wait_event_gate = CAPACCESS_WAIT_EVENT_NEW("CapaccessGate");
		on_shmem_exit(gate_shmem_exit, (Datum) 0);
		exit_hook_registered = true;
	}
	held_reserve();				/* may fail: the pin is still a loose one */
}

/*
 * Take the gate of a slot the caller has pinned only if it is free (or
 * this transaction holds it already).  Returns false, leaving the loose pin
 * to the caller, if somebody else holds it.
 */
bool
capaccess_gate_try_acquire(int slot, uint64 scope, int64 customer_id)
{
	CapaccessSlot *s = capaccess_slot_at(slot);
	uint32		expected = 0;
	TimestampTz now;

	if (held_find(scope, customer_id) >= 0)
	{
		capaccess_slot_unpin(slot);
		return true;
	}
	gate_prepare_take();
	if (!pg_atomic_compare_exchange_u32(&s->holder, &expected,
										(uint32) CAPACCESS_MY_PROCNO + 1))
		return false;
	capaccess_slot_keep_pin(slot);
	now = GetCurrentTimestamp();
	s->held_since = now;
	held_add(slot, scope, customer_id, now);
	return true;
}

bool
capaccess_gate_acquire(int slot, uint64 scope, int64 customer_id)
{
	CapaccessSlot *s = capaccess_slot_at(slot);
	CapaccessProc *mine;
	int			me = CAPACCESS_MY_PROCNO;
	uint32		expected = 0;
	uint32		wait_seq;
	TimestampTz now;

	if (held_find(scope, customer_id) >= 0)
	{
		capaccess_slot_unpin(slot);
		return false;
	}
	gate_prepare_take();
	capaccess_slot_keep_pin(slot);

	/* uncontended: the gate is free, so nobody waits for it either */
	if (pg_atomic_compare_exchange_u32(&s->holder, &expected, (uint32) me + 1))
	{
		now = GetCurrentTimestamp();
		/* for capaccess_gates() only; a reader may see the previous one */
		s->held_since = now;
		held_add(slot, scope, customer_id, now);
		return false;
	}

	mine = capaccess_proc_at(me);
	now = GetCurrentTimestamp();
	SpinLockAcquire(&s->qlock);
	expected = 0;
	if (pg_atomic_compare_exchange_u32(&s->holder, &expected, (uint32) me + 1))
	{
		s->held_since = now;
		SpinLockRelease(&s->qlock);
		held_add(slot, scope, customer_id, now);
		return false;
	}
	wait_seq = pg_atomic_read_u32(&mine->wait_seq) + 1;
	if (wait_seq == 0)
		wait_seq = 1;			/* 0 means "no wait" to victim_of */
	pg_atomic_write_u32(&mine->wait_seq, wait_seq);
	pg_atomic_write_u32(&mine->granted, 0);
	mine->waiting_for = customer_id;
	mine->wait_since = now;
	mine->next = -1;
	mine->prev = s->qtail;
	if (s->qtail >= 0)
		capaccess_proc_at(s->qtail)->next = me;
	else
		s->qhead = me;
	s->qtail = me;
	s->nwaiters++;
	pg_atomic_write_u32(&mine->waiting_slot, (uint32) slot + 1);
	waiting_slot = slot;
	SpinLockRelease(&s->qlock);

	pg_atomic_fetch_add_u64(&capaccess_shared->counters.waits, 1);

	PG_TRY();
	{
		gate_sleep(slot, customer_id, wait_seq);
	}
	PG_CATCH();
	{
		(void) gate_leave_queue(false);
		PG_RE_THROW();
	}
	PG_END_TRY();

	waiting_slot = -1;
	pg_atomic_write_u32(&mine->victim_of, 0);
	now = GetCurrentTimestamp();
	held_add(slot, scope, customer_id, now);
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.handoffs, 1);
	if (now > mine->granted_at)
		pg_atomic_fetch_add_u64(&capaccess_shared->counters.handoff_us,
								(uint64) (now - mine->granted_at));
	return true;
}

/* Remember the state an UPDATE under the gate wrote, for the commit. */
void
capaccess_gate_stage(uint64 scope, int64 customer_id, const CapaccessState *state)
{
	int			i = held_find(scope, customer_id);

	Assert(i >= 0);
	held[i].state = *state;
	held[i].pending = PENDING_STATE;
	held[i].pending_subid = GetCurrentSubTransactionId();
}

/* The customer's row was deleted under the gate: drop the cache at commit. */
void
capaccess_gate_stage_gone(uint64 scope, int64 customer_id)
{
	int			i = held_find(scope, customer_id);

	Assert(i >= 0);
	held[i].pending = PENDING_FORGET;
	held[i].pending_subid = GetCurrentSubTransactionId();
}

/*
 * Give back, before the transaction ends, a gate this call took and used
 * only to read: a refusal writes nothing, so nothing needs protecting.  If
 * committed is given (it was read under the gate with a fresh snapshot), it
 * becomes the slot's cache; otherwise the cache is dropped, since what it
 * held did not match the table (not_found, or a row that did not refuse).
 */
void
capaccess_gate_give_back(uint64 scope, int64 customer_id,
						 const CapaccessState *committed)
{
	int			i = held_find(scope, customer_id);
	int			slot;
	TimestampTz now;

	Assert(i >= 0);
	slot = held[i].slot;
	now = GetCurrentTimestamp();
	count_release(&held[i], now);
	held[i] = held[--nheld];
	if (committed != NULL)
		capaccess_slot_write_cache(slot, committed);
	else
		capaccess_slot_forget_cache(slot);
	gate_handoff(slot, now);
	capaccess_slot_drop_kept_pin(slot);
}

/*
 * Would this commit wait for synchronous standbys?  This backend's own
 * synchronous_standby_names may be stale (a waiter reads the new value only
 * with its next command), so the flag the checkpointer keeps in shared
 * memory, which SyncRepWaitForLSN goes by, is consulted too.
 */
static bool
sync_standbys_wanted(void)
{
	volatile WalSndCtlData *ctl = WalSndCtl;

	if (!SyncRepRequested())
		return false;
	if (SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0')
		return true;
#if PG_VERSION_NUM >= 150013
	return (ctl->sync_standbys_status & SYNC_STANDBY_DEFINED) != 0;
#else
	return ctl->sync_standbys_defined;
#endif
}

/*
 * At pre-commit: should this transaction release its gates before its
 * commit is flushed?  If so, make the commit asynchronous; the commit
 * callback flushes after the release.  See "Early release" above.
 */
static void
gate_pre_commit(void)
{
	bool		waited_for = false;

	if (nheld == 0 || !capaccess_early_release || IsInParallelMode())
		return;

	/*
	 * Nobody in line: an ordinary commit keeps no one waiting.  A glance
	 * without the lock is enough; a waiter that comes in just after it waits
	 * for one flush, as it would without early release.
	 */
	for (int i = 0; i < nheld && !waited_for; i++)
		waited_for = ((volatile CapaccessSlot *) capaccess_slot_at(held[i].slot))->qhead >= 0;
	if (!waited_for)
		return;
	/* wrote nothing: there is no commit record to wait for */
	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return;
	/* already asynchronous: the gates go as soon as the commit is recorded */
	if (synchronous_commit <= SYNCHRONOUS_COMMIT_OFF)
		return;
	/* synchronous standbys must confirm before anyone sees the commit */
	if (sync_standbys_wanted())
		return;

	(void) set_config_option("synchronous_commit", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
	flush_after_release = true;
}

/* Keep the latest early-released commit's end, for capaccess_peek. */
static void
note_early_release(XLogRecPtr lsn)
{
	pg_atomic_uint64 *latest = &capaccess_shared->early_release_lsn;
	uint64		seen = pg_atomic_read_u64(latest);

	while (seen < (uint64) lsn &&
		   !pg_atomic_compare_exchange_u64(latest, &seen, (uint64) lsn))
		;
}

static void
gate_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (nheld > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that holds a capaccess gate"),
						 errdetail("The transaction holds the gate of customer " INT64_FORMAT ".",
								   held[0].customer_id),
						 errhint("Commit or roll back the transaction instead; capaccess does not support two-phase commit.")));
			if (ngateless > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that updated a capaccess customer without its gate"),
						 errdetail("The transaction locked the row of customer " INT64_FORMAT " when no slot was free, and would keep it locked until COMMIT PREPARED.",
								   gateless[0].customer_id),
						 errhint("Commit or roll back the transaction instead; capaccess does not support two-phase commit.")));
			break;
		case XACT_EVENT_PRE_COMMIT:
			gate_pre_commit();
			break;
		case XACT_EVENT_COMMIT:
			/* every call drops its loose pins before it returns */
			if (capaccess_slot_release_loose_pins(InvalidSubTransactionId) > 0)
				elog(WARNING, "capaccess slot pins were left at commit");

			/*
			 * PostgreSQL may have flushed anyway (a commit that drops files
			 * is always synchronous): count only the releases that are early.
			 */
			if (flush_after_release && XLogNeedsFlush(XactLastCommitEnd))
			{
				pg_atomic_fetch_add_u64(&capaccess_shared->counters.early_releases, 1);
				note_early_release(XactLastCommitEnd);
			}
			gate_release_all(true);
			ngateless = 0;
			if (flush_after_release)
			{
				/* the gates are gone; now make the commit durable */
				flush_after_release = false;
				XLogFlush(XactLastCommitEnd);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			flush_after_release = false;
			limit_exempt = false;
			(void) capaccess_slot_release_loose_pins(InvalidSubTransactionId);
			gate_release_all(false);
			ngateless = 0;
			break;
		default:
			/* parallel workers never hold gates */
			break;
	}
}

/*
 * A subtransaction rolled back: release the gates it (or its children)
 * took.  What was written under them is rolled back too, so the cache keeps
 * the last committed state; if anything was staged, it is dropped anyway,
 * to be read again.  Cannot fail.
 */
static void
gate_release_taken_since(SubTransactionId subid)
{
	TimestampTz now = 0;

	for (int i = nheld - 1; i >= 0; i--)
	{
		HeldGate   *h = &held[i];
		int			slot = h->slot;

		if (h->taken_subid < subid)
			continue;
		if (now == 0)
			now = GetCurrentTimestamp();
		if (h->pending != PENDING_NONE)
			capaccess_slot_forget_cache(slot);
		count_release(h, now);
		held[i] = held[--nheld];
		gate_handoff(slot, now);
		capaccess_slot_drop_kept_pin(slot);
	}
}

static void
gate_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* an error ended the calls that held these */
		(void) capaccess_slot_release_loose_pins(mySubid);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		capaccess_slot_reparent_loose_pins(mySubid, parentSubid);

	if (event == SUBXACT_EVENT_ABORT_SUB)
		gate_release_taken_since(mySubid);

	/* a rolled-back subtransaction's row locks are gone with it */
	for (int i = ngateless - 1; i >= 0; i--)
	{
		if (event == SUBXACT_EVENT_ABORT_SUB && gateless[i].subid >= mySubid)
			gateless[i] = gateless[--ngateless];
		else if (event == SUBXACT_EVENT_COMMIT_SUB && gateless[i].subid == mySubid)
			gateless[i].subid = parentSubid;
	}

	for (int i = 0; i < nheld; i++)
	{
		HeldGate   *h = &held[i];

		if (event == SUBXACT_EVENT_COMMIT_SUB && h->taken_subid == mySubid)
			h->taken_subid = parentSubid;
		if (h->pending == PENDING_NONE)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB && h->pending_subid >= mySubid)
			h->pending = PENDING_FORGET;
		else if (event == SUBXACT_EVENT_COMMIT_SUB && h->pending_subid == mySubid)
			h->pending_subid = parentSubid;
	}
}

/*
 * capaccess_reset_all takes the gates of the busy customers one by one, as
 * many as there are: those are not counted against the limit.
 */
void
capaccess_gate_set_limit_exempt(bool exempt)
{
	limit_exempt = exempt;
}

void
capaccess_gate_register_callbacks(void)
{
	RegisterXactCallback(gate_xact_callback, NULL);
	RegisterSubXactCallback(gate_subxact_callback, NULL);
}
