/*-------------------------------------------------------------------------
 *
 * deadlock.c
 *	  Finding cycles of waits that run through capaccess gates.
 *
 * PostgreSQL's deadlock detector sees only heavyweight-lock waits, so a
 * cycle through a gate (X waits for the gate A holds, A waits for a row
 * lock X holds) would hang.  capaccess looks for such cycles itself.
 *
 * The graph.  An edge u -> v means that u sleeps until v's transaction
 * moves on:
 *	- a gate edge: u is queued on a slot whose gate v holds;
 *	- a lock edge: u sleeps on a heavyweight lock, and pg_blocking_pids()
 *	  names v.
 *
 * Who looks.  Every cycle that runs through a gate has a gate edge W -> H,
 * and the first waiter Q of that gate's queue waits for H as well, so the
 * cycle is reachable from Q.  So only the first waiter of each queue walks
 * the graph, every deadlock_timeout while it is first, looking for any
 * cycle it can reach.  A thousand waiters on one gate make one walk per
 * deadlock_timeout, not a thousand; that matters because a walk through a
 * backend that waits on a heavyweight lock calls pg_blocking_pids(), which
 * takes every lock-manager partition lock.  A cycle is found within two
 * deadlock_timeouts of closing.
 *
 * The walk.  A depth-first search from the checker, without any lock, over
 * state that changes while it walks.  Each gate edge is read under the
 * slot's qlock, so its reading is consistent, together with the two
 * counters that every change of it bumps: the waiter's wait_seq (bumped
 * when it queues) and the slot's releases (bumped when the gate changes
 * hands).  Each lock edge is read with the waiter's lock wait (waitLock,
 * waitStart) and the blocker's transaction (lxid).
 *
 * Confirmation.  The edges of a cycle are read one after another, so the
 * cycle may never have existed at any one instant.  (X holds gate y and
 * waits for gate x, held by A; the walk records X -> A; A commits and hands
 * x to Z; A's next transaction queues on y; the walk records A -> X.)  So
 * a cycle the walk found is read again, under deadlock_lock, after the
 * walk ended:
 *	- a gate edge u -> v on slot s holds if u still waits on s in the same
 *	  wait (wait_seq) and s has not changed hands (releases): u cannot stop
 *	  waiting and wait again without a new wait_seq, nor v release and
 *	  retake the gate without bumping releases, so the edge existed all
 *	  along, from its first reading to this one;
 *	- a lock edge u -> v holds if u still sleeps in the same lock wait
 *	  (waitLock and waitStart), v is still in the same transaction (lxid),
 *	  and pg_blocking_pids() names v again.  While u waits, PostgreSQL
 *	  grants no other backend a lock that conflicts with u's request unless
 *	  that backend already held one, so within one wait the edge cannot
 *	  vanish and come back.
 * Every edge then existed at the instant the walk ended, so the cycle did;
 * and it persists, since each member sleeps until another one moves.
 *
 * The victim.  Still under deadlock_lock, the checker chooses one gate
 * waiter of the cycle (itself if it is on it) unless a member is already
 * chosen, records the description of the cycle in its node, marks it
 * (victim_of = its wait_seq) and wakes it.  The victim leaves the queue and
 * fails with 40P01, unless the gate was handed to it meanwhile.  So a cycle
 * costs exactly one transaction.  Cycles without a gate edge are
 * PostgreSQL's to break and are ignored here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "capaccess.h"

/* One edge of the wait-for graph, with what is needed to confirm it. */
typedef struct WaitEdge
{
	int			from;			/* pgprocno of the waiter */
	int			to;				/* pgprocno of the backend it waits for */
	bool		gate;			/* a gate edge, else a lock edge */
	/* a gate edge */
	int			slot;
	uint32		wait_seq;
	uint64		releases;
	int64		customer_id;
	/* a lock edge */
	void	   *wait_lock;
	uint64		wait_start;
	int			to_pid;
	LocalTransactionId to_lxid;
} WaitEdge;

/* The depth-first search's frame for one backend. */
typedef struct WalkFrame
{
	int			node;
	WaitEdge   *edges;
	int			nedges;
	int			next;			/* index of the next edge to follow */
} WalkFrame;

#define NODE_UNSEEN		0
#define NODE_ON_PATH	1
#define NODE_DONE		2

/* Should this waiter look for deadlocks now?  Only the queue's first. */
bool
capaccess_deadlock_should_check(int slot)
{
	return ((volatile CapaccessSlot *) capaccess_slot_at(slot))->qhead == CAPACCESS_MY_PROCNO;
}

/* Read u's gate edge, if u is queued, consistently under the slot's qlock. */
static bool
read_gate_edge(int u, WaitEdge *e)
{
	CapaccessProc *p = capaccess_proc_at(u);
	uint32		ws = pg_atomic_read_u32(&p->waiting_slot);
	CapaccessSlot *s;
	uint32		holder;

	if (ws == 0 || ws > (uint32) capaccess_shared->nslots)
		return false;
	s = capaccess_slot_at(ws - 1);
	SpinLockAcquire(&s->qlock);
	holder = pg_atomic_read_u32(&s->holder);
	e->from = u;
	e->to = (int) holder - 1;
	e->gate = true;
	e->slot = ws - 1;
	e->wait_seq = pg_atomic_read_u32(&p->wait_seq);
	e->releases = pg_atomic_read_u64(&s->releases);
	e->customer_id = p->waiting_for;
	/* only a waiter not yet granted, on that slot, waits for its holder */
	if (pg_atomic_read_u32(&p->waiting_slot) != ws ||
		pg_atomic_read_u32(&p->granted) != 0 || holder == 0 ||
		(int) holder - 1 == u)
		e->to = -1;
	SpinLockRelease(&s->qlock);
	return e->to >= 0;
}

/* Does the gate edge e still hold, unchanged since it was read? */
static bool
gate_edge_holds(const WaitEdge *e)
{
	CapaccessProc *p = capaccess_proc_at(e->from);
	CapaccessSlot *s = capaccess_slot_at(e->slot);
	bool		holds;

	SpinLockAcquire(&s->qlock);
	holds = pg_atomic_read_u32(&p->waiting_slot) == (uint32) e->slot + 1 &&
		pg_atomic_read_u32(&p->wait_seq) == e->wait_seq &&
		pg_atomic_read_u32(&p->granted) == 0 &&
		pg_atomic_read_u64(&s->releases) == e->releases &&
		pg_atomic_read_u32(&s->holder) == (uint32) e->to + 1;
	SpinLockRelease(&s->qlock);
	return holds;
}

/* The pids pg_blocking_pids() names for pid, as a palloc'd array. */
static int32 *
blocking_pids(int pid, int *npids)
{
	ArrayType  *arr;

	arr = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
												 Int32GetDatum(pid)));
	*npids = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	return (int32 *) ARR_DATA_PTR(arr);
}

/*
 * The edges out of backend u: its gate edge, or its lock edges.  Returns a
 * palloc'd array.
 */
static WaitEdge *
edges_of(int u, int *nedges)
{
	PGPROC	   *proc = GetPGProcByNumber(u);
	WaitEdge   *edges = palloc(sizeof(WaitEdge));
	WaitEdge	e;
	void	   *wait_lock;
	uint64		wait_start;
	int			pid;
	int32	   *pids;
	int			npids;

	*nedges = 0;
	if (read_gate_edge(u, &e))
	{
		edges[(*nedges)++] = e;
		return edges;
	}

	pid = proc->pid;
	wait_lock = (void *) ((volatile PGPROC *) proc)->waitLock;
	wait_start = pg_atomic_read_u64(&proc->waitStart);
	if (pid == 0 || wait_lock == NULL)
		return edges;

	pids = blocking_pids(pid, &npids);
	edges = repalloc(edges, Max(npids, 1) * sizeof(WaitEdge));
	for (int i = 0; i < npids; i++)
	{
		PGPROC	   *blocker = BackendPidGetProc(pids[i]);

		if (blocker == NULL)
			continue;			/* a prepared transaction, or gone */
		memset(&e, 0, sizeof(e));
		e.from = u;
		e.to = CAPACCESS_PROCNO(blocker);
		e.gate = false;
		e.wait_lock = wait_lock;
		e.wait_start = wait_start;
		e.to_pid = pids[i];
		e.to_lxid = CAPACCESS_PROC_LXID((volatile PGPROC *) blocker);
		edges[(*nedges)++] = e;
	}
	return edges;
}

/* Does the lock edge e still hold, in the same wait and transaction? */
static bool
lock_edge_holds(const WaitEdge *e)
{
	PGPROC	   *from = GetPGProcByNumber(e->from);
	PGPROC	   *to = GetPGProcByNumber(e->to);
	int32	   *pids;
	int			npids;
	int			pid = from->pid;

	if (pid == 0 ||
		(void *) ((volatile PGPROC *) from)->waitLock != e->wait_lock ||
		pg_atomic_read_u64(&from->waitStart) != e->wait_start ||
		((volatile PGPROC *) to)->pid != e->to_pid ||
		CAPACCESS_PROC_LXID((volatile PGPROC *) to) != e->to_lxid)
		return false;
	pids = blocking_pids(pid, &npids);
	for (int i = 0; i < npids; i++)
		if (pids[i] == e->to_pid)
			return true;
	return false;
}

static void
describe_edge(StringInfo buf, const WaitEdge *e)
{
	int			from_pid = GetPGProcByNumber(e->from)->pid;
	int			to_pid = GetPGProcByNumber(e->to)->pid;

	if (buf->len > 0)
		appendStringInfoChar(buf, '\n');
	if (e->gate)
		appendStringInfo(buf,
						 "Process %d waits for the capaccess gate of customer " INT64_FORMAT "; blocked by process %d.",
						 from_pid, e->customer_id, to_pid);
	else
		appendStringInfo(buf, "Process %d waits for a lock; blocked by process %d.",
						 from_pid, to_pid);
}

/* A gate waiter chosen as a victim whose wait is still going on. */
static bool
is_chosen(int procno)
{
	CapaccessProc *p = capaccess_proc_at(procno);

	return pg_atomic_read_u32(&p->waiting_slot) != 0 &&
		pg_atomic_read_u32(&p->victim_of) == pg_atomic_read_u32(&p->wait_seq);
}

/*
 * Confirm the cycle of n edges and, if it is real and has no victim yet,
 * choose one.  Returns true if the cycle was confirmed.
 */
static bool
confirm_and_choose(WaitEdge *cycle, int n)
{
	int			me = CAPACCESS_MY_PROCNO;
	int			victim = -1;
	bool		confirmed = true;
	StringInfoData buf;

	LWLockAcquire(capaccess_shared->deadlock_lock, LW_EXCLUSIVE);
	for (int i = 0; i < n && confirmed; i++)
	{
		confirmed = cycle[i].gate ? gate_edge_holds(&cycle[i])
			: lock_edge_holds(&cycle[i]);
		if (confirmed && cycle[i].gate && is_chosen(cycle[i].from))
		{
			/* another check got there first; that victim will go */
			LWLockRelease(capaccess_shared->deadlock_lock);
			return true;
		}
	}
	if (!confirmed)
	{
		LWLockRelease(capaccess_shared->deadlock_lock);
		return false;
	}

	for (int i = 0; i < n; i++)
	{
		if (!cycle[i].gate)
			continue;
		if (cycle[i].from == me)
		{
			victim = me;
			break;
		}
		if (victim < 0)
			victim = cycle[i].from;
	}
	Assert(victim >= 0);

	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
		describe_edge(&buf, &cycle[i]);
	strlcpy(capaccess_proc_at(victim)->deadlock_detail, buf.data,
			CAPACCESS_DEADLOCK_DETAIL);
	pg_write_barrier();
	for (int i = 0; i < n; i++)
		if (cycle[i].gate && cycle[i].from == victim)
			pg_atomic_write_u32(&capaccess_proc_at(victim)->victim_of, cycle[i].wait_seq);
	LWLockRelease(capaccess_shared->deadlock_lock);

	if (victim != me)
		SetLatch(&GetPGProcByNumber(victim)->procLatch);
	return true;
}

/*
 * Pause for capaccess.deadlock_walk_delay, awake to cancels and to a
 * hand-off of the gate.  Returns false if the gate was handed over.
 */
static bool
walk_pause(void)
{
	CapaccessProc *mine = capaccess_proc_at(CAPACCESS_MY_PROCNO);
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													capaccess_deadlock_walk_delay);

	for (;;)
	{
		long		ms;

		if (pg_atomic_read_u32(&mine->granted) != 0)
			return false;
		ms = (long) ((until - GetCurrentTimestamp()) / 1000);
		if (ms <= 0)
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, capaccess_wait_event_gate);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Walk the wait-for graph from this backend, the first waiter of slot's
 * queue, and deal with the first cycle through a gate that is confirmed.
 */
void
capaccess_deadlock_check(int slot, int64 customer_id)
{
	int			nprocs = capaccess_shared->nprocs;
	MemoryContext walkcxt;
	MemoryContext oldcxt;
	char	   *state;
	int		   *position;
	WalkFrame  *frames;
	WaitEdge   *cycle;
	int			depth = 0;
	int			me = CAPACCESS_MY_PROCNO;

	/*
	 * A waiter may walk many times during one wait: everything a walk
	 * allocates, pg_blocking_pids()'s lock data included, goes at its end.
	 */
	walkcxt = AllocSetContextCreate(CurrentMemoryContext,
									"capaccess deadlock check",
									ALLOCSET_DEFAULT_MINSIZE,
									(Size) ALLOCSET_DEFAULT_INITSIZE,
									(Size) ALLOCSET_DEFAULT_MAXSIZE);
	oldcxt = MemoryContextSwitchTo(walkcxt);
	state = palloc0(nprocs);
	position = palloc(nprocs * sizeof(int));
	frames = palloc(nprocs * sizeof(WalkFrame));
	cycle = palloc(nprocs * sizeof(WaitEdge));

	pg_atomic_fetch_add_u64(&capaccess_shared->counters.deadlock_checks, 1);

	frames[0].node = me;
	frames[0].edges = edges_of(me, &frames[0].nedges);
	frames[0].next = 0;
	state[me] = NODE_ON_PATH;
	position[me] = 0;
	depth = 1;

	while (depth > 0)
	{
		WalkFrame  *f = &frames[depth - 1];
		WaitEdge   *e;
		int			v;

		CHECK_FOR_INTERRUPTS();
		if (f->next >= f->nedges)
		{
			state[f->node] = NODE_DONE;
			depth--;
			continue;
		}
		e = &f->edges[f->next++];
		v = e->to;
		if (v < 0 || v >= nprocs)
			continue;
		if (state[v] == NODE_ON_PATH)
		{
			/* a cycle: the path from v to here, and e back to v */
			int			n = 0;
			bool		has_gate = false;

			for (int k = position[v]; k < depth; k++)
			{
				cycle[n] = frames[k].edges[frames[k].next - 1];
				has_gate |= cycle[n].gate;
				n++;
			}
			if (has_gate && confirm_and_choose(cycle, n))
				break;
			continue;
		}
		if (state[v] == NODE_UNSEEN)
		{
			/* tests only: let the graph change between two readings */
			if (capaccess_deadlock_walk_delay > 0 && depth >= 2 &&
				!walk_pause())
				break;			/* handed the gate: no need to walk on */
			state[v] = NODE_ON_PATH;
			position[v] = depth;
			frames[depth].node = v;
			frames[depth].edges = edges_of(v, &frames[depth].nedges);
			frames[depth].next = 0;
			depth++;
		}
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(walkcxt);
}

/*
 * This waiter was chosen as a deadlock's victim and has left the queue:
 * fail with 40P01.
 */
void
capaccess_deadlock_report_victim(int64 customer_id)
{
	CapaccessProc *mine = capaccess_proc_at(CAPACCESS_MY_PROCNO);
	char		detail[CAPACCESS_DEADLOCK_DETAIL];

	pg_read_barrier();
	strlcpy(detail, mine->deadlock_detail, sizeof(detail));
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.deadlocks, 1);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
			 errmsg("deadlock detected"),
			 errdetail_log("%s", detail),
			 errdetail("Process %d waits for the capaccess gate of customer " INT64_FORMAT ", and the wait leads back to it.",
					   MyProcPid, customer_id),
			 errhint("Update customers in the same order in every transaction, and retry the transaction.")));
}
