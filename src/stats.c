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
 * flush (capaccess.early_release, see gate.c).  A slot is "in use" while it
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

Datum
capaccess_stats(PG_FUNCTION_ARGS)
{
	CapaccessCounters *c;
	TupleDesc	tupdesc;
	Datum		values[15];
	bool		nulls[15] = {0};
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

	c = &capaccess_shared->counters;
	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&c->accepted));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&c->rejected));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&c->fast_rejected));
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&c->waits));
	values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&c->deadlocks));
	values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&c->lock_timeouts));
	values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&c->evictions));
	values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&c->handoffs));
	values[8] = Float8GetDatum((double) pg_atomic_read_u64(&c->handoff_us) / 1000.0);
	values[9] = Int64GetDatum((int64) pg_atomic_read_u64(&c->holds));
	values[10] = Float8GetDatum((double) pg_atomic_read_u64(&c->hold_us) / 1000.0);
	values[11] = Int64GetDatum((int64) pg_atomic_read_u64(&c->early_releases));
	values[12] = Int32GetDatum(capaccess_shared->nslots);
	values[13] = Int32GetDatum(loaded);
	values[14] = Int32GetDatum(held);

	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
