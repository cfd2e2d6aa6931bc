/*-------------------------------------------------------------------------
 *
 * update.c
 *	  capaccess_update, capaccess_register and capaccess_reset: writing one
 *	  customer under its gate.
 *
 * A call of capaccess_update goes through these steps, each a function
 * below:
 *
 *	call_begin		   Lock the table and check its contract (table.c).
 *	refuse_from_cache  If the customer's cached state refuses the call (cap
 *					   exceeded, below zero) and the row version it was read
 *					   from is still the current one, answer from it without
 *					   queueing: refusals never wait behind accepted updates.
 *	call_connect	   Act as the table's owner with the settings pinned, and
 *					   make sure the statements' plans are built and valid,
 *					   so that nobody plans under the gate while others wait.
 *	take_gate		   Queue for the customer's gate (gate.c).
 *	write_row		   Write the row: without the executor where the table
 *					   allows it (write.c), else one prepared UPDATE through
 *					   SPI.  Either goes, after a wait, to the position of
 *					   the last committed row version (its ctid), else, or if
 *					   that finds nothing, by key.  Both check the cap and
 *					   compute the new clock, sequence number and state hash
 *					   from the row, so the table stays right whatever shared
 *					   memory says.
 *	accept			   Stage the new state; the commit publishes it to the
 *					   cache and releases the gate.
 *	explain_refusal	   The UPDATE changed nothing: read the row to say why
 *					   (cap_exceeded, below_zero, not_found), give the gate
 *					   back at once, and refresh the cache from the row (or
 *					   drop it), flushing the WAL up to what it reports.
 *
 * A call that gets no slot (its window is full, or its database has used
 * up its share, see slots.c) goes without a gate: take_gate counts it and
 * write_row runs the UPDATE by key, whose row lock then orders it with
 * every other writer of the customer.  The cap check, the clock and the
 * sequence number come from the row in the same statement, so they stay
 * exact; what is lost is the queue's order and the cache.  Its refusals
 * read the row FOR NO KEY UPDATE, so that what they report is the state
 * the UPDATE found, not one committed just after it.
 *
 * capaccess_reset goes through the same steps but the cache, with an UPDATE
 * that sets used instead of adding to it; capaccess_register inserts under
 * the gate.  The statements name every column, table, function and
 * operator with its schema, and read their results by column name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_update);
PG_FUNCTION_INFO_V1(capaccess_consume);
PG_FUNCTION_INFO_V1(capaccess_register);

/*
 * The UPDATE, in three forms.  $1 customer_id, $2 consume, $3 new cap or
 * NULL, $4 new access or NULL.  The first finds the row by its primary key.
 * The second, with $5, goes straight to the row version the slot cache says
 * was committed last: with a long queue, the waiters' snapshots keep every
 * version since the oldest of them from being pruned, and the key lookup
 * walks them all.  Both check the key and the cap, so a stale $5 finds
 * nothing and the first form runs.  The third, for capaccess_reset, sets
 * used to $2.
 */
#define UPDATE_SET(seq) \
"UPDATE capaccess.customer AS c SET" \
"  used = c.used OPERATOR(pg_catalog.+) $2," \
"  cap = COALESCE($3, c.cap)," \
"  access = COALESCE($4, c.access)," \
"  clock = c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8," \
"  seq = " seq "," \
"  state_hash = capaccess.state_hash(c.customer_id," \
"    c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8," \
"    c.used OPERATOR(pg_catalog.+) $2, COALESCE($3, c.cap)," \
"    COALESCE($4, c.access))," \
"  updated_at = pg_catalog.now()"
#define UPDATE_CAP_QUAL \
"   AND c.used OPERATOR(pg_catalog.+) $2 OPERATOR(pg_catalog.>=) 0::pg_catalog.int8" \
"   AND ($2 OPERATOR(pg_catalog.<=) 0::pg_catalog.int8" \
"        OR c.used OPERATOR(pg_catalog.+) $2 OPERATOR(pg_catalog.<=) COALESCE($3, c.cap))"
#define STATE_COLUMNS \
" c.customer_id, c.cap, c.used, c.access, c.clock, c.seq, c.state_hash, c.ctid"

#define UPDATE_BY_KEY(seq) \
UPDATE_SET(seq) \
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1" \
UPDATE_CAP_QUAL \
" RETURNING" STATE_COLUMNS
#define UPDATE_BY_TID(seq) \
UPDATE_SET(seq) \
" WHERE c.ctid OPERATOR(pg_catalog.=) $5" \
"   AND c.customer_id OPERATOR(pg_catalog.=) $1" \
UPDATE_CAP_QUAL \
" RETURNING" STATE_COLUMNS
#define RESET(seq) \
"UPDATE capaccess.customer AS c SET" \
"  used = $2," \
"  clock = c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8," \
"  seq = " seq "," \
"  state_hash = capaccess.state_hash(c.customer_id," \
"    c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8, $2, c.cap, c.access)," \
"  updated_at = pg_catalog.now()" \
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1" \
" RETURNING" STATE_COLUMNS

/* each in the schema's two forms: see CAPACCESS_SEQ_BLOCK (capaccess.h) */
static const char *const update_sql[2] = {
	UPDATE_BY_KEY(CAPACCESS_SEQ_NEXTVAL), UPDATE_BY_KEY(CAPACCESS_SEQ_BLOCK)
};
static const char *const update_tid_sql[2] = {
	UPDATE_BY_TID(CAPACCESS_SEQ_NEXTVAL), UPDATE_BY_TID(CAPACCESS_SEQ_BLOCK)
};
static const char *const reset_sql[2] = {
	RESET(CAPACCESS_SEQ_NEXTVAL), RESET(CAPACCESS_SEQ_BLOCK)
};

static const char *const select_sql =
"SELECT" STATE_COLUMNS ", c.xmin FROM capaccess.customer AS c"
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1";

static const char *const select_lock_sql =
"SELECT" STATE_COLUMNS ", c.xmin FROM capaccess.customer AS c"
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE";

static const char *const insert_sql =
"INSERT INTO capaccess.customer AS c"
"  (customer_id, cap, used, access, clock, seq, state_hash, updated_at)"
" VALUES ($1, $2, 0, $3, 0, NULL,"
"  capaccess.state_hash($1, 0::pg_catalog.int8, 0::pg_catalog.int8, $2, $3),"
"  pg_catalog.now())"
" RETURNING c.*, c.ctid";

static Oid	update_argtypes[5] = {INT8OID, INT8OID, INT8OID, TEXTOID, TIDOID};
static Oid	insert_argtypes[3] = {INT8OID, INT8OID, TEXTOID};

static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr update_tid_plan = NULL;
static SPIPlanPtr reset_plan = NULL;
static SPIPlanPtr select_plan = NULL;
static SPIPlanPtr select_lock_plan = NULL;
static SPIPlanPtr insert_plan = NULL;

/* The table generation the plans were last checked against (table.c). */
static bool plans_checked = false;
static uint64 plans_generation = 0;
static int	plans_form = 0;		/* of the UPDATEs prepared */

/* One call of capaccess_update or capaccess_reset, as it goes. */
typedef struct CapaccessCall
{
	/* what was asked */
	CapaccessOp op;
	int64		customer_id;
	int64		consume;		/* update: added to used; reset: the new used */
	bool		has_cap;
	int64		new_cap;
	const char *new_access;
	/* where it is */
	MemoryContext callercxt;
	Relation	rel;
	uint64		scope;
	CapaccessSpi spi;
	bool		connected;		/* SPI connected, as the owner */
	bool		held_before;	/* this transaction held the gate already */
	bool		gateless_before;	/* or wrote the row without it (gate.c) */
	int			slot;			/* the customer's slot, if pinned */
	bool		gated;			/* holds the gate (else it had no slot) */
	bool		waited;			/* the gate was handed over after a wait */
	ItemPointerData tid;		/* the row version to go to, as $5 */
	HeapTuple	written;		/* the new version, if written directly */
	Datum		args[5];
	char		nulls[5];
} CapaccessCall;

/*
 * Prepare a statement once per backend.  It always runs with its generic
 * plan, built once: custom plans would be planned again on each of the
 * first calls, and the UPDATEs run while the whole queue waits.
 */
SPIPlanPtr
capaccess_prepare_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, argtypes,
										   CURSOR_OPT_GENERIC_PLAN);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for capaccess statement: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/* Free a plan prepared by capaccess_prepare_once, to prepare it anew. */
void
capaccess_forget_plan(SPIPlanPtr *plan)
{
	if (*plan != NULL)
		SPI_freeplan(*plan);
	*plan = NULL;
}

/*
 * Build the plans, or check them again after the table changed, before
 * queueing for a gate: a backend's first call, or its first after DDL,
 * would otherwise parse and plan them, and load the catalog entries they
 * need, while the gate is held and the whole queue waits.  Run as the
 * owner, with the settings pinned, so that the plans' search_path is the
 * one they run with.
 */
static void
plans_ensure(void)
{
	SPIPlanPtr	plans[6];

	int			form;

	if (plans_checked && plans_generation == capaccess_table_generation())
		return;
	/* the schema was updated (or went back to 1.0): the UPDATEs change */
	form = capaccess_seq_form();
	if (form != plans_form)
	{
		capaccess_forget_plan(&update_plan);
		capaccess_forget_plan(&update_tid_plan);
		capaccess_forget_plan(&reset_plan);
		plans_form = form;
	}
	plans[0] = capaccess_prepare_once(&update_plan, update_sql[form], 4,
									  update_argtypes);
	plans[1] = capaccess_prepare_once(&update_tid_plan, update_tid_sql[form], 5,
									  update_argtypes);
	plans[2] = capaccess_prepare_once(&reset_plan, reset_sql[form], 2,
									  update_argtypes);
	plans[3] = capaccess_prepare_once(&select_plan, select_sql, 1, update_argtypes);
	plans[4] = capaccess_prepare_once(&insert_plan, insert_sql, 3, insert_argtypes);
	plans[5] = capaccess_prepare_once(&select_lock_plan, select_lock_sql, 1,
									  update_argtypes);
	for (int i = 0; i < lengthof(plans); i++)
	{
		CachedPlan *cplan = SPI_plan_get_cached_plan(plans[i]);

		if (cplan != NULL)
			ReleaseCachedPlan(cplan, CurrentResourceOwner);
	}
	plans_generation = capaccess_table_generation();
	plans_checked = true;
}

/* Common checks: preloaded, writable, not in a parallel worker. */
void
capaccess_check_can_write(const char *fname)
{
	capaccess_check_loaded();
	PreventCommandIfReadOnly(fname);
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot call %s during a parallel operation", fname)));
}

static void
result_from_state(CapaccessResult *r, const CapaccessState *st, char *access)
{
	r->found = true;
	r->used = st->used;
	r->cap = st->cap;
	r->clock = st->clock;
	r->seq = st->seq;
	r->seq_isnull = st->seq_isnull;
	r->state_hash = st->state_hash;
	r->access = access;
}

/*
 * Would the committed state refuse this call?  Returns the reason, or NULL
 * when the call may be accepted (or overflows, which the UPDATE reports).
 */
static const char *
refusal_reason(const CapaccessCall *c, const CapaccessState *st)
{
	int64		new_used;

	if (c->op == CAPACCESS_OP_RESET)
		return NULL;
	if (pg_add_s64_overflow(st->used, c->consume, &new_used))
		return NULL;
	if (new_used < 0)
		return "below_zero";
	if (c->consume > 0 && new_used > (c->has_cap ? c->new_cap : st->cap))
		return "cap_exceeded";
	return NULL;
}

/*
 * Give the page of the row version about to be updated by TID a chance to
 * be pruned.  An index scan does this on its way to a row; the TID path
 * skips the index, and without it the page would fill with dead versions
 * and updates would stop being HOT.
 */
static void
prune_page_of(Relation rel, ItemPointer tid)
{
	BlockNumber blkno = ItemPointerGetBlockNumber(tid);

	if (blkno < RelationGetNumberOfBlocks(rel))
	{
		Buffer		buf = ReadBuffer(rel, blkno);

		heap_page_prune_opt(rel, buf);
		ReleaseBuffer(buf);
	}
}

/* Lock and check the table; everything a refusal from the cache needs. */
static void
call_begin(CapaccessCall *c, const char *fname)
{
	capaccess_check_can_write(fname);
	c->callercxt = CurrentMemoryContext;
	c->rel = capaccess_table_open(RowExclusiveLock);
	c->scope = capaccess_table_scope(c->rel);
	c->held_before = capaccess_gate_is_held(c->scope, c->customer_id);
	c->gateless_before = !c->held_before &&
		capaccess_gate_is_gateless(c->scope, c->customer_id);
	c->gated = c->held_before;
	c->slot = -1;
	c->waited = false;
	c->connected = false;
}

/*
 * Act as the table's owner and make sure the plans are ready, before
 * queueing for the gate.
 */
static void
call_connect(CapaccessCall *c)
{
	capaccess_table_lock_indexes(c->rel);
	capaccess_spi_connect(c->rel, &c->spi);
	c->connected = true;
	plans_ensure();
	capaccess_write_prepare(c->rel);

	memset(c->nulls, ' ', sizeof(c->nulls));
	c->args[0] = Int64GetDatum(c->customer_id);
	c->args[1] = Int64GetDatum(c->consume);
	c->args[2] = Int64GetDatum(c->new_cap);
	if (!c->has_cap)
		c->nulls[2] = 'n';
	if (c->new_access != NULL)
		c->args[3] = CStringGetTextDatum(c->new_access);
	else
	{
		c->args[3] = (Datum) 0;
		c->nulls[3] = 'n';
	}
	c->args[4] = (Datum) 0;
	c->nulls[4] = 'n';
}

static void
call_end(CapaccessCall *c)
{
	if (c->connected)
		capaccess_spi_finish(&c->spi);
	table_close(c->rel, NoLock);
}

/*
 * Answer a refusal from the cache, if the cached state refuses the call and
 * is still the customer's latest committed state.  Otherwise the customer's
 * slot stays pinned (when it has one) for take_gate.
 */
static bool
refuse_from_cache(CapaccessCall *c, CapaccessResult *result)
{
	CapaccessState st;
	const char *reason;

	if (c->held_before || c->gateless_before || c->op != CAPACCESS_OP_UPDATE)
		return false;
	c->slot = capaccess_slot_pin(c->scope, c->customer_id, false);
	if (c->slot < 0 || !capaccess_slot_read_cache(c->slot, &st))
		return false;
	reason = refusal_reason(c, &st);
	if (reason == NULL)
		return false;
	if (!capaccess_row_is_current(c->rel, &st, c->customer_id))
	{
		/* written behind the gate's back: ask the table, under the gate */
		pg_atomic_fetch_add_u64(&capaccess_shared->counters.stale_caches, 1);
		return false;
	}

	capaccess_slot_unpin(c->slot);
	c->slot = -1;
	/* the state may come from an early release: make it durable */
	XLogFlush(st.lsn);
	result->updated = false;
	result->reason = reason;
	result_from_state(result, &st, MemoryContextAlloc(c->callercxt,
													  st.access_len + 1));
	memcpy(result->access, st.access, st.access_len);
	result->access[st.access_len] = '\0';
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.rejected, 1);
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.fast_rejected, 1);
	return true;
}

/* Does this transaction hold the customer's current row (table.c)? */
static bool
row_held_by_us(CapaccessCall *c)
{
	int			rc = SPI_execute_plan(select_plan, c->args, c->nulls, false, 1);
	bool		isnull;
	Datum		tid;

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "capaccess SELECT failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	tid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						capaccess_spi_column(SPI_tuptable->tupdesc, "ctid"), &isnull);
	return !isnull &&
		capaccess_row_held_by_us(c->rel, (ItemPointer) DatumGetPointer(tid));
}

static void
take_gate(CapaccessCall *c)
{
	if (c->held_before)
		return;
	if (!c->gateless_before && c->slot < 0)
		c->slot = capaccess_slot_pin(c->scope, c->customer_id, true);
	if (c->slot < 0)
	{
		/*
		 * No slot to be had, or this transaction holds the row lock already:
		 * the UPDATE's row lock alone orders this call.
		 */
		capaccess_gate_go_without(c->scope, c->customer_id);
		return;
	}

	/*
	 * A transaction that wrote something may hold the customer's row already
	 * (a write of its own without the gate, capaccess_reset_all's first pass,
	 * an UPDATE that found the row no longer qualifying): then the gate's
	 * holder may be waiting for it, and it must not queue behind that holder.
	 * It goes on without the gate, on the lock it holds.
	 */
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
	{
		if (capaccess_gate_try_acquire(c->slot, c->scope, c->customer_id))
		{
			c->gated = true;
			return;
		}
		if (row_held_by_us(c))
		{
			capaccess_slot_unpin(c->slot);
			c->slot = -1;
			capaccess_gate_go_without(c->scope, c->customer_id);
			return;
		}
	}
	/* the pin now belongs to the gate */
	c->waited = capaccess_gate_acquire(c->slot, c->scope, c->customer_id);
	c->gated = true;
}

/* Run one form of the UPDATE; true if it updated the row. */
static bool
run_update(SPIPlanPtr plan, CapaccessCall *c)
{
	int			rc = SPI_execute_plan(plan, c->args, c->nulls, false, 0);

	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "capaccess UPDATE failed: %s", SPI_result_code_string(rc));
	return SPI_processed == 1;
}

/*
 * The UPDATE.  A call that waited in line goes to the last committed
 * version directly, if the cache knows where it is: the queue's snapshots
 * are what keeps the versions behind it from being pruned.  Otherwise, or
 * if that version is not the one this statement sees, by the key.
 */
static bool
write_row(CapaccessCall *c)
{
	CapaccessWriteArgs a;
	bool		have_tid = c->waited && capaccess_slot_cached_tid(c->slot, &c->tid);

	/* either way goes to that version by position, past the index scan */
	if (have_tid)
		prune_page_of(c->rel, &c->tid);

	a.op = c->op;
	a.customer_id = c->customer_id;
	a.consume = c->consume;
	a.has_cap = c->has_cap;
	a.new_cap = c->new_cap;
	a.new_access = c->new_access;
	a.tid = have_tid ? &c->tid : NULL;
	c->written = NULL;
	switch (capaccess_write_direct(c->rel, &a, &c->written))
	{
		case CAPACCESS_WRITE_DONE:
			return true;
		case CAPACCESS_WRITE_NO_ROW:
			return false;
		case CAPACCESS_WRITE_USE_SQL:
			break;
	}

	if (c->op == CAPACCESS_OP_RESET)
		return run_update(reset_plan, c);

	if (have_tid)
	{
		c->args[4] = PointerGetDatum(&c->tid);
		c->nulls[4] = ' ';
		if (run_update(update_tid_plan, c))
			return true;
	}
	return run_update(update_plan, c);
}

/* The UPDATE was accepted: stage its state for the commit to publish. */
static void
accept(CapaccessCall *c, CapaccessResult *result)
{
	CapaccessState st;
	char	   *access;

	if (c->written != NULL)
	{
		capaccess_state_from_row(c->rel, c->written, RelationGetDescr(c->rel),
								 c->customer_id, &st, &access, c->callercxt);
		st.tid = c->written->t_self;
	}
	else
		capaccess_state_from_row(c->rel, SPI_tuptable->vals[0],
								 SPI_tuptable->tupdesc, c->customer_id, &st,
								 &access, c->callercxt);
	st.xmin = GetCurrentTransactionIdIfAny();
	if (c->gated)
		capaccess_gate_stage(c->scope, c->customer_id, &st);
	result->updated = true;
	result->reason = NULL;
	result_from_state(result, &st, access);
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.accepted, 1);
}

/*
 * Read the customer's row as it stands.  Not read-only: in READ COMMITTED
 * that takes a fresh snapshot.  Returns false if there is none.
 */
static bool
read_row(CapaccessCall *c, CapaccessState *st, char **access)
{
	SPIPlanPtr	plan = c->gated ? select_plan : select_lock_plan;
	int			rc = SPI_execute_plan(plan, c->args, c->nulls, false, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "capaccess SELECT failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	capaccess_state_from_row(c->rel, SPI_tuptable->vals[0],
							 SPI_tuptable->tupdesc, c->customer_id, st,
							 access, c->callercxt);
	return true;
}

/*
 * The UPDATE changed nothing.  Say why, from the row as it stands, give the
 * gate back if this call took it, and answer only once what is reported is
 * durable.  Returns false if the row turned out to allow the call after
 * all (a write that bypassed the gate committed meanwhile): the caller
 * tries the UPDATE again.
 */
static bool
explain_refusal(CapaccessCall *c, CapaccessResult *result, bool last_try)
{
	CapaccessState st;
	char	   *access = NULL;
	bool		found = read_row(c, &st, &access);
	XLogRecPtr	seen = capaccess_durable_lsn();

	result->updated = false;
	if (found)
	{
		result->reason = refusal_reason(c, &st);
		if (result->reason == NULL)
		{
			if (!last_try)
				return false;
			ereport(ERROR,
					(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
					 errmsg("the update of customer " INT64_FORMAT " in capaccess.customer changed no row",
							c->customer_id),
					 errdetail("The row allows the update, so a BEFORE UPDATE trigger on the table may have skipped it.")));
		}
		st.lsn = seen;
		result_from_state(result, &st, access);
	}
	else
		result->reason = "not_found";

	/*
	 * This call wrote nothing.  If it took the gate, give it back now.  A row
	 * read with a fresh snapshot under the gate is the committed state, and
	 * becomes the cache; otherwise the cache is dropped.  But if the UPDATE
	 * left this transaction holding the row (it waited for a writer that
	 * bypassed the gate, and then found the row no longer qualifying), the
	 * gate is kept to the end of the transaction: the next holder would only
	 * wait for that lock, and this transaction's next call would queue behind
	 * it.
	 */
	if (c->gated && !c->held_before &&
		!(found && capaccess_row_held_by_us(c->rel, &st.tid)))
		capaccess_gate_give_back(c->scope, c->customer_id,
								 (found && !IsolationUsesXactSnapshot()) ? &st : NULL);
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.rejected, 1);

	/*
	 * The state read may have been committed without a flush (an early
	 * release, or a writer with synchronous_commit = off).  Answer only once
	 * it is durable.
	 */
	XLogFlush(seen);
	return true;
}

static void
run_call(CapaccessCall *c, const char *fname, CapaccessResult *result)
{
	memset(result, 0, sizeof(CapaccessResult));
	call_begin(c, fname);
	if (refuse_from_cache(c, result))
	{
		call_end(c);
		return;
	}
	call_connect(c);
	take_gate(c);
	if (write_row(c))
		accept(c, result);
	else if (!explain_refusal(c, result, false))
	{
		/* one more try, by key, when the row changed under us */
		c->waited = false;
		if (write_row(c))
			accept(c, result);
		else
			(void) explain_refusal(c, result, true);
	}
	call_end(c);
}

void
capaccess_do_update(int64 customer_id, int64 consume, bool has_cap,
					int64 new_cap, const char *new_access,
					CapaccessResult *result)
{
	CapaccessCall c = {0};

	c.op = CAPACCESS_OP_UPDATE;
	c.customer_id = customer_id;
	c.consume = consume;
	c.has_cap = has_cap;
	c.new_cap = new_cap;
	c.new_access = new_access;
	run_call(&c, "capaccess_update()", result);
}

void
capaccess_do_reset(int64 customer_id, int64 new_used, CapaccessResult *result)
{
	CapaccessCall c = {0};

	c.op = CAPACCESS_OP_RESET;
	c.customer_id = customer_id;
	c.consume = new_used;
	run_call(&c, "capaccess_reset()", result);
}

/*
 * The result row types of the functions that return a CapaccessResult,
 * blessed once per backend instead of once per call (bench/PROFILE.md):
 * by function OID, dropped whenever pg_proc changes.
 */
#define RESULT_TYPES	4
static struct
{
	Oid			fn_oid;
	TupleDesc	tupdesc;
}			result_types[RESULT_TYPES];
static bool result_types_watched = false;

static void
result_types_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int i = 0; i < RESULT_TYPES; i++)
		result_types[i].fn_oid = InvalidOid;
}

static TupleDesc
result_type_of(FunctionCallInfo fcinfo)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	TupleDesc	tupdesc;
	MemoryContext old;
	int			free_entry = -1;

	for (int i = 0; i < RESULT_TYPES; i++)
	{
		if (result_types[i].fn_oid == fn_oid && OidIsValid(fn_oid))
			return result_types[i].tupdesc;
		if (!OidIsValid(result_types[i].fn_oid) && free_entry < 0)
			free_entry = i;
	}
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (free_entry < 0 || !OidIsValid(fn_oid))
		return BlessTupleDesc(tupdesc);

	if (!result_types_watched)
	{
		CacheRegisterSyscacheCallback(PROCOID, result_types_forget, (Datum) 0);
		result_types_watched = true;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (result_types[free_entry].tupdesc != NULL)
		FreeTupleDesc(result_types[free_entry].tupdesc);
	tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
	MemoryContextSwitchTo(old);
	result_types[free_entry].tupdesc = tupdesc;
	result_types[free_entry].fn_oid = fn_oid;
	return tupdesc;
}

/*
 * The row (updated, reason, used, cap, access, clock, seq, state_hash) that
 * capaccess_update and capaccess_reset return.
 */
Datum
capaccess_result_datum(FunctionCallInfo fcinfo, const CapaccessResult *r)
{
	TupleDesc	tupdesc = result_type_of(fcinfo);
	Datum		values[8];
	bool		nulls[8];

	memset(nulls, !r->found, sizeof(nulls));
	values[0] = BoolGetDatum(r->updated);
	nulls[0] = false;
	values[1] = r->reason ? CStringGetTextDatum(r->reason) : (Datum) 0;
	nulls[1] = (r->reason == NULL);
	values[2] = Int64GetDatum(r->used);
	values[3] = Int64GetDatum(r->cap);
	values[4] = r->found ? CStringGetTextDatum(r->access) : (Datum) 0;
	values[5] = Int64GetDatum(r->clock);
	values[6] = Int64GetDatum(r->seq);
	if (r->found && r->seq_isnull)
		nulls[6] = true;
	values[7] = Int64GetDatum(r->state_hash);

	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

static void
check_id_and_consume(FunctionCallInfo fcinfo, const char *hint)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_id must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("consume must not be null"),
				 errhint("%s", hint)));
}

/*
 * capaccess_update(customer_id bigint, consume bigint DEFAULT 1,
 *					new_cap bigint DEFAULT NULL, new_access text DEFAULT NULL)
 */
Datum
capaccess_update(PG_FUNCTION_ARGS)
{
	CapaccessResult r;
	bool		has_cap = !PG_ARGISNULL(2);
	int64		new_cap = has_cap ? PG_GETARG_INT64(2) : 0;

	capaccess_check_loaded();
	check_id_and_consume(fcinfo, "Pass 0 to change only the cap or the access level.");
	if (has_cap && new_cap < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("new_cap must not be negative"),
				 errdetail("The value given was " INT64_FORMAT ".", new_cap)));

	/* before detoasting it: the size is in the header */
	if (!PG_ARGISNULL(3))
		capaccess_check_access_length(toast_raw_datum_size(PG_GETARG_DATUM(3)) - VARHDRSZ);

	capaccess_do_update(PG_GETARG_INT64(0), PG_GETARG_INT64(1), has_cap, new_cap,
						PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
						&r);
	PG_RETURN_DATUM(capaccess_result_datum(fcinfo, &r));
}

/*
 * capaccess_consume(customer_id bigint, consume bigint DEFAULT 1): an update
 * that can change nothing but used.  A negative consume is a refund.
 */
Datum
capaccess_consume(PG_FUNCTION_ARGS)
{
	CapaccessResult r;

	capaccess_check_loaded();
	check_id_and_consume(fcinfo, "Pass 0 to change nothing but the clock.");
	capaccess_do_update(PG_GETARG_INT64(0), PG_GETARG_INT64(1), false, 0, NULL, &r);
	PG_RETURN_DATUM(capaccess_result_datum(fcinfo, &r));
}

/*
 * The new row as the function's result, a capaccess.customer: each column
 * of the row type, by name, from the row the INSERT returned.  The row
 * type has whatever columns the table has now, dropped ones included.
 */
static Datum
row_as_result(FunctionCallInfo fcinfo, HeapTuple row, TupleDesc rowdesc,
			  MemoryContext cxt)
{
	TupleDesc	tupdesc;
	Datum	   *values;
	bool	   *nulls;
	MemoryContext old;
	Datum		result;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values = palloc(tupdesc->natts * sizeof(Datum));
	nulls = palloc(tupdesc->natts * sizeof(bool));
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		int			col;

		values[i] = (Datum) 0;
		nulls[i] = true;
		if (att->attisdropped)
			continue;
		col = capaccess_spi_column(rowdesc, NameStr(att->attname));
		values[i] = SPI_getbinval(row, rowdesc, col, &nulls[i]);
	}
	/* in the caller's memory: SPI's goes away with SPI_finish */
	old = MemoryContextSwitchTo(cxt);
	tupdesc = BlessTupleDesc(tupdesc);
	result = HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * capaccess_register(customer_id bigint, cap bigint, access text DEFAULT 'none')
 * returns the new capaccess.customer row.
 */
Datum
capaccess_register(PG_FUNCTION_ARGS)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Relation	rel;
	uint64		scope;
	CapaccessSpi spi;
	Datum		args[3];
	int			rc;
	int64		customer_id;
	CapaccessState st;
	char	   *access;
	Datum		result;
	bool		gated;

	capaccess_check_can_write("capaccess_register()");
	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null",
							i == 0 ? "customer_id" : i == 1 ? "cap" : "access")));
	if (PG_GETARG_INT64(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cap must not be negative"),
				 errdetail("The value given was " INT64_FORMAT ".", PG_GETARG_INT64(1))));

	capaccess_check_access_length(toast_raw_datum_size(PG_GETARG_DATUM(2)) - VARHDRSZ);

	customer_id = PG_GETARG_INT64(0);
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);

	rel = capaccess_table_open(RowExclusiveLock);
	scope = capaccess_table_scope(rel);
	capaccess_table_lock_indexes(rel);
	capaccess_spi_connect(rel, &spi);
	plans_ensure();

	/*
	 * Registering is an update like any other: under the gate, and the new
	 * state becomes the cache at commit.  Without a slot, the primary key
	 * alone keeps two registrations apart.
	 */
	gated = capaccess_gate_take_or_go_without(scope, customer_id);

	rc = SPI_execute_plan(insert_plan, args, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "capaccess INSERT failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("the registration of customer " INT64_FORMAT " inserted no row into capaccess.customer",
						customer_id),
				 errdetail("A BEFORE INSERT trigger on the table may have skipped it.")));

	capaccess_state_from_row(rel, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							 customer_id, &st, &access, CurrentMemoryContext);
	st.xmin = GetCurrentTransactionIdIfAny();
	if (gated)
		capaccess_gate_stage(scope, customer_id, &st);

	result = row_as_result(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						   callercxt);
	capaccess_spi_finish(&spi);
	table_close(rel, NoLock);
	PG_RETURN_DATUM(result);
}
