/*-------------------------------------------------------------------------
 *
 * update.c
 *	  capaccess_update and capaccess_register: the SQL API.
 *
 * A call to capaccess_update goes like this:
 *
 *	1. Refusal from the committed state.  If the customer's slot cache holds
 *	   its last committed state and that state already refuses the call (cap
 *	   exceeded, below zero), answer from it without touching the gate or the
 *	   table: refusals never queue behind accepted updates.
 *	2. Take the customer's gate (gate.c), waiting in line if needed.  The
 *	   UPDATE's plans are built before that, so no backend plans under the
 *	   gate while others wait.
 *	3. Run one prepared UPDATE through SPI: after a wait, by the position
 *	   of the last committed row version (its ctid), else, or if that finds
 *	   nothing, by key.  The statement itself checks the cap and computes
 *	   the new clock, sequence number and state hash from the row, so the
 *	   table stays right whatever shared memory says.
 *	4. Accepted: stage the new state; it is published to the cache when the
 *	   transaction commits, and the gate is released then.
 *	   Refused or unknown customer: read the row to say why.  If this call
 *	   took the gate, it gives it back at once, since it wrote nothing.
 *
 * The SPI statements run as the owner of capaccess.customer, so callers
 * need no privilege on the table, only EXECUTE on the functions.  All names
 * in them are schema-qualified, operators included, so objects on the
 * caller's search_path cannot capture them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_update);
PG_FUNCTION_INFO_V1(capaccess_register);

/*
 * The UPDATE, in two forms.  $1 customer_id, $2 consume, $3 new cap or
 * NULL, $4 new access or NULL.  The first finds the row by its primary key.
 * The second, with $5, goes straight to the row version the slot cache says
 * was committed last: with a long queue, the waiters' snapshots keep every
 * version since the oldest of them from being pruned, and the key lookup
 * walks them all.  Both check the key and the cap, so a stale $5 finds
 * nothing and the first form runs.
 */
#define UPDATE_SET \
"UPDATE capaccess.customer AS c SET" \
"  used = c.used OPERATOR(pg_catalog.+) $2," \
"  cap = COALESCE($3, c.cap)," \
"  access = COALESCE($4, c.access)," \
"  clock = c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8," \
"  seq = pg_catalog.nextval('capaccess.seq'::pg_catalog.regclass)," \
"  state_hash = capaccess.state_hash(c.customer_id," \
"    c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8," \
"    c.used OPERATOR(pg_catalog.+) $2, COALESCE($3, c.cap)," \
"    COALESCE($4, c.access))," \
"  updated_at = pg_catalog.now()"
#define UPDATE_CAP_QUAL \
"   AND c.used OPERATOR(pg_catalog.+) $2 OPERATOR(pg_catalog.>=) 0::pg_catalog.int8" \
"   AND ($2 OPERATOR(pg_catalog.<=) 0::pg_catalog.int8" \
"        OR c.used OPERATOR(pg_catalog.+) $2 OPERATOR(pg_catalog.<=) COALESCE($3, c.cap))"

static const char *const update_sql =
UPDATE_SET
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
UPDATE_CAP_QUAL
" RETURNING c.*, c.ctid";

static const char *const update_tid_sql =
UPDATE_SET
" WHERE c.ctid OPERATOR(pg_catalog.=) $5"
"   AND c.customer_id OPERATOR(pg_catalog.=) $1"
UPDATE_CAP_QUAL
" RETURNING c.*, c.ctid";

static const char *const select_sql =
"SELECT c.*, c.ctid FROM capaccess.customer AS c"
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1";

static const char *const insert_sql =
"INSERT INTO capaccess.customer AS c"
"  (customer_id, cap, used, access, clock, seq, state_hash, updated_at)"
" VALUES ($1, $2, 0, $3, 0, NULL,"
"  capaccess.state_hash($1, 0::pg_catalog.int8, 0::pg_catalog.int8, $2, $3),"
"  pg_catalog.now())"
" RETURNING c.*";

static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr update_tid_plan = NULL;
static SPIPlanPtr select_plan = NULL;
static SPIPlanPtr insert_plan = NULL;

/*
 * Prepare a statement once per backend.  It always runs with its generic
 * plan, built once: custom plans would be planned again on each of the
 * first calls, and the UPDATEs run while the whole queue waits.
 */
static SPIPlanPtr
prepare_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
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

/*
 * This backend's lookup of capaccess.customer and its owner, done once and
 * dropped whenever the relation cache entry of the table is invalidated
 * (DROP EXTENSION, ALTER TABLE ... OWNER, RENAME, SET SCHEMA) or the whole
 * relation cache is reset.
 */
static Oid	customer_relid = InvalidOid;
static Oid	customer_owner = InvalidOid;
static bool customer_inval_registered = false;

/* The UPDATE plans are built and, as far as we know, valid. */
static bool update_plans_ready = false;

static void
customer_table_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == customer_relid)
	{
		customer_relid = InvalidOid;
		customer_owner = InvalidOid;
		update_plans_ready = false;
	}
}

static void
customer_table_lookup(void)
{
	Oid			nsp;
	Oid			relid;
	HeapTuple	tup;

	if (OidIsValid(customer_relid))
		return;
	if (!customer_inval_registered)
	{
		CacheRegisterRelcacheCallback(customer_table_inval, (Datum) 0);
		customer_inval_registered = true;
	}

	nsp = get_namespace_oid("capaccess", true);
	relid = OidIsValid(nsp) ? get_relname_relid("customer", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table capaccess.customer does not exist"),
				 errhint("Run CREATE EXTENSION capaccess in this database.")));

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	customer_owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	customer_relid = relid;
}

/* OID of capaccess.customer in this database. */
static Oid
customer_table(void)
{
	customer_table_lookup();
	return customer_relid;
}

/*
 * The scope of this database's customers in the slot table: the database
 * and the table, so that neither two databases nor a re-created extension
 * share slots.
 */
uint64
capaccess_scope(void)
{
	return ((uint64) MyDatabaseId << 32) | (uint64) customer_table();
}

/* Owner of capaccess.customer, whose rights the SPI statements run with. */
static Oid
customer_table_owner(void)
{
	customer_table_lookup();
	return customer_owner;
}

/*
 * Connect to SPI and act as the table's owner, restricted as a security
 * definer would be.  An error on the way restores the user at abort.
 */
void
capaccess_spi_connect(CapaccessSpi *spi)
{
	Oid			owner = customer_table_owner();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&spi->save_userid, &spi->save_sec_context);
	SetUserIdAndSecContext(owner, spi->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
capaccess_spi_finish(CapaccessSpi *spi)
{
	SetUserIdAndSecContext(spi->save_userid, spi->save_sec_context);
	SPI_finish();
}

/* Common checks: preloaded, writable, not in a parallel worker. */
static void
check_can_write(const char *fname)
{
	capaccess_check_loaded();
	PreventCommandIfReadOnly(fname);
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot call %s during a parallel operation", fname)));
}

static int64
spi_int8(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	return DatumGetInt64(SPI_getbinval(tup, desc, col, isnull));
}

/*
 * Copy a capaccess.customer row (customer_id, cap, used, access, clock, seq,
 * state_hash, updated_at, and ctid when the statement returns it) into
 * state, and its access text into cxt.
 */
static void
state_from_row(HeapTuple tup, TupleDesc desc, CapaccessState *st,
			   char **access_out, MemoryContext cxt)
{
	bool		isnull;
	text	   *access;
	int			len;

	st->cap = spi_int8(tup, desc, 2, &isnull);
	st->used = spi_int8(tup, desc, 3, &isnull);
	access = DatumGetTextPP(SPI_getbinval(tup, desc, 4, &isnull));
	st->clock = spi_int8(tup, desc, 5, &isnull);
	st->seq = spi_int8(tup, desc, 6, &st->seq_isnull);
	st->state_hash = spi_int8(tup, desc, 7, &isnull);
	st->lsn = InvalidXLogRecPtr;
	if (desc->natts >= 9)
		ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 9, &isnull)),
						&st->tid);
	else
		ItemPointerSetInvalid(&st->tid);

	len = VARSIZE_ANY_EXHDR(access);
	if (len <= CAPACCESS_ACCESS_CACHE)
	{
		memcpy(st->access, VARDATA_ANY(access), len);
		st->access_len = len;
	}
	else
		st->access_len = -1;

	*access_out = MemoryContextAlloc(cxt, len + 1);
	memcpy(*access_out, VARDATA_ANY(access), len);
	(*access_out)[len] = '\0';
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
refusal_reason(const CapaccessState *st, int64 consume, bool has_cap,
			   int64 new_cap)
{
	int64		new_used;

	if (pg_add_s64_overflow(st->used, consume, &new_used))
		return NULL;
	if (new_used < 0)
		return "below_zero";
	if (consume > 0 && new_used > (has_cap ? new_cap : st->cap))
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
prune_page_of(ItemPointer tid)
{
	Relation	rel = table_open(customer_table(), RowExclusiveLock);
	BlockNumber blkno = ItemPointerGetBlockNumber(tid);

	if (blkno < RelationGetNumberOfBlocks(rel))
	{
		Buffer		buf = ReadBuffer(rel, blkno);

		heap_page_prune_opt(rel, buf);
		ReleaseBuffer(buf);
	}
	table_close(rel, NoLock);
}

/*
 * Build the UPDATE plans before queueing for the gate.  A backend's first
 * call, or its first after the table changed, would otherwise parse and
 * plan them, and load the catalog entries they need, while the gate is
 * held and the whole queue waits.  Building a plan locks the table and its
 * index as the UPDATE would, so those locks are taken before the wait.
 */
static void
prepare_update_plans(Oid *argtypes)
{
	CapaccessSpi spi;
	SPIPlanPtr	plans[2];

	if (update_plans_ready)
		return;
	capaccess_spi_connect(&spi);
	plans[0] = prepare_once(&update_plan, update_sql, 4, argtypes);
	plans[1] = prepare_once(&update_tid_plan, update_tid_sql, 5, argtypes);
	for (int i = 0; i < lengthof(plans); i++)
	{
		CachedPlan *cplan = SPI_plan_get_cached_plan(plans[i]);

		if (cplan != NULL)
			ReleaseCachedPlan(cplan, CurrentResourceOwner);
	}
	capaccess_spi_finish(&spi);
	update_plans_ready = true;
}

/* Run one form of the UPDATE; true if it updated the row. */
static bool
run_update(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	int			rc = SPI_execute_plan(plan, args, nulls, false, 0);

	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "capaccess UPDATE failed: %s", SPI_result_code_string(rc));
	return SPI_processed == 1;
}

void
capaccess_do_update(int64 customer_id, int64 consume, bool has_cap,
					int64 new_cap, const char *new_access,
					CapaccessResult *result)
{
	MemoryContext callercxt = CurrentMemoryContext;
	bool		held_before;
	int			slot = -1;
	CapaccessSpi spi;
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	Oid			argtypes[5] = {INT8OID, INT8OID, INT8OID, TEXTOID, TIDOID};
	ItemPointerData tid;
	bool		done = false;
	bool		waited = false;
	int			rc;

	check_can_write("capaccess_update()");

	memset(result, 0, sizeof(CapaccessResult));
	held_before = capaccess_gate_is_held(customer_id);

	/* 1. a refusal decided from the committed state does not queue */
	if (!held_before)
	{
		CapaccessState st;
		uint64		scope = capaccess_scope();

		/* planning, if this backend has not yet, is done before the queue */
		prepare_update_plans(argtypes);

		slot = capaccess_slot_pin(scope, customer_id, false);
		if (slot >= 0 && capaccess_slot_read_cache(slot, &st))
		{
			const char *reason = refusal_reason(&st, consume, has_cap, new_cap);

			if (reason != NULL)
			{
				capaccess_slot_unpin(slot);
				/* the state may come from an early release: make it durable */
				XLogFlush(st.lsn);
				result->updated = false;
				result->reason = reason;
				result_from_state(result, &st, pnstrdup(st.access, st.access_len));
				pg_atomic_fetch_add_u64(&capaccess_shared->counters.rejected, 1);
				pg_atomic_fetch_add_u64(&capaccess_shared->counters.fast_rejected, 1);
				return;
			}
		}
		if (slot < 0)
			slot = capaccess_slot_pin(scope, customer_id, true);

		/* 2. take the gate; the pin now belongs to it */
		waited = capaccess_gate_acquire(slot, customer_id);
	}

	/* 3. the UPDATE, as the table's owner */
	capaccess_spi_connect(&spi);

	args[0] = Int64GetDatum(customer_id);
	args[1] = Int64GetDatum(consume);
	args[2] = Int64GetDatum(new_cap);
	if (!has_cap)
		nulls[2] = 'n';
	if (new_access != NULL)
		args[3] = CStringGetTextDatum(new_access);
	else
	{
		args[3] = (Datum) 0;
		nulls[3] = 'n';
	}

	/*
	 * A call that waited in line goes to the last committed version directly,
	 * if the cache knows where it is: the queue's snapshots are what keeps
	 * the versions behind it from being pruned.  Otherwise, or if that
	 * version is not the one this statement sees, by the key.
	 */
	if (waited && capaccess_slot_cached_tid(slot, &tid))
	{
		prune_page_of(&tid);
		args[4] = PointerGetDatum(&tid);
		done = run_update(prepare_once(&update_tid_plan, update_tid_sql, 5,
									   argtypes), args, nulls);
	}
	if (!done)
		done = run_update(prepare_once(&update_plan, update_sql, 4, argtypes),
						  args, nulls);

	if (done)
	{
		/* 4. accepted: published at commit */
		CapaccessState st;
		char	   *access;

		state_from_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &st,
					   &access, callercxt);
		capaccess_gate_stage(customer_id, &st);
		result->updated = true;
		result->reason = NULL;
		result_from_state(result, &st, access);
		pg_atomic_fetch_add_u64(&capaccess_shared->counters.accepted, 1);
	}
	else
	{
		/* 4. refused or unknown: say why, from the row as it stands */
		bool		found;
		CapaccessState st;
		char	   *access = NULL;
		XLogRecPtr	seen;

		/* not read_only: in READ COMMITTED that takes a fresh snapshot */
		rc = SPI_execute_plan(prepare_once(&select_plan, select_sql, 1, argtypes),
							  args, nulls, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "capaccess SELECT failed: %s", SPI_result_code_string(rc));
		found = (SPI_processed == 1);
		result->updated = false;

		/*
		 * Under the gate, the last commit of this customer has released it,
		 * so released_lsn covers whatever commit the SELECT saw.  It is one
		 * value for all customers, so this may wait for another customer's
		 * flush too; refusals under the gate are rare (the cache answers the
		 * others).
		 */
		seen = pg_atomic_read_u64(&capaccess_shared->released_lsn);
		if (found)
		{
			state_from_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &st,
						   &access, callercxt);
			st.lsn = seen;
			result_from_state(result, &st, access);
			result->reason = refusal_reason(&st, consume, has_cap, new_cap);
			if (result->reason == NULL)
				result->reason = "cap_exceeded";	/* cannot happen: the row
													 * refused it */
		}
		else
			result->reason = "not_found";

		/*
		 * This call wrote nothing.  If it took the gate, give it back now; a
		 * row read with a fresh snapshot under the gate is the committed
		 * state, and becomes the cache.
		 */
		if (!held_before)
			capaccess_gate_give_back(customer_id,
									 (found && !IsolationUsesXactSnapshot()) ? &st : NULL);
		pg_atomic_fetch_add_u64(&capaccess_shared->counters.rejected, 1);

		/*
		 * That commit may have released its gate before its flush (see
		 * gate.c).  Answer only once it is durable.
		 */
		XLogFlush(seen);
	}

	capaccess_spi_finish(&spi);
}

/*
 * capaccess_update(customer_id bigint, consume bigint DEFAULT 1,
 *					new_cap bigint DEFAULT NULL, new_access text DEFAULT NULL)
 */
Datum
capaccess_update(PG_FUNCTION_ARGS)
{
	CapaccessResult r;
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];
	bool		has_cap = !PG_ARGISNULL(2);
	int64		new_cap = has_cap ? PG_GETARG_INT64(2) : 0;

	capaccess_check_loaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_id must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("consume must not be null"),
				 errhint("Pass 0 to change only the cap or the access level.")));
	if (has_cap && new_cap < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("new_cap must not be negative"),
				 errdetail("The value given was " INT64_FORMAT ".", new_cap)));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	capaccess_do_update(PG_GETARG_INT64(0), PG_GETARG_INT64(1), has_cap, new_cap,
						PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
						&r);

	memset(nulls, !r.found, sizeof(nulls));
	values[0] = BoolGetDatum(r.updated);
	nulls[0] = false;
	values[1] = r.reason ? CStringGetTextDatum(r.reason) : (Datum) 0;
	nulls[1] = (r.reason == NULL);
	values[2] = Int64GetDatum(r.used);
	values[3] = Int64GetDatum(r.cap);
	values[4] = r.found ? CStringGetTextDatum(r.access) : (Datum) 0;
	values[5] = Int64GetDatum(r.clock);
	values[6] = Int64GetDatum(r.seq);
	if (r.found && r.seq_isnull)
		nulls[6] = true;
	values[7] = Int64GetDatum(r.state_hash);

	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * capaccess_register(customer_id bigint, cap bigint, access text DEFAULT 'none')
 * returns the new capaccess.customer row.
 */
Datum
capaccess_register(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {INT8OID, INT8OID, TEXTOID};
	Datum		args[3];
	CapaccessSpi spi;
	int			rc;
	HeapTupleHeader row;
	int64		customer_id;
	CapaccessState st;
	char	   *access;

	check_can_write("capaccess_register()");
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

	customer_id = PG_GETARG_INT64(0);
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);

	/*
	 * Registering is an update like any other: under the gate, and the new
	 * state becomes the cache at commit.
	 */
	if (!capaccess_gate_is_held(customer_id))
		(void) capaccess_gate_acquire(capaccess_slot_pin(capaccess_scope(),
														 customer_id, true),
									  customer_id);

	capaccess_spi_connect(&spi);
	rc = SPI_execute_plan(prepare_once(&insert_plan, insert_sql, 3, argtypes),
						  args, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "capaccess INSERT failed: %s", SPI_result_code_string(rc));

	state_from_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &st,
				   &access, CurrentMemoryContext);
	capaccess_gate_stage(customer_id, &st);

	row = SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	capaccess_spi_finish(&spi);
	PG_RETURN_HEAPTUPLEHEADER(row);
}
