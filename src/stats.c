/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  capaccess_stats(): the extension's counters and slot occupancy.
 *
 * The counters count calls since the server started (or last restarted
 * after a crash); they are not transactional.  The two times are totals in
 * milliseconds: from a gate's hand-off to a waiter until that waiter runs
 * again (its wake-up), and from taking a gate until releasing it.
 * early_releases counts the commits that released their gates before their
 * flush (capaccess.early_release, see gate.c).  deadlock_checks counts the
 * walks of the wait-for graph (deadlock.c), and stale_caches the cached
 * states found superseded by a write that bypassed the gate (table.c).  A slot is "in use" while it
 * is pinned: a gate holder, a waiter, or a lookup is on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_stats);

/* One column of capaccess_stats(), by name. */
typedef struct StatColumn
{
	const char *name;
	Datum		value;
} StatColumn;

/*
 * The result is built by column name, so that the library serves each
 * version of the function's SQL declaration: 1.0 lacks deadlock_checks and
 * stale_caches.
 */
Datum
capaccess_stats(PG_FUNCTION_ARGS)
{
	CapaccessCounters *c;
	TupleDesc	tupdesc;
	Datum	   *values;
	bool	   *nulls;
	int			loaded = 0;
	int			held = 0;
	StatColumn	columns[17];
	int			ncolumns = 0;

	capaccess_check_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	for (int i = 0; i < capaccess_shared->nslots; i++)
	{
		CapaccessSlot *s = &capaccess_shared->slots[i];

		if (pg_atomic_read_u32(&s->holder) != 0)
			held++;
		if (s->loaded)
			loaded++;
	}

#define COUNTER(field) \
	columns[ncolumns].name = #field; \
	columns[ncolumns++].value = Int64GetDatum((int64) pg_atomic_read_u64(&c->field))
#define MILLISECONDS(name_, field) \
	columns[ncolumns].name = name_; \
	columns[ncolumns++].value = Float8GetDatum((double) pg_atomic_read_u64(&c->field) / 1000.0)
#define INTEGER(name_, v) \
	columns[ncolumns].name = name_; \
	columns[ncolumns++].value = Int32GetDatum(v)

	c = &capaccess_shared->counters;
	COUNTER(accepted);
	COUNTER(rejected);
	COUNTER(fast_rejected);
	COUNTER(waits);
	COUNTER(deadlocks);
	COUNTER(lock_timeouts);
	COUNTER(evictions);
	COUNTER(handoffs);
	MILLISECONDS("handoff_time_ms", handoff_us);
	COUNTER(holds);
	MILLISECONDS("hold_time_ms", hold_us);
	COUNTER(early_releases);
	COUNTER(deadlock_checks);
	COUNTER(stale_caches);
	INTEGER("slots", capaccess_shared->nslots);
	INTEGER("slots_loaded", loaded);
	INTEGER("slots_held", held);
	Assert(ncolumns <= lengthof(columns));

	values = palloc(tupdesc->natts * sizeof(Datum));
	nulls = palloc0(tupdesc->natts * sizeof(bool));
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		int			k = 0;

		while (k < ncolumns && strcmp(columns[k].name, NameStr(att->attname)) != 0)
			k++;
		if (k == ncolumns)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("capaccess_stats() has a column \"%s\" that this capaccess library does not know",
							NameStr(att->attname)),
					 errhint("Install the capaccess library that matches the extension's version, or run ALTER EXTENSION capaccess UPDATE.")));
		values[i] = columns[k].value;
	}

	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
