/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  capaccess_stats() and capaccess_counters(): the extension's counters
 *	  and slot occupancy.
 *
 * The counters count since the server started (or last restarted after a
 * crash); they are not transactional.  Two of them are times, totals in
 * microseconds: from a gate's hand-off to a waiter until that waiter runs
 * again (its wake-up), and from taking a gate until releasing it.
 * early_releases counts the commits that released their gates before their
 * flush (capaccess.early_release, see gate.c), deadlock_checks the walks of
 * the wait-for graph (deadlock.c), and stale_caches the cached states found
 * superseded when they would have answered a refusal (table.c),
 * slotless_calls the calls that found no slot and relied on the row lock
 * alone (update.c), gate_limit_errors the calls refused by
 * capaccess.max_gates_per_transaction, idle_holders_ended the sessions
 * ended by capaccess.idle_holder_timeout (idle.c), and direct_writes the
 * rows written without the executor (write.c).
 *
 * Every counter covers the whole server, all databases together, since the
 * slots and gates they count are shared by all of them.
 * capaccess_stats_reset() sets them all to zero (slot occupancy is not a
 * counter and is not reset).
 *
 * capaccess_counters() lists every counter by name, as a bigint, so that a
 * counter added later needs no change of SQL.  capaccess_stats() keeps the
 * columns it had in 1.0 (its times in milliseconds), plus the slot table's
 * occupancy: a slot is "held" while its gate has a holder.  Both are built
 * from one list, by name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_stats);
PG_FUNCTION_INFO_V1(capaccess_counters);
PG_FUNCTION_INFO_V1(capaccess_stats_reset);

/* A counter of CapaccessCounters, by name. */
typedef struct CounterInfo
{
	const char *name;
	size_t		offset;
} CounterInfo;

#define COUNTER(field, name) {name, offsetof(CapaccessCounters, field)}

static const CounterInfo counters[] = {
	COUNTER(accepted, "accepted"),
	COUNTER(rejected, "rejected"),
	COUNTER(fast_rejected, "fast_rejected"),
	COUNTER(waits, "waits"),
	COUNTER(deadlocks, "deadlocks"),
	COUNTER(lock_timeouts, "lock_timeouts"),
	COUNTER(evictions, "evictions"),
	COUNTER(handoffs, "handoffs"),
	COUNTER(handoff_us, "handoff_time_us"),
	COUNTER(holds, "holds"),
	COUNTER(hold_us, "hold_time_us"),
	COUNTER(early_releases, "early_releases"),
	COUNTER(deadlock_checks, "deadlock_checks"),
	COUNTER(stale_caches, "stale_caches"),
	COUNTER(slotless, "slotless_calls"),
	COUNTER(gate_limit_errors, "gate_limit_errors"),
	COUNTER(idle_holders_ended, "idle_holders_ended"),
	COUNTER(direct_writes, "direct_writes"),
};

static uint64
counter_value(const CounterInfo *info)
{
	return pg_atomic_read_u64((pg_atomic_uint64 *)
							  ((char *) &capaccess_shared->counters + info->offset));
}

static const CounterInfo *
counter_named(const char *name)
{
	for (int i = 0; i < lengthof(counters); i++)
		if (strcmp(counters[i].name, name) == 0)
			return &counters[i];
	return NULL;
}

/*
 * capaccess_stats(): one row, its columns filled by name, so that the
 * library serves any version of the function's declaration it knows of.
 */
Datum
capaccess_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum	   *values;
	bool	   *nulls;
	int			loaded = 0;
	int			held = 0;

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

	values = palloc(tupdesc->natts * sizeof(Datum));
	nulls = palloc0(tupdesc->natts * sizeof(bool));
	for (int i = 0; i < tupdesc->natts; i++)
	{
		const char *name = NameStr(TupleDescAttr(tupdesc, i)->attname);
		const CounterInfo *info;

		if (strcmp(name, "slots") == 0)
			values[i] = Int32GetDatum(capaccess_shared->nslots);
		else if (strcmp(name, "slots_loaded") == 0)
			values[i] = Int32GetDatum(loaded);
		else if (strcmp(name, "slots_held") == 0)
			values[i] = Int32GetDatum(held);
		else if (strcmp(name, "handoff_time_ms") == 0)
			values[i] = Float8GetDatum((double) counter_value(counter_named("handoff_time_us")) / 1000.0);
		else if (strcmp(name, "hold_time_ms") == 0)
			values[i] = Float8GetDatum((double) counter_value(counter_named("hold_time_us")) / 1000.0);
		else if ((info = counter_named(name)) != NULL)
			values[i] = Int64GetDatum((int64) counter_value(info));
		else
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("capaccess_stats() has a column \"%s\" that this capaccess library does not know",
							name),
					 errhint("Install the capaccess library that matches the extension's version.")));
	}

	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* capaccess_counters(): (counter text, value bigint), one row per counter */
Datum
capaccess_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	capaccess_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < lengthof(counters); i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(counters[i].name);
		values[1] = Int64GetDatum((int64) counter_value(&counters[i]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* capaccess_stats_reset(): every counter back to zero */
Datum
capaccess_stats_reset(PG_FUNCTION_ARGS)
{
	capaccess_check_loaded();
	for (int i = 0; i < lengthof(counters); i++)
		pg_atomic_write_u64((pg_atomic_uint64 *)
							((char *) &capaccess_shared->counters + counters[i].offset),
							0);
	PG_RETURN_VOID();
}
