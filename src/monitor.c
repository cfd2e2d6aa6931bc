/*-------------------------------------------------------------------------
 *
 * monitor.c
 *	  capaccess_gates() and capaccess_blocking_pids(): who holds and who
 *	  waits for the gates, as pg_locks and pg_blocking_pids() show it for
 *	  heavyweight locks, which gate waits are not.
 *
 * Both read shared memory without pins.  A slot's identity is read around
 * its queue, and a row is kept only if the slot did not change customer
 * meanwhile; the queue (holder, its start, length, first waiter) is copied
 * under the slot's qlock, so each row is one consistent moment of one gate.
 * Different rows are different moments, as in pg_locks.  They cover every
 * database of the server.  One exception: a gate taken without waiting gets
 * its held_since just after the compare-and-swap that took it, outside
 * qlock (the uncontended path takes no lock), so for that instant the row
 * may show the previous holder's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_gates);
PG_FUNCTION_INFO_V1(capaccess_blocking_pids);

/* One gate as capaccess_gates() shows it. */
typedef struct GateRow
{
	uint64		scope;
	int64		customer_id;
	uint32		holder;			/* pgprocno + 1, or 0 */
	TimestampTz held_since;
	int			waiters;
	int			first;			/* first waiter's pgprocno, or -1 */
	TimestampTz first_since;
} GateRow;

/* Copy the gate of a slot; false if it is neither held nor waited for. */
static bool
read_gate_row(int slot, GateRow *row)
{
	CapaccessSlot *s = capaccess_slot_at(slot);
	CapaccessSlotView before;
	CapaccessSlotView after;

	if (!capaccess_slot_inspect(slot, &before) || !before.active)
		return false;

	SpinLockAcquire(&s->qlock);
	row->holder = pg_atomic_read_u32(&s->holder);
	row->held_since = s->held_since;
	row->waiters = s->nwaiters;
	row->first = s->qhead;
	row->first_since = (s->qhead >= 0) ?
		capaccess_proc_at(s->qhead)->wait_since : 0;
	SpinLockRelease(&s->qlock);

	if (row->holder == 0 && row->first < 0)
		return false;
	/* the same customer throughout */
	if (!capaccess_slot_inspect(slot, &after) || !after.active ||
		after.customer_id != before.customer_id || after.scope != before.scope)
		return false;
	row->scope = before.scope;
	row->customer_id = before.customer_id;
	return true;
}

static Datum
pid_of(int pgprocno, bool *isnull)
{
	int			pid = GetPGProcByNumber(pgprocno)->pid;

	*isnull = (pid == 0);
	return Int32GetDatum(pid);
}

/*
 * capaccess_gates() returns (database name, customer_id bigint, holder_pid
 * integer, held_since timestamptz, waiters integer, oldest_waiter_pid
 * integer, oldest_wait_since timestamptz), one row per gate held or waited
 * for.
 */
Datum
capaccess_gates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	capaccess_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < capaccess_shared->nslots; i++)
	{
		GateRow		row;
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};
		char	   *dbname;

		if (!read_gate_row(i, &row))
			continue;

		dbname = get_database_name((Oid) (row.scope >> 32));
		if (dbname != NULL)
			values[0] = DirectFunctionCall1(namein, CStringGetDatum(dbname));
		else
			nulls[0] = true;
		values[1] = Int64GetDatum(row.customer_id);
		if (row.holder != 0)
		{
			values[2] = pid_of(row.holder - 1, &nulls[2]);
			values[3] = TimestampTzGetDatum(row.held_since);
		}
		else
		{
			/* between a release and the next holder: a waiter is granted */
			nulls[2] = nulls[3] = true;
		}
		values[4] = Int32GetDatum(row.waiters);
		if (row.first >= 0)
		{
			values[5] = pid_of(row.first, &nulls[5]);
			values[6] = TimestampTzGetDatum(row.first_since);
		}
		else
			nulls[5] = nulls[6] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * capaccess_blocking_pids(pid integer) returns integer[]: the pid of the
 * holder of the gate that pid waits for, or an empty array if it waits for
 * none.  Like pg_blocking_pids(), but for gates.
 */
Datum
capaccess_blocking_pids(PG_FUNCTION_ARGS)
{
	int			pid = PG_GETARG_INT32(0);
	PGPROC	   *proc;
	Datum		blocker[1];
	int			n = 0;

	capaccess_check_loaded();
	proc = BackendPidGetProc(pid);
	if (proc != NULL)
	{
		CapaccessProc *waiter = capaccess_proc_at(CAPACCESS_PROCNO(proc));
		uint32		slot = pg_atomic_read_u32(&waiter->waiting_slot);

		if (slot != 0)
		{
			CapaccessSlot *s = capaccess_slot_at((int) slot - 1);
			uint32		holder;
			bool		still_waiting;

			/* the holder of the gate it waits for, both seen at one moment */
			SpinLockAcquire(&s->qlock);
			holder = pg_atomic_read_u32(&s->holder);
			still_waiting = pg_atomic_read_u32(&waiter->waiting_slot) == slot;
			SpinLockRelease(&s->qlock);

			if (still_waiting && holder != 0)
			{
				bool		isnull;

				blocker[0] = pid_of(holder - 1, &isnull);
				if (!isnull)
					n = 1;
			}
		}
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(blocker, n, INT4OID, sizeof(int32),
										  true, TYPALIGN_INT));
}
