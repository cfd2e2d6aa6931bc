/*-------------------------------------------------------------------------
 *
 * admin.c
 *	  What an administrator would otherwise do with raw DML: delete a
 *	  customer (capaccess_unregister), and start a new billing period for
 *	  one customer (capaccess_reset) or for all (capaccess_reset_all).
 *
 * capaccess_unregister and capaccess_reset take the customer's gate like
 * any update, so they are ordered with every other call on that customer,
 * and the cache follows at commit.
 *
 * capaccess_reset_all resets every customer of the database in one
 * transaction, so a billing period ends for all of them at its commit.  It
 * cannot hold every customer's gate (there are fewer slots than customers),
 * and it must not keep the hot customers waiting while it works through
 * the others, so it goes in two passes:
 *
 *	1. One UPDATE resets every customer whose gate nobody held or waited
 *	   for when the call began.  It is ordered with their other updates by
 *	   the row lock, as any UPDATE is: an update in progress finishes first
 *	   and is reset (the old period); one that starts later waits for the
 *	   commit and builds on the reset row (the new period), with clock + 1.
 *	   Their caches become stale, which the cache check sees (table.c).
 *	2. The busy customers, one by one in id order, each through its gate
 *	   like capaccess_reset, waiting its turn in the queue; their new state
 *	   becomes their cache at commit.
 *
 * Which customers were busy is read from shared memory without locks; it
 * decides only the order of work, since every customer is reset exactly
 * once, in one pass or the other.  A hot customer is thus locked only from
 * its turn in pass 2 to the commit, not through pass 1.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_unregister);
PG_FUNCTION_INFO_V1(capaccess_reset);
PG_FUNCTION_INFO_V1(capaccess_reset_all);

static const char *const delete_sql =
"DELETE FROM capaccess.customer AS c"
" WHERE c.customer_id OPERATOR(pg_catalog.=) $1";

#define RESET_REST(seq) \
"UPDATE capaccess.customer AS c SET" \
"  used = $1," \
"  clock = c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8," \
"  seq = " seq "," \
"  state_hash = capaccess.state_hash(c.customer_id," \
"    c.clock OPERATOR(pg_catalog.+) 1::pg_catalog.int8, $1, c.cap, c.access)," \
"  updated_at = pg_catalog.now()" \
" WHERE NOT (c.customer_id OPERATOR(pg_catalog.=) ANY ($2))"

/* in the schema's two forms: see CAPACCESS_SEQ_BLOCK */
static const char *const reset_rest_sql[2] = {
	RESET_REST(CAPACCESS_SEQ_NEXTVAL), RESET_REST(CAPACCESS_SEQ_BLOCK)
};

static SPIPlanPtr delete_plan = NULL;
static SPIPlanPtr reset_rest_plan = NULL;
static int	reset_rest_form = 0;

static void
check_used(int64 used)
{
	if (used < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("used must not be negative"),
				 errdetail("The value given was " INT64_FORMAT ".", used)));
}

/* capaccess_unregister(customer_id bigint) returns boolean */
Datum
capaccess_unregister(PG_FUNCTION_ARGS)
{
	Oid			argtype = INT8OID;
	int64		customer_id;
	Datum		arg;
	Relation	rel;
	uint64		scope;
	CapaccessSpi spi;
	bool		held_before;
	bool		gated;
	bool		deleted;
	int			rc;

	capaccess_check_can_write("capaccess_unregister()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_id must not be null")));
	customer_id = PG_GETARG_INT64(0);
	arg = Int64GetDatum(customer_id);

	rel = capaccess_table_open(RowExclusiveLock);
	scope = capaccess_table_scope(rel);
	capaccess_table_lock_indexes(rel);
	capaccess_spi_connect(rel, &spi);
	(void) capaccess_prepare_once(&delete_plan, delete_sql, 1, &argtype);

	held_before = capaccess_gate_is_held(scope, customer_id);
	/* without a slot, the DELETE's row lock orders it */
	gated = capaccess_gate_take_or_go_without(scope, customer_id);

	rc = SPI_execute_plan(delete_plan, &arg, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "capaccess DELETE failed: %s", SPI_result_code_string(rc));
	deleted = SPI_processed > 0;

	/* the cache goes at commit; if there was nothing, at once */
	if (deleted && gated)
		capaccess_gate_stage_gone(scope, customer_id);
	else if (gated && !held_before)
		capaccess_gate_give_back(scope, customer_id, NULL);

	capaccess_spi_finish(&spi);
	table_close(rel, NoLock);
	PG_RETURN_BOOL(deleted);
}

/*
 * capaccess_reset(customer_id bigint, used bigint DEFAULT 0) returns the
 * same row as capaccess_update.
 */
Datum
capaccess_reset(PG_FUNCTION_ARGS)
{
	CapaccessResult r;

	capaccess_check_loaded();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null",
						PG_ARGISNULL(0) ? "customer_id" : "used")));
	check_used(PG_GETARG_INT64(1));

	capaccess_do_reset(PG_GETARG_INT64(0), PG_GETARG_INT64(1), &r);
	PG_RETURN_DATUM(capaccess_result_datum(fcinfo, &r));
}

/* capaccess_reset_all(used bigint DEFAULT 0) returns bigint */
Datum
capaccess_reset_all(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {INT8OID, INT8ARRAYOID};
	Datum		args[2];
	int64		new_used;
	Relation	rel;
	CapaccessSpi spi;
	int64	   *busy;
	int			nbusy;
	Datum	   *elems;
	int64		count;
	int			rc;
	int			form;

	capaccess_check_can_write("capaccess_reset_all()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("used must not be null")));
	new_used = PG_GETARG_INT64(0);
	check_used(new_used);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("capaccess_reset_all() cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Under a transaction snapshot, every customer updated since the snapshot was taken would fail with a serialization error, after the work on all the others."),
				 errhint("Run it in a READ COMMITTED transaction.")));

	rel = capaccess_table_open(RowExclusiveLock);
	capaccess_table_lock_indexes(rel);
	busy = capaccess_slot_busy_customers(capaccess_table_scope(rel), &nbusy);

	/* 1. everyone nobody was busy with, in one statement */
	elems = palloc(Max(nbusy, 1) * sizeof(Datum));
	for (int i = 0; i < nbusy; i++)
		elems[i] = Int64GetDatum(busy[i]);
	args[0] = Int64GetDatum(new_used);
	args[1] = PointerGetDatum(construct_array(elems, nbusy, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	capaccess_spi_connect(rel, &spi);
	form = capaccess_seq_form();
	if (form != reset_rest_form)
	{
		capaccess_forget_plan(&reset_rest_plan);
		reset_rest_form = form;
	}
	(void) capaccess_prepare_once(&reset_rest_plan, reset_rest_sql[form], 2,
								  argtypes);
	rc = SPI_execute_plan(reset_rest_plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "capaccess UPDATE failed: %s", SPI_result_code_string(rc));
	count = (int64) SPI_processed;
	capaccess_spi_finish(&spi);

	/*
	 * 2. the busy ones, each in its turn at its gate; as many gates as that
	 * takes, beyond capaccess.max_gates_per_transaction
	 */
	capaccess_gate_set_limit_exempt(true);
	PG_TRY();
	{
		for (int i = 0; i < nbusy; i++)
		{
			CapaccessResult r;

			capaccess_do_reset(busy[i], new_used, &r);
			if (r.updated)
				count++;
		}
	}
	PG_FINALLY();
	{
		capaccess_gate_set_limit_exempt(false);
	}
	PG_END_TRY();

	table_close(rel, NoLock);
	PG_RETURN_INT64(count);
}
