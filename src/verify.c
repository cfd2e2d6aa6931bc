/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  capaccess_verify(): check the table and the shared state agree.
 *
 * Returns one row (customer_id, problem, detail) per problem found; an
 * empty result means healthy.  It takes no gate and no lock that an update
 * would wait for, so it can run on a busy server.  The checks:
 *
 *	state_hash		  a row's stored state_hash differs from the hash of its
 *					  fields (capaccess.state_hash)
 *	used_negative	  a row has used < 0
 *	clock_negative	  a row has clock < 0
 *	cap_negative	  a row has cap < 0
 *	slot_differs	  a slot whose cache is loaded and whose gate is free holds
 *					  a state other than the committed row
 *	slot_without_row  such a slot caches a customer that has no row
 *	holder_gone		  a gate is held by a backend that no longer runs
 *	waiter_gone		  a gate's queue holds a backend that no longer runs
 *
 * Only the slots of this database's customers are looked at.  The table
 * checks read the committed rows.  A slot is compared with its row
 * only if, read before and after the row, it was free and its cache did not
 * change: then no update of that customer committed in between, since a
 * commit publishes to the cache before it frees the gate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_verify);

static const char *const table_checks_sql =
"SELECT customer_id, 'state_hash', pg_catalog.format('stored %s, computed %s', state_hash, h)"
"  FROM (SELECT c.*, capaccess.state_hash(customer_id, clock, used, cap, access) AS h"
"          FROM capaccess.customer AS c) AS s"
" WHERE state_hash OPERATOR(pg_catalog.<>) h "
"UNION ALL "
"SELECT customer_id, 'used_negative', pg_catalog.format('used is %s', used)"
"  FROM capaccess.customer WHERE used OPERATOR(pg_catalog.<) 0::pg_catalog.int8 "
"UNION ALL "
"SELECT customer_id, 'clock_negative', pg_catalog.format('clock is %s', clock)"
"  FROM capaccess.customer WHERE clock OPERATOR(pg_catalog.<) 0::pg_catalog.int8 "
"UNION ALL "
"SELECT customer_id, 'cap_negative', pg_catalog.format('cap is %s', cap)"
"  FROM capaccess.customer WHERE cap OPERATOR(pg_catalog.<) 0::pg_catalog.int8 "
"ORDER BY 1, 2";

static const char *const row_sql =
"SELECT used, cap, access, clock, seq, state_hash FROM capaccess.customer"
" WHERE customer_id OPERATOR(pg_catalog.=) $1";

static void
report(ReturnSetInfo *rsinfo, int64 customer_id, const char *problem,
	   const char *detail)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = Int64GetDatum(customer_id);
	values[1] = CStringGetTextDatum(problem);
	values[2] = CStringGetTextDatum(detail);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

static bool
backend_gone(uint32 procno)
{
	return procno >= (uint32) capaccess_shared->nprocs ||
		GetPGProcByNumber(procno)->pid == 0;
}

static char *
describe(int64 used, int64 cap, int64 clock, int64 seq, bool seq_isnull,
		 int64 hash, const char *access)
{
	return psprintf("used=" INT64_FORMAT " cap=" INT64_FORMAT " clock=" INT64_FORMAT
					" seq=%s state_hash=" INT64_FORMAT " access=%s",
					used, cap, clock,
					seq_isnull ? "null" : psprintf(INT64_FORMAT, seq),
					hash, access);
}

/* Compare one free, loaded slot with its committed row. */
static void
check_slot(ReturnSetInfo *rsinfo, int slot, uint64 scope, SPIPlanPtr plan)
{
	CapaccessSlotView before;
	CapaccessSlotView after;
	Datum		arg;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int64		used,
				cap,
				clock,
				seq,
				hash;
	bool		seq_isnull;
	char	   *access;
	const CapaccessState *st = &before.state;
	char	   *cached_access;

	if (!capaccess_slot_inspect(slot, &before) || !before.active ||
		before.scope != scope)
		return;
	if (before.holder != 0)
	{
		if (backend_gone(before.holder - 1))
			report(rsinfo, before.customer_id, "holder_gone",
				   psprintf("the gate is held by PGPROC %u, which runs no backend",
							before.holder - 1));
		return;
	}
	if (!before.loaded)
		return;

	arg = Int64GetDatum(before.customer_id);
	if (SPI_execute_plan(plan, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "capaccess_verify: row lookup failed");

	/* an update committed meanwhile: nothing to compare */
	if (!capaccess_slot_inspect(slot, &after) || !after.active ||
		after.holder != 0 || after.version != before.version ||
		after.customer_id != before.customer_id)
		return;

	if (SPI_processed == 0)
	{
		report(rsinfo, before.customer_id, "slot_without_row",
			   "the slot caches a customer that capaccess.customer does not hold");
		return;
	}

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	used = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	cap = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	access = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	clock = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	seq = DatumGetInt64(SPI_getbinval(tup, desc, 5, &seq_isnull));
	hash = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));

	cached_access = st->access_len >= 0 ?
		pnstrdup(st->access, st->access_len) : NULL;
	if (st->used != used || st->cap != cap || st->clock != clock ||
		st->seq_isnull != seq_isnull || (!seq_isnull && st->seq != seq) ||
		st->state_hash != hash ||
		(cached_access != NULL && strcmp(cached_access, access) != 0))
		report(rsinfo, before.customer_id, "slot_differs",
			   psprintf("slot has %s; table has %s",
						describe(st->used, st->cap, st->clock, st->seq,
								 st->seq_isnull, st->state_hash,
								 cached_access ? cached_access : "(not cached)"),
						describe(used, cap, clock, seq, seq_isnull, hash, access)));
}

/* Every backend queued on a gate must still run. */
static void
check_waiters(ReturnSetInfo *rsinfo, int slot, uint64 scope)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	uint32		gone[8];
	int			ngone = 0;

	SpinLockAcquire(&s->qlock);
	for (int w = s->qhead, n = 0; w >= 0 && n < capaccess_shared->nprocs;
		 w = capaccess_shared->procs[w].next, n++)
	{
		if (backend_gone(w) && ngone < lengthof(gone))
			gone[ngone++] = w;
	}
	SpinLockRelease(&s->qlock);

	for (int i = 0; i < ngone; i++)
	{
		CapaccessSlotView v;

		if (!capaccess_slot_inspect(slot, &v) || v.scope != scope)
			continue;
		report(rsinfo, v.customer_id, "waiter_gone",
			   psprintf("PGPROC %u is queued for the gate but runs no backend",
						gone[i]));
	}
}

Datum
capaccess_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CapaccessSpi spi;
	Oid			argtype = INT8OID;
	SPIPlanPtr	plan;
	uint64		scope;

	capaccess_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	scope = capaccess_scope();
	capaccess_spi_connect(&spi);

	if (SPI_execute(table_checks_sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "capaccess_verify: table checks failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		report(rsinfo,
			   DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)),
			   SPI_getvalue(tup, desc, 2),
			   SPI_getvalue(tup, desc, 3));
	}

	plan = SPI_prepare(row_sql, 1, &argtype);
	if (plan == NULL)
		elog(ERROR, "capaccess_verify: SPI_prepare failed");
	for (int slot = 0; slot < capaccess_shared->nslots; slot++)
	{
		check_slot(rsinfo, slot, scope, plan);
		check_waiters(rsinfo, slot, scope);
	}

	capaccess_spi_finish(&spi);
	return (Datum) 0;
}
