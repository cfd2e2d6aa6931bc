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
 *	null_value		  a row has NULL in a column capaccess needs
 *	slot_differs	  a slot whose gate is free caches the row version the
 *					  table holds, but with other values
 *	holder_gone		  a gate is held by a backend that no longer runs
 *	waiter_gone		  a gate's queue holds a backend that no longer runs
 *
 * Only the slots of this database's customers are looked at.  Every check
 * reads the table with a fresh snapshot, whatever the isolation level, so
 * that a REPEATABLE READ transaction compares the cache with the latest
 * committed rows, as the cache is.  A cache that names another row version
 * than the table holds is stale, not wrong: it is never answered from
 * (table.c), and is not reported.  A slot is compared with its row only if,
 * read before and after the row, it was free and its cache did not change:
 * then no update of that customer committed in between, since a commit
 * publishes to the cache before it frees the gate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_verify);

static const char *const table_checks_sql =
"SELECT customer_id, 'state_hash' AS problem,"
"       pg_catalog.format('stored %s, computed %s', state_hash, computed) AS detail"
"  FROM (SELECT c.customer_id, c.state_hash,"
"               capaccess.state_hash(c.customer_id, c.clock, c.used, c.cap,"
"                                    c.access) AS computed"
"          FROM capaccess.customer AS c) AS s"
" WHERE state_hash OPERATOR(pg_catalog.<>) computed "
"UNION ALL "
"SELECT customer_id, 'used_negative', pg_catalog.format('used is %s', used)"
"  FROM capaccess.customer WHERE used OPERATOR(pg_catalog.<) 0::pg_catalog.int8 "
"UNION ALL "
"SELECT customer_id, 'clock_negative', pg_catalog.format('clock is %s', clock)"
"  FROM capaccess.customer WHERE clock OPERATOR(pg_catalog.<) 0::pg_catalog.int8 "
"UNION ALL "
"SELECT customer_id, 'cap_negative', pg_catalog.format('cap is %s', cap)"
"  FROM capaccess.customer WHERE cap OPERATOR(pg_catalog.<) 0::pg_catalog.int8 "
"UNION ALL "
"SELECT customer_id, 'null_value', 'a column capaccess needs is null'"
"  FROM capaccess.customer"
" WHERE cap IS NULL OR used IS NULL OR access IS NULL OR clock IS NULL"
"    OR state_hash IS NULL "
"ORDER BY 1, 2";

static const char *const row_sql =
"SELECT c.customer_id, c.cap, c.used, c.access, c.clock, c.seq, c.state_hash,"
"       c.ctid, c.xmin"
"  FROM capaccess.customer AS c"
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
"   AND c.cap IS NOT NULL AND c.used IS NOT NULL AND c.access IS NOT NULL"
"   AND c.clock IS NOT NULL AND c.state_hash IS NOT NULL";

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

/*
 * Run a read-only plan with a snapshot taken now.  In parallel mode (a
 * query that may use workers) no new snapshot may be taken, and the
 * statement's own is used: an older row version then differs from what the
 * cache names and is skipped, so this misses problems but reports none
 * that are not there.
 */
static void
run_fresh(SPIPlanPtr plan, Datum *args, long count)
{
	Snapshot	snapshot = IsInParallelMode() ? GetActiveSnapshot()
	: GetLatestSnapshot();

	if (SPI_execute_snapshot(plan, args, NULL, snapshot, InvalidSnapshot,
							 true, false, count) != SPI_OK_SELECT)
		elog(ERROR, "capaccess_verify: query failed");
}

/* Compare one free, loaded slot with its committed row. */
static void
check_slot(ReturnSetInfo *rsinfo, Relation rel, int slot, uint64 scope,
		   SPIPlanPtr plan)
{
	CapaccessSlotView before;
	CapaccessSlotView after;
	Datum		arg;
	CapaccessState row;
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
	run_fresh(plan, &arg, 1);

	/* an update committed meanwhile: nothing to compare */
	if (!capaccess_slot_inspect(slot, &after) || !after.active ||
		after.holder != 0 || after.version != before.version ||
		after.customer_id != before.customer_id)
		return;
	/* no row, or another version than the cache names: stale, never used */
	if (SPI_processed == 0)
		return;
	capaccess_state_from_row(rel, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							 before.customer_id, &row, &access,
							 CurrentMemoryContext);
	if (st->relfilenode != row.relfilenode || st->xmin != row.xmin ||
		!ItemPointerEquals((ItemPointer) &st->tid, &row.tid))
		return;

	cached_access = st->access_len >= 0 ?
		pnstrdup(st->access, st->access_len) : NULL;
	if (st->used != row.used || st->cap != row.cap || st->clock != row.clock ||
		st->seq_isnull != row.seq_isnull ||
		(!row.seq_isnull && st->seq != row.seq) ||
		st->state_hash != row.state_hash ||
		(cached_access != NULL && strcmp(cached_access, access) != 0))
		report(rsinfo, before.customer_id, "slot_differs",
			   psprintf("slot has %s; table has %s",
						describe(st->used, st->cap, st->clock, st->seq,
								 st->seq_isnull, st->state_hash,
								 cached_access ? cached_access : "(not cached)"),
						describe(row.used, row.cap, row.clock, row.seq,
								 row.seq_isnull, row.state_hash, access)));
}

/*
 * Every backend queued on a gate must still run.  The queue is copied under
 * its spinlock into queue (room for every backend) and looked at after.
 */
static void
check_waiters(ReturnSetInfo *rsinfo, int slot, uint64 scope, int *queue)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	int			n = 0;

	SpinLockAcquire(&s->qlock);
	for (int w = s->qhead; w >= 0 && n < capaccess_shared->nprocs;
		 w = capaccess_shared->procs[w].next)
		queue[n++] = w;
	SpinLockRelease(&s->qlock);

	for (int i = 0; i < n; i++)
	{
		CapaccessSlotView v;

		if (!backend_gone(queue[i]))
			continue;
		if (!capaccess_slot_inspect(slot, &v) || v.scope != scope)
			continue;
		report(rsinfo, v.customer_id, "waiter_gone",
			   psprintf("PGPROC %d is queued for the gate but runs no backend",
						queue[i]));
	}
}

Datum
capaccess_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	rel;
	CapaccessSpi spi;
	Oid			argtype = INT8OID;
	SPIPlanPtr	plan;
	uint64		scope;
	int		   *queue;

	capaccess_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	rel = capaccess_table_open(AccessShareLock);
	scope = capaccess_table_scope(rel);
	capaccess_spi_connect(rel, &spi);

	plan = SPI_prepare(table_checks_sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "capaccess_verify: SPI_prepare failed");
	run_fresh(plan, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		report(rsinfo,
			   DatumGetInt64(SPI_getbinval(tup, desc,
										   capaccess_spi_column(desc, "customer_id"),
										   &isnull)),
			   SPI_getvalue(tup, desc, capaccess_spi_column(desc, "problem")),
			   SPI_getvalue(tup, desc, capaccess_spi_column(desc, "detail")));
	}

	plan = SPI_prepare(row_sql, 1, &argtype);
	if (plan == NULL)
		elog(ERROR, "capaccess_verify: SPI_prepare failed");
	queue = palloc(capaccess_shared->nprocs * sizeof(int));
	for (int slot = 0; slot < capaccess_shared->nslots; slot++)
	{
		check_slot(rsinfo, rel, slot, scope, plan);
		check_waiters(rsinfo, slot, scope, queue);
	}

	capaccess_spi_finish(&spi);
	table_close(rel, NoLock);
	return (Datum) 0;
}
