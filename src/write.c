/*-------------------------------------------------------------------------
 *
 * write.c
 *	  Writing a customer's row without the executor, when nothing an
 *	  administrator added to the table needs the executor.
 *
 * Why.  A call that writes through SPI builds a whole executor for its
 * UPDATE, and PostgreSQL reads the table's CHECK constraints from their
 * stored text again in every statement that writes the table: together
 * about 20 microseconds of a call that costs about 120 (bench/PROFILE.md).
 * Here the call finds the row through the primary key, builds the new
 * version, checks the constraints (whose planned expressions are kept per
 * backend until the table or any function changes), and writes it with
 * heap_update and index_insert, as CatalogTupleUpdate does for the
 * catalogs.
 *
 * When.  Only where that does exactly what the UPDATE would do:
 *
 *	- the table is a heap with no triggers, no rules, no row level security
 *	  and no stored generated columns, and is neither a partition (whose
 *	  bound the executor checks) nor inherited from (the UPDATE, which
 *	  names no ONLY, would write a child's rows too);
 *	- its indexes are plain: no expressions, no predicate, no exclusion
 *	  constraint, no deferred uniqueness;
 *	- the owner (whom the call acts as) holds SELECT and UPDATE on it and
 *	  EXECUTE on capaccess.state_hash (and on capaccess.next_seq, from 1.1
 *	  on), and no extension watches the executor's permission checks
 *	  (ExecutorCheckPerms_hook: sepgsql, pgaudit's object audit);
 *	- the transaction is not SERIALIZABLE (whose predicate locks the
 *	  executor takes in its own way);
 *	- capaccess.direct_write is on.
 *
 * Anything else, and anything unusual on the way, goes back to the UPDATE
 * through SPI (update.c), which then does all of it, errors included: a
 * constraint the new row violates, a value that overflows, a row another
 * transaction updated since this statement's snapshot (whose READ
 * COMMITTED recheck, or REPEATABLE READ serialization failure, the
 * executor does).  The fallback is decided before anything is written, so
 * the UPDATE always starts from the same unchanged row.  What falls back
 * costs one sequence value more than it would have; seq has gaps anyway.
 *
 * Two differences remain, both accepted.  A refusal that follows a wait for
 * another transaction's write leaves the row unlocked, where the UPDATE's
 * recheck would have left the newest version locked: nothing is written
 * either way, and nobody waits for a lock that protects nothing.  And the
 * CHECK expressions are planned once, not per statement: a function they
 * call that is declared IMMUTABLE but reads something that changes (which
 * PostgreSQL's own cached plans also fold to a constant) is evaluated again
 * only after a change to the table or to pg_proc.
 *
 * The write is the UPDATE's, step for step: a new command id and snapshot
 * as SPI takes for each statement, the row found with that snapshot, the
 * same new values (clock + 1, the next seq from seq.c, the state hash,
 * now()), the same checks (the cap in the statement, NOT NULL and CHECK
 * constraints before the write), heap_update waiting for a row lock as the
 * executor would, and index entries only when the new version is not
 * heap-only.  The page of a version found by position is pruned first
 * (update.c), as an index scan prunes on its way to a row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_proc.h"
#include "commands/sequence.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_func.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "capaccess.h"

#if PG_VERSION_NUM >= 160000
#define proc_aclcheck(oid, role, mode) \
	object_aclcheck(ProcedureRelationId, (oid), (role), (mode))
#else
#define proc_aclcheck(oid, role, mode) pg_proc_aclcheck((oid), (role), (mode))
#endif

bool		capaccess_direct_write = true;

/*
 * What this backend knows of the table, for the table generation it was
 * worked out in (table.c bumps it on any invalidation of the table).
 */
static MemoryContext known_cxt = NULL;
static bool known_valid = false;
static uint64 known_generation = 0;
static bool known_eligible = false;
static List *known_checks = NIL;	/* planned CHECK expressions */
static Oid	known_state_hash = InvalidOid;	/* capaccess.state_hash */
static Oid	known_next_seq = InvalidOid;	/* capaccess.next_seq, from 1.1 */
static bool known_watching = false;
static uint64 proc_changes = 0; /* bumped by every change to pg_proc */
static uint64 known_proc_changes = 0;

/*
 * Planning a CHECK expression may inline a SQL function it calls, so any
 * change to pg_proc makes the table be worked out again.
 */
static void
known_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	proc_changes++;
}

/* Can the direct write do what an UPDATE of this table would do? */
static bool
table_is_plain(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;
	ListCell   *lc;
	bool		plain = true;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		rel->trigdesc != NULL ||
		rel->rd_rules != NULL ||
		rel->rd_rel->relrowsecurity ||
		rel->rd_rel->relispartition ||
		rel->rd_rel->relhassubclass ||
		(desc->constr != NULL && desc->constr->has_generated_stored))
		return false;

	/* the indexes are locked already (capaccess_table_lock_indexes) */
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), NoLock);
		Form_pg_index index = irel->rd_index;

		if (!heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, NULL) ||
			!heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, NULL) ||
			index->indisexclusion ||
			(index->indisunique && !index->indimmediate))
			plain = false;
		index_close(irel, NoLock);
		if (!plain)
			break;
	}
	list_free(indexes);
	return plain;
}

/* capaccess.state_hash(bigint, bigint, bigint, bigint, text), or InvalidOid */
static Oid
state_hash_function(void)
{
	Oid			argtypes[5] = {INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID};
	List	   *name = list_make1(makeString("capaccess"));

	name = lappend(name, makeString("state_hash"));
	return LookupFuncName(name, lengthof(argtypes), argtypes, true);
}

/*
 * Work out, once per table generation (and until pg_proc changes), whether
 * and how to write directly.
 */
static bool
know_table(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;

	if (known_valid && known_generation == capaccess_table_generation() &&
		known_proc_changes == proc_changes)
		return known_eligible;

	if (!known_watching)
	{
		CacheRegisterSyscacheCallback(PROCOID, known_forget, (Datum) 0);
		known_watching = true;
	}
	if (known_cxt == NULL)
		known_cxt = AllocSetContextCreate(CacheMemoryContext,
										  "capaccess direct write",
										  ALLOCSET_SMALL_MINSIZE,
										  (Size) ALLOCSET_SMALL_INITSIZE,
										  (Size) ALLOCSET_SMALL_MAXSIZE);
	known_valid = false;
	MemoryContextReset(known_cxt);
	known_checks = NIL;

	known_generation = capaccess_table_generation();
	known_proc_changes = proc_changes;
	known_eligible = table_is_plain(rel);
	known_state_hash = state_hash_function();
	known_next_seq = capaccess_seq_function();
	if (!OidIsValid(known_state_hash))
		known_eligible = false;
	if (known_eligible && desc->constr != NULL)
	{
		old = MemoryContextSwitchTo(known_cxt);
		for (int i = 0; i < desc->constr->num_check; i++)
			known_checks =
				lappend(known_checks,
						expression_planner(stringToNode(desc->constr->check[i].ccbin)));
		MemoryContextSwitchTo(old);
	}
	/* an invalidation while reading the catalogs: work it out again next time */
	known_valid = (known_generation == capaccess_table_generation() &&
				   known_proc_changes == proc_changes);
	return known_eligible;
}

/*
 * Before the call queues for a gate: work out what the direct write needs
 * from the catalogs (after a change to the table, or to any function), so
 * that it is not done while the queue waits.
 */
void
capaccess_write_prepare(Relation rel)
{
	if (capaccess_direct_write)
		(void) know_table(rel);
}

/*
 * Does the new version pass the table's NOT NULL and CHECK constraints?
 * CHECK constraints are enforced on new rows whether validated or not, and
 * a null result passes, as in the executor.
 */
static bool
passes_constraints(Relation rel, TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(rel);
	ExprContext *econtext;
	ListCell   *lc;
	bool		ok = true;

	if (desc->constr == NULL)
		return true;
	if (desc->constr->has_not_null)
	{
		slot_getallattrs(slot);
		for (int i = 0; i < desc->natts; i++)
		{
			if (TupleDescAttr(desc, i)->attnotnull && slot->tts_isnull[i])
				return false;
		}
	}
	if (known_checks == NIL)
		return true;

	econtext = CreateStandaloneExprContext();
	econtext->ecxt_scantuple = slot;
	foreach(lc, known_checks)
	{
		ExprState  *check = ExecInitCheck(make_ands_implicit((Expr *) lfirst(lc)),
										  NULL);

		if (!ExecCheck(check, econtext))
		{
			ok = false;
			break;
		}
		ResetExprContext(econtext);
	}
	FreeExprContext(econtext, true);
	return ok;
}

/* Copy of the version of the customer's row this snapshot sees, or NULL. */
static HeapTuple
find_row(Relation rel, Snapshot snapshot, int64 customer_id, ItemPointer tid)
{
	AttrNumber	key_att = capaccess_table_attnum(CAPACCESS_COL_CUSTOMER_ID);
	HeapTuple	found = NULL;

	/* where the cache says the last committed version is, after a wait */
	if (tid != NULL && ItemPointerIsValid(tid) &&
		ItemPointerGetBlockNumber(tid) < RelationGetNumberOfBlocks(rel))
	{
		HeapTupleData tuple;
		Buffer		buf;

		/* (its page was pruned by the caller, as an index scan would) */
		tuple.t_self = *tid;
		if (heap_fetch(rel, snapshot, &tuple, &buf, false))
		{
			bool		isnull;
			Datum		key = heap_getattr(&tuple, key_att,
										   RelationGetDescr(rel), &isnull);

			if (!isnull && DatumGetInt64(key) == customer_id)
				found = heap_copytuple(&tuple);
			ReleaseBuffer(buf);
		}
		if (found != NULL)
			return found;
	}

	/* by the primary key, a single column (table.c checks) */
	{
		Relation	irel = index_open(CAPACCESS_PRIMARY_KEY(rel), NoLock);
		TupleTableSlot *slot = table_slot_create(rel, NULL);
		IndexScanDesc scan;
		ScanKeyData skey;

		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ,
					Int64GetDatum(customer_id));
#if PG_VERSION_NUM >= 180000
		scan = index_beginscan(rel, irel, snapshot, NULL, 1, 0);
#else
		scan = index_beginscan(rel, irel, snapshot, 1, 0);
#endif
		index_rescan(scan, &skey, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			found = ExecCopySlotHeapTuple(slot);
			found->t_self = slot->tts_tid;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(irel, NoLock);
	}
	return found;
}

static int64
int8_of(HeapTuple tuple, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = heap_getattr(tuple, capaccess_table_attnum(col), desc, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * Is none of the index's columns one that the UPDATE sets?  The executor
 * passes this hint to the index (for bottom-up deletion of the old
 * versions' entries); the UPDATE's SET list names every column of the
 * contract but customer_id.
 */
static bool
index_unchanged(IndexInfo *ii, CapaccessOp op)
{
	for (int i = 0; i < ii->ii_NumIndexAttrs; i++)
	{
		AttrNumber	att = ii->ii_IndexAttrNumbers[i];

		for (int col = 0; col <= CAPACCESS_COL_UPDATED_AT; col++)
		{
			/* capaccess_reset's UPDATE sets neither cap nor access */
			if (col == CAPACCESS_COL_CUSTOMER_ID ||
				(op == CAPACCESS_OP_RESET &&
				 (col == CAPACCESS_COL_CAP || col == CAPACCESS_COL_ACCESS)))
				continue;
			if (att == capaccess_table_attnum(col))
				return false;
		}
	}
	return true;
}

/* Write the new version's index entries, as the executor would. */
static void
insert_index_entries(Relation rel, HeapTuple newtup, bool summarizing_only,
					 CapaccessOp op)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel),
													&TTSOpsHeapTuple);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	ExecStoreHeapTuple(newtup, slot, false);
	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii = BuildIndexInfo(irel);
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

#if PG_VERSION_NUM >= 160000
		if (summarizing_only && !ii->ii_Summarizing)
			ii->ii_ReadyForInserts = false;
#endif
		if (ii->ii_ReadyForInserts)
		{
			/*
			 * An index that is not plain cannot have become ready since
			 * know_table: CREATE INDEX waits for this transaction's lock.
			 */
			if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL ||
				ii->ii_ExclusionOps != NULL)
				elog(ERROR, "index \"%s\" of capaccess.customer changed during the write",
					 RelationGetRelationName(irel));
			FormIndexDatum(ii, slot, NULL, values, isnull);
			(void) index_insert(irel, values, isnull, &newtup->t_self, rel,
								irel->rd_index->indisunique ?
								UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
								index_unchanged(ii, op), ii);
		}
#if PG_VERSION_NUM >= 170000
		index_insert_cleanup(irel, ii);
#endif
		index_close(irel, NoLock);
	}
	list_free(indexes);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * Write the customer's row directly, if that does what the UPDATE would.
 * On CAPACCESS_WRITE_DONE, *newtup_out is the new version (its t_self
 * where it went).  CAPACCESS_WRITE_NO_ROW means the row is missing or does
 * not allow the call; CAPACCESS_WRITE_USE_SQL that nothing was written and
 * the UPDATE through SPI is to decide.
 */
CapaccessWrite
capaccess_write_direct(Relation rel, const CapaccessWriteArgs *a,
					   HeapTuple *newtup_out)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			owner = rel->rd_rel->relowner;
	Snapshot	snapshot;
	HeapTuple	old;
	HeapTuple	newtup;
	TupleTableSlot *slot;
	bool		isnull;
	int64		used,
				cap,
				clock,
				new_used,
				new_cap,
				new_clock,
				seq;
	text	   *access;
	Datum		values[7];
	bool		nulls[7] = {false};
	int			cols[7];
	int			ncols = 0;
	TM_Result	res;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	bool		summarizing_only = false;
	bool		write_indexes;

	if (!capaccess_direct_write || IsolationIsSerializable() ||
		ExecutorCheckPerms_hook != NULL ||
		!know_table(rel) ||
		pg_class_aclmask(RelationGetRelid(rel), owner, ACL_SELECT | ACL_UPDATE,
						 ACLMASK_ALL) != (ACL_SELECT | ACL_UPDATE) ||
		proc_aclcheck(known_state_hash, owner, ACL_EXECUTE) != ACLCHECK_OK ||
		(OidIsValid(known_next_seq) &&
		 proc_aclcheck(known_next_seq, owner, ACL_EXECUTE) != ACLCHECK_OK))
		return CAPACCESS_WRITE_USE_SQL;
	CheckCmdReplicaIdentity(rel, CMD_UPDATE);

	/* a statement of its own, as SPI would run it */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	snapshot = GetActiveSnapshot();

	old = find_row(rel, snapshot, a->customer_id, a->tid);
	if (old == NULL)
	{
		PopActiveSnapshot();
		return CAPACCESS_WRITE_NO_ROW;
	}
	used = int8_of(old, desc, CAPACCESS_COL_USED, &isnull);
	if (isnull)
		goto use_sql;
	cap = int8_of(old, desc, CAPACCESS_COL_CAP, &isnull);
	if (isnull)
		goto use_sql;
	clock = int8_of(old, desc, CAPACCESS_COL_CLOCK, &isnull);
	if (isnull)
		goto use_sql;
	if (a->new_access != NULL)
		access = cstring_to_text(a->new_access);
	else
	{
		Datum		d = heap_getattr(old, capaccess_table_attnum(CAPACCESS_COL_ACCESS),
									 desc, &isnull);

		if (isnull)
			goto use_sql;
		access = DatumGetTextPP(d);
	}

	/* the new values, and the statement's check of the cap */
	new_cap = a->has_cap ? a->new_cap : cap;
	if (a->op == CAPACCESS_OP_RESET)
		new_used = a->consume;
	else
	{
		if (pg_add_s64_overflow(used, a->consume, &new_used))
			goto use_sql;		/* the UPDATE reports the overflow */
		if (new_used < 0 || (a->consume > 0 && new_used > new_cap))
		{
			PopActiveSnapshot();
			return CAPACCESS_WRITE_NO_ROW;
		}
	}
	if (pg_add_s64_overflow(clock, 1, &new_clock))
		goto use_sql;
	/* the 1.0 schema's UPDATE takes a nextval: so does this write */
	if (OidIsValid(known_next_seq))
		seq = capaccess_seq_next(capaccess_table_seq());
	else
		seq = nextval_internal(capaccess_table_seq(), true);

	cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_USED);
	values[ncols++] = Int64GetDatum(new_used);
	cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_CAP);
	values[ncols++] = Int64GetDatum(new_cap);
	if (a->new_access != NULL)
	{
		cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_ACCESS);
		values[ncols++] = PointerGetDatum(access);
	}
	cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_CLOCK);
	values[ncols++] = Int64GetDatum(new_clock);
	cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_SEQ);
	values[ncols++] = Int64GetDatum(seq);
	cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_STATE_HASH);
	values[ncols++] = Int64GetDatum(capaccess_state_hash_of(a->customer_id,
															new_clock, new_used,
															new_cap,
															VARDATA_ANY(access),
															VARSIZE_ANY_EXHDR(access)));
	cols[ncols] = capaccess_table_attnum(CAPACCESS_COL_UPDATED_AT);
	values[ncols++] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Assert(ncols <= lengthof(cols));
	newtup = heap_modify_tuple_by_cols(old, desc, ncols, cols, values, nulls);
	newtup->t_tableOid = RelationGetRelid(rel);
	newtup->t_self = old->t_self;

	slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	ExecStoreHeapTuple(newtup, slot, false);
	if (!passes_constraints(rel, slot))
	{
		/* the UPDATE raises the error, with the failing row */
		ExecDropSingleTupleTableSlot(slot);
		goto use_sql;
	}
	ExecDropSingleTupleTableSlot(slot);

#if PG_VERSION_NUM >= 160000
	{
		TU_UpdateIndexes update_indexes;

		res = heap_update(rel, &old->t_self, newtup, GetCurrentCommandId(true),
						  InvalidSnapshot, true, &tmfd, &lockmode,
						  &update_indexes);
		write_indexes = (update_indexes != TU_None);
		summarizing_only = (update_indexes == TU_Summarizing);
	}
#else
	res = heap_update(rel, &old->t_self, newtup, GetCurrentCommandId(true),
					  InvalidSnapshot, true, &tmfd, &lockmode);
	write_indexes = (res == TM_Ok && !HeapTupleIsHeapOnly(newtup));
#endif
	switch (res)
	{
		case TM_Ok:
			break;
		case TM_Updated:
		case TM_Deleted:
		case TM_SelfModified:
			/* changed since the snapshot: the executor decides what then */
			goto use_sql;
		default:
			elog(ERROR, "unexpected heap_update status %u for capaccess.customer",
				 (unsigned int) res);
	}
	if (write_indexes)
		insert_index_entries(rel, newtup, summarizing_only, a->op);

	PopActiveSnapshot();
	/* as SPI does after a statement that writes */
	CommandCounterIncrement();
	pg_atomic_fetch_add_u64(&capaccess_shared->counters.direct_writes, 1);
	*newtup_out = newtup;
	return CAPACCESS_WRITE_DONE;

use_sql:
	PopActiveSnapshot();
	return CAPACCESS_WRITE_USE_SQL;
}
