/*-------------------------------------------------------------------------
 *
 * peek.c
 *	  capaccess_peek(customer_id): a customer's committed state, read
 *	  without taking its gate.
 *
 * The state comes from the table, by one SELECT run as the table's owner
 * (so a reader needs no privilege on the table), under the statement's
 * snapshot: in READ COMMITTED the latest committed row version, in
 * REPEATABLE READ or SERIALIZABLE the one the transaction's snapshot sees.
 * One row version is one whole state, so a peek is never torn.  It takes no
 * gate and waits for none: the holder's uncommitted change is simply not
 * visible yet.  The transaction's own changes are, as for any read.
 *
 * Durability.  Under early release (gate.c) a state is visible for the
 * length of one WAL flush before it is durable: its commit was made
 * asynchronous.  A peek therefore flushes before it answers, up to the
 * commit of the row version it read.  PostgreSQL records, for every
 * asynchronous commit, an LSN at or after its commit record in the commit
 * log (the group LSN that hint bits wait for), so that is the target: the
 * row's xmin's, read under XactTruncationLock while the commit log still
 * holds it (an older xmin committed long ago).  A synchronous commit
 * records none, and was flushed before it became visible.  So a peek of a
 * state already durable flushes nothing.  A peek that finds no row flushes
 * up to the last commit that released its gates early (gate.c keeps it),
 * since the row may have been deleted by capaccess_unregister under early
 * release; a delete written directly with synchronous_commit off is the
 * writer's choice, as for any read.  On a standby nothing is flushed: what
 * it replays is durable on the primary already.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/transam.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_peek);

static const char *const peek_sql =
"SELECT c.customer_id, c.cap, c.used, c.access, c.clock, c.seq,"
"  c.state_hash, c.ctid, c.xmin FROM capaccess.customer AS c"
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1";

static SPIPlanPtr peek_plan = NULL;

/* What must be flushed before reporting the row version xmin wrote. */
static XLogRecPtr
commit_lsn_of(TransactionId xmin)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;

	if (!TransactionIdIsNormal(xmin))
		return lsn;

	/*
	 * Only an xid the commit log still holds: a frozen row keeps its raw
	 * xmin, which may be older than what the commit log keeps, or so old that
	 * it looks newer than the next xid.
	 */
	LWLockAcquire(XactTruncationLock, LW_SHARED);
	if (TransactionIdFollowsOrEquals(xmin, CAPACCESS_TRANSAM_VARIABLES->oldestClogXid) &&
		TransactionIdPrecedes(xmin, ReadNextTransactionId()))
		lsn = TransactionIdGetCommitLSN(xmin);
	LWLockRelease(XactTruncationLock);
	return lsn;
}

/*
 * Before reporting that there is no row: the last commit that released its
 * gates early, which covers a capaccess_unregister whose delete is visible
 * but not yet durable.
 */
static XLogRecPtr
gone_flush_target(void)
{
	return (XLogRecPtr) pg_atomic_read_u64(&capaccess_shared->early_release_lsn);
}

/*
 * capaccess_peek(customer_id bigint) returns at most one row (used, cap,
 * remaining, access, clock, seq, state_hash).
 */
Datum
capaccess_peek(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtype = INT8OID;
	int64		customer_id;
	Datum		arg;
	Relation	rel;
	CapaccessSpi spi;
	CapaccessState st;
	char	   *access = NULL;
	bool		found;
	int			rc;

	capaccess_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	/* the function is STRICT: no null argument gets here */
	customer_id = PG_GETARG_INT64(0);
	arg = Int64GetDatum(customer_id);

	rel = capaccess_table_open(AccessShareLock);
	capaccess_spi_connect(rel, &spi);
	(void) capaccess_prepare_once(&peek_plan, peek_sql, 1, &argtype);
	rc = SPI_execute_plan(peek_plan, &arg, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "capaccess SELECT failed: %s", SPI_result_code_string(rc));
	found = (SPI_processed == 1);
	if (found)
		capaccess_state_from_row(rel, SPI_tuptable->vals[0],
								 SPI_tuptable->tupdesc, customer_id, &st,
								 &access, callercxt);
	capaccess_spi_finish(&spi);

	if (found)
	{
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		/* what a crash could take back is not reported */
		if (!RecoveryInProgress())
			XLogFlush(commit_lsn_of(st.xmin));

		values[0] = Int64GetDatum(st.used);
		values[1] = Int64GetDatum(st.cap);
		/* what may still be consumed: nothing, if used is above the cap */
		values[2] = Int64GetDatum(st.used < st.cap ? st.cap - st.used : 0);
		values[3] = CStringGetTextDatum(access);
		values[4] = Int64GetDatum(st.clock);
		values[5] = Int64GetDatum(st.seq);
		nulls[5] = st.seq_isnull;
		values[6] = Int64GetDatum(st.state_hash);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	else if (!RecoveryInProgress())
		XLogFlush(gone_flush_target());
	table_close(rel, NoLock);
	return (Datum) 0;
}
