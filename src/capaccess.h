/*-------------------------------------------------------------------------
 *
 * capaccess.h
 *	  Shared declarations of the capaccess extension.
 *
 * The extension keeps a fixed table of per-customer slots in shared
 * memory.  Each slot holds a gate (who may update the customer right now,
 * and who waits for it, in arrival order) and a cache of the customer's
 * last committed state.  The table capaccess.customer stays the source of
 * truth: the cache is rebuilt from it whenever it is missing.
 *
 * The files:
 *	  capaccess.c  - _PG_init, GUCs, shared-memory lifecycle
 *	  slots.c	   - finding, claiming and pinning a customer's slot; the cache
 *	  gate.c	   - the gate: acquire, wait, hand off, and the transaction
 *					 callbacks that release it
 *	  deadlock.c   - finding cycles of waits that run through gates
 *	  table.c	   - capaccess.customer: locking it, checking its columns,
 *					 acting as its owner, reading its rows, and telling
 *					 whether a cached row version is still the current one
 *	  update.c	   - capaccess_update, capaccess_register, capaccess_reset
 *	  admin.c	   - capaccess_unregister, capaccess_reset_all
 *	  json_api.c   - the jsonb form of capaccess_update
 *	  fnv1a.c	   - FNV-1a and the canonical state encoding
 *	  stats.c	   - capaccess_stats(), capaccess_counters(), capaccess_stats_reset()
 *	  verify.c	   - capaccess_verify()
 *	  peek.c	   - capaccess_peek(): the committed state, without a gate
 *	  monitor.c	   - capaccess_gates(), capaccess_blocking_pids()
 *	  idle.c	   - capaccess.idle_holder_timeout
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAPACCESS_H
#define CAPACCESS_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "access/xlogdefs.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "port/atomics.h"
#include "storage/itemptr.h"
#include "storage/lockdefs.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#include "compat.h"

/* Longest access text (in bytes) that a slot's cache can hold. */
#define CAPACCESS_ACCESS_CACHE	48

/*
 * Longest access text (in bytes) a customer may have: the table's CHECK
 * access_max_length says the same.  It keeps a row well below the size at
 * which PostgreSQL moves values to TOAST, and bounds the hashing done under
 * a gate.
 */
#define CAPACCESS_ACCESS_MAX	1024

/* Largest jsonb argument (in bytes) of capaccess_update(jsonb, jsonb). */
#define CAPACCESS_JSONB_MAX		8192

/* Databases whose pinned slots are counted separately (see slots.c). */
#define CAPACCESS_DB_SHARES		64

/* How many slots from its home a customer may be placed at. */
#define CAPACCESS_PROBE_WINDOW	64

/* Most slots one backend can pin at once outside the gates it holds. */
#define CAPACCESS_MAX_LOOSE_PINS	16

/*
 * A customer's state as one version of its row holds it.  Used for the slot
 * cache, for the state staged by a transaction until it commits, and for
 * results.  access_len is -1 when the access text is too long to be cached.
 *
 * relfilenode, tid and xmin name the row version the state was read from or
 * written as.  The cache may answer for the customer only while that
 * version is the latest committed one (capaccess_row_is_current), so any
 * write that bypasses the gate makes the cache stale, never wrong.
 */
typedef struct CapaccessState
{
	int64		used;
	int64		cap;
	int64		clock;
	int64		seq;
	int64		state_hash;
	bool		seq_isnull;
	int			access_len;
	char		access[CAPACCESS_ACCESS_CACHE];
	Oid			relfilenode;	/* the table's storage the version is in */
	ItemPointerData tid;		/* where the version is, or invalid */
	TransactionId xmin;			/* the (sub)transaction that wrote it */
	XLogRecPtr	lsn;			/* WAL to flush before answering from it */
} CapaccessState;

/* One slot of the shared table.  See slots.c and gate.c for the protocol. */
typedef struct CapaccessSlot
{
	/* identity: generation (32 bits) | pins (24 bits) | state (8 bits) */
	pg_atomic_uint64 ctl;
	pg_atomic_uint64 key;		/* customer id, valid while state is ACTIVE */
	pg_atomic_uint64 scope;		/* database and table the customer is in */
	slock_t		claim;			/* serialises insertions of customers homed
								 * here */

	/* the gate */
	pg_atomic_uint32 holder;	/* 0 when free, else holder's pgprocno + 1 */
	pg_atomic_uint64 releases;	/* times a holder gave the gate up */
	slock_t		qlock;			/* protects qhead, qtail, nwaiters, held_since
								 * and waiters' links */
	int			qhead;			/* first waiter's pgprocno, or -1 */
	int			qtail;			/* last waiter's pgprocno, or -1 */
	int			nwaiters;		/* length of the queue */
	TimestampTz held_since;		/* when the holder got the gate */

	/* cache of the last committed state, a seqlock */
	pg_atomic_uint32 version;	/* odd while the cache is being written */
	bool		loaded;			/* false until the cache holds a state */
	CapaccessState state;
} CapaccessSlot;

/* Longest description of a deadlock kept for its victim. */
#define CAPACCESS_DEADLOCK_DETAIL	1024

/* Per-backend node of the wait queues, indexed by pgprocno. */
typedef struct CapaccessProc
{
	int			next;			/* next waiter in the same queue, or -1 */
	int			prev;			/* previous waiter, or -1 */
	pg_atomic_uint32 waiting_slot;	/* slot index + 1 waited on, 0 if none */
	pg_atomic_uint32 granted;	/* set by the releaser that hands us the gate */
	pg_atomic_uint32 wait_seq;	/* bumped each time this backend queues */
	pg_atomic_uint32 victim_of; /* wait_seq of the wait a deadlock check chose
								 * to end, or 0 (deadlock.c) */
	int64		waiting_for;	/* customer id waited for, for messages */
	TimestampTz wait_since;		/* when this backend queued */
	TimestampTz granted_at;		/* when the gate was handed to us */
	int			idle_ended_pid; /* set by a waiter that ends this backend for
								 * holding a gate while idle (idle.c) */
	int64		idle_ended_customer;	/* the gate it held */
	char		deadlock_detail[CAPACCESS_DEADLOCK_DETAIL]; /* the cycle, for the
															 * victim */
} CapaccessProc;

/* Counters shown by capaccess_stats(). */
typedef struct CapaccessCounters
{
	pg_atomic_uint64 accepted;
	pg_atomic_uint64 rejected;
	pg_atomic_uint64 fast_rejected;
	pg_atomic_uint64 waits;
	pg_atomic_uint64 deadlocks;
	pg_atomic_uint64 lock_timeouts;
	pg_atomic_uint64 evictions;
	pg_atomic_uint64 handoffs;	/* gates handed to a waiter */
	pg_atomic_uint64 handoff_us;	/* from those hand-offs to the new holder
									 * running again */
	pg_atomic_uint64 holds;		/* gates released */
	pg_atomic_uint64 hold_us;	/* from taking those gates to releasing them */
	pg_atomic_uint64 early_releases;	/* commits whose gates were released
										 * before their flush */
	pg_atomic_uint64 deadlock_checks;	/* walks of the wait-for graph */
	pg_atomic_uint64 stale_caches;	/* cached states found superseded by a
									 * write that bypassed the gate */
	pg_atomic_uint64 slotless;	/* calls that found no slot and relied on the
								 * row lock alone */
	pg_atomic_uint64 gate_limit_errors; /* calls refused by
										 * capaccess.max_gates_per_transaction */
	pg_atomic_uint64 idle_holders_ended;	/* sessions ended by
											 * capaccess.idle_holder_timeout */
	pg_atomic_uint64 direct_writes; /* rows written without the executor
									 * (write.c) */
} CapaccessCounters;

/* How many slots one database's customers have pinned (slots.c). */
typedef struct CapaccessDbShare
{
	pg_atomic_uint32 dbid;		/* 0 while the entry is unused */
	pg_atomic_uint32 pinned;
} CapaccessDbShare;

/*
 * A block of seq values for one database's capaccess.seq (seq.c).  The key
 * (dbid, seqid, file) changes under the assignment lock, lock and mutex;
 * the block under lock and mutex; a draw takes only mutex.
 */
typedef struct CapaccessSeqBlock
{
	slock_t		mutex;
	LWLock	   *lock;			/* serialises checks and refills */
	Oid			dbid;			/* InvalidOid: unused */
	Oid			seqid;
	Oid			file;			/* the sequence's relfilenode */
	int64		next;			/* the next value to hand out */
	int64		left;			/* how many are left, from next on */
	int64		top;			/* the nextval the block came from */
	uint64		refilled;		/* when assigned or refilled, in refills: the
								 * oldest is evicted */
} CapaccessSeqBlock;

/* Databases with a block each; more share the least recently refilled. */
#define CAPACCESS_SEQ_BLOCKS	64

/* LWLocks of the tranche "capaccess_seq": the assignment lock, then one
 * per block */
#define CAPACCESS_SEQ_LWLOCKS	(1 + CAPACCESS_SEQ_BLOCKS)

typedef struct CapaccessSeqShared
{
	LWLock	   *assign_lock;	/* gives entries to databases */
	pg_atomic_uint64 refills;	/* a clock for refilled */
	CapaccessSeqBlock blocks[CAPACCESS_SEQ_BLOCKS];
} CapaccessSeqShared;

typedef struct CapaccessShared
{
	LWLock	   *deadlock_lock;	/* serialises confirming deadlocks */
	int			nslots;
	int			nprocs;
	CapaccessCounters counters;
	pg_atomic_uint64 early_release_lsn; /* end of the latest commit that
										 * released its gates early */
	/* one entry per database, and a last one shared by any beyond those */
	CapaccessDbShare dbshares[CAPACCESS_DB_SHARES + 1];
	CapaccessSeqShared seq;		/* seq values in blocks (seq.c) */
	CapaccessSlot *slots;		/* nslots entries, in this segment */
	CapaccessProc *procs;		/* nprocs entries, in this segment */
} CapaccessShared;

/* What capaccess_verify() reads of a slot (slots.c). */
typedef struct CapaccessSlotView
{
	bool		active;			/* the slot belongs to customer_id */
	uint64		scope;
	int64		customer_id;
	uint32		holder;			/* pgprocno + 1 of the gate holder, or 0 */
	bool		loaded;
	uint32		version;		/* cache version, to detect a change */
	CapaccessState state;
} CapaccessSlotView;

/* the shared segment (capaccess.c), and its slots and queue nodes */
extern CapaccessShared *capaccess_shared;

static inline CapaccessSlot *
capaccess_slot_at(int slot)
{
	return &capaccess_shared->slots[slot];
}

static inline CapaccessProc *
capaccess_proc_at(int procno)
{
	return &capaccess_shared->procs[procno];
}

/* capaccess.c */
extern int	capaccess_max_customers;
extern bool capaccess_early_release;
extern int	capaccess_deadlock_walk_delay;
extern int	capaccess_max_gates_per_transaction;
extern int	capaccess_idle_holder_timeout;
extern int	capaccess_database_slot_share;
extern void capaccess_check_loaded(void);
extern void capaccess_check_access_length(size_t len);

/* slots.c */
extern Size capaccess_slots_size(int nslots);
extern void capaccess_slots_init(CapaccessSlot *slots, int nslots);
extern int	capaccess_slot_pin(uint64 scope, int64 customer_id, bool create);
extern void capaccess_slot_unpin(int slot);
extern void capaccess_slot_keep_pin(int slot);
extern void capaccess_slot_drop_kept_pin(int slot);
extern int	capaccess_slot_release_loose_pins(SubTransactionId subid);
extern void capaccess_slot_reparent_loose_pins(SubTransactionId subid,
											   SubTransactionId parent);
extern bool capaccess_slot_read_cache(int slot, CapaccessState *out);
extern bool capaccess_slot_cached_tid(int slot, ItemPointer tid);
extern void capaccess_slot_write_cache(int slot, const CapaccessState *state);
extern void capaccess_slot_forget_cache(int slot);
extern bool capaccess_slot_inspect(int slot, CapaccessSlotView *view);
extern int64 *capaccess_slot_busy_customers(uint64 scope, int *n);

/* gate.c */
extern uint32 capaccess_wait_event_gate;
extern void capaccess_gate_register_callbacks(void);
extern bool capaccess_gate_is_held(uint64 scope, int64 customer_id);
extern bool capaccess_gate_acquire(int slot, uint64 scope, int64 customer_id);
extern bool capaccess_gate_try_acquire(int slot, uint64 scope, int64 customer_id);
extern void capaccess_gate_stage(uint64 scope, int64 customer_id,
								 const CapaccessState *state);
extern void capaccess_gate_stage_gone(uint64 scope, int64 customer_id);
extern void capaccess_gate_give_back(uint64 scope, int64 customer_id,
									 const CapaccessState *committed);
extern void capaccess_gate_set_limit_exempt(bool exempt);
extern bool capaccess_gate_is_gateless(uint64 scope, int64 customer_id);
extern void capaccess_gate_go_without(uint64 scope, int64 customer_id);
extern bool capaccess_gate_take_or_go_without(uint64 scope, int64 customer_id);
extern bool capaccess_gate_holds_any(void);

/* idle.c */
extern void capaccess_idle_install_hook(void);
extern TimestampTz capaccess_idle_holder_check(int slot, int64 customer_id,
											   TimestampTz now);

/* deadlock.c */
extern bool capaccess_deadlock_should_check(int slot);
extern void capaccess_deadlock_check(int slot, int64 customer_id);
extern void capaccess_deadlock_report_victim(int64 customer_id);

/* fnv1a.c */
extern uint32 capaccess_fnv1a(uint32 hash, const unsigned char *data, size_t len);
extern int64 capaccess_state_hash_of(int64 customer_id, int64 clock, int64 used,
									 int64 cap, const char *access, int access_len);

/* table.c: capaccess.customer, and acting as its owner */
typedef struct CapaccessSpi
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} CapaccessSpi;

/* Positions of the contract's columns (table.c), for capaccess_table_attnum. */
#define CAPACCESS_COL_CUSTOMER_ID	0
#define CAPACCESS_COL_CAP			1
#define CAPACCESS_COL_USED			2
#define CAPACCESS_COL_ACCESS		3
#define CAPACCESS_COL_CLOCK			4
#define CAPACCESS_COL_SEQ			5
#define CAPACCESS_COL_STATE_HASH	6
#define CAPACCESS_COL_UPDATED_AT	7

extern Relation capaccess_table_open(LOCKMODE lockmode);
extern AttrNumber capaccess_table_attnum(int col);
extern Oid	capaccess_table_seq(void);

/* seq.c */
extern void capaccess_seq_init(CapaccessSeqShared *s, LWLockPadded *locks);
extern int64 capaccess_seq_next(Oid seqid);
extern Oid	capaccess_seq_function(void);
extern int	capaccess_seq_form(void);

/*
 * The expression for a new seq in the statements run through SPI, in two
 * forms indexed by capaccess_seq_form(): nextval under the 1.0 schema,
 * capaccess.next_seq() (a value from the block, seq.c) from 1.1 on.
 */
#define CAPACCESS_SEQ_NEXTVAL \
	"pg_catalog.nextval('capaccess.seq'::pg_catalog.regclass)"
#define CAPACCESS_SEQ_BLOCK		"capaccess.next_seq()"
extern void capaccess_table_lock_indexes(Relation rel);
extern uint64 capaccess_table_scope(Relation rel);
extern uint64 capaccess_table_generation(void);
extern void capaccess_spi_connect(Relation rel, CapaccessSpi *spi);
extern void capaccess_spi_finish(CapaccessSpi *spi);
extern int	capaccess_spi_column(TupleDesc desc, const char *name);
extern void capaccess_state_from_row(Relation rel, HeapTuple tup, TupleDesc desc,
									 int64 customer_id, CapaccessState *st,
									 char **access_out, MemoryContext cxt);
extern bool capaccess_row_is_current(Relation rel, const CapaccessState *st,
									 int64 customer_id);
extern XLogRecPtr capaccess_durable_lsn(void);
extern bool capaccess_row_held_by_us(Relation rel, ItemPointer tid);

/* update.c: one customer's update under its gate */
typedef enum CapaccessOp
{
	CAPACCESS_OP_UPDATE,		/* consume, and maybe a new cap or access */
	CAPACCESS_OP_RESET			/* set used, as at a new billing period */
} CapaccessOp;

/* Writing a row without the executor (write.c). */
typedef enum CapaccessWrite
{
	CAPACCESS_WRITE_DONE,		/* written */
	CAPACCESS_WRITE_NO_ROW,		/* no row, or it does not allow the call */
	CAPACCESS_WRITE_USE_SQL		/* nothing written: run the UPDATE */
} CapaccessWrite;

typedef struct CapaccessWriteArgs
{
	CapaccessOp op;
	int64		customer_id;
	int64		consume;		/* update: added to used; reset: the new used */
	bool		has_cap;
	int64		new_cap;
	const char *new_access;		/* or NULL */
	ItemPointer tid;			/* the version to try first, or NULL */
} CapaccessWriteArgs;

extern bool capaccess_direct_write;
extern void capaccess_write_prepare(Relation rel);
extern CapaccessWrite capaccess_write_direct(Relation rel,
											 const CapaccessWriteArgs *a,
											 HeapTuple *newtup_out);

typedef struct CapaccessResult
{
	bool		updated;
	const char *reason;			/* NULL when updated */
	bool		found;			/* false for not_found: state is all NULL */
	int64		used;
	int64		cap;
	int64		clock;
	int64		seq;
	bool		seq_isnull;
	int64		state_hash;
	char	   *access;			/* palloc'd */
} CapaccessResult;

extern void capaccess_check_can_write(const char *fname);
extern SPIPlanPtr capaccess_prepare_once(SPIPlanPtr *plan, const char *sql,
										 int nargs, Oid *argtypes);
extern void capaccess_forget_plan(SPIPlanPtr *plan);
extern void capaccess_do_update(int64 customer_id, int64 consume,
								bool has_cap, int64 new_cap,
								const char *new_access,
								CapaccessResult *result);
extern void capaccess_do_reset(int64 customer_id, int64 new_used,
							   CapaccessResult *result);
extern Datum capaccess_result_datum(FunctionCallInfo fcinfo,
									const CapaccessResult *r);

#endif							/* CAPACCESS_H */
