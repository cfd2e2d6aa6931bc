/*-------------------------------------------------------------------------
 *
 * table.c
 *	  capaccess.customer: finding and locking it, holding it to its contract,
 *	  acting as its owner, reading its rows by name, and telling whether a
 *	  cached row version is still the current one.
 *
 * The table is the source of truth, and administrators may change it: add
 * columns, indexes, constraints and triggers of their own, and write rows
 * by hand.  This file is what lets every function survive that.
 *
 * Finding and locking.  Every call locks the table (RowExclusiveLock for
 * writers, AccessShareLock for readers) before it reads the table's
 * definition, before it queues for a gate and before it runs a statement.
 * Taking the lock processes pending invalidations, and no DDL on the table
 * can commit while it is held, so what the call checked stays true until
 * its transaction ends.  If the name capaccess.customer came to mean
 * another table while we waited for the lock (DROP and CREATE EXTENSION),
 * the locks are dropped and the names looked up again, as RangeVarGetRelid
 * does.
 *
 * Writers lock capaccess.seq (which the UPDATE's nextval needs) first, then
 * the table, then its indexes: every lock a call will need is taken before
 * it queues for a gate, so that nobody waits for a lock while holding a gate that others
 * wait for, and in the order DROP EXTENSION takes them (it reaches the
 * sequence before the table).  A DROP EXTENSION thus waits for the calls in
 * progress, the whole queue of a gate included, and calls that arrive later
 * wait for it, then fail with 42P01 (or, after CREATE EXTENSION, use the
 * new table).
 *
 * The contract.  capaccess reads and writes eight columns by name:
 * customer_id, cap, used, access, clock, seq, state_hash (bigint, but
 * access text) and updated_at (timestamptz), and relies on the primary key
 * on customer_id.  Other columns, indexes, constraints and triggers are the
 * administrator's business.  The contract is checked once per backend and
 * again after each invalidation of the table; a break is an error that
 * names the column (42703 missing, 42804 wrong type) or the key (55000),
 * before any gate is taken.  Rows are read by column name, never position.
 *
 * The owner's context.  Statements run as the table's owner, restricted as
 * a security-definer function would be, in a GUC nest level of their own
 * with search_path = pg_catalog, pg_temp, all restored afterwards (as
 * PostgreSQL does around maintenance commands).  Two more settings are
 * pinned where they would change something: row_security = off when the
 * owner is subject to the table's policies (FORCE ROW LEVEL SECURITY), and
 * plan_cache_mode = force_generic_plan when the caller forces custom plans;
 * otherwise an administrator's trigger sees the caller's values of those,
 * which can only make it stricter.  A trigger or default
 * someone adds to the table therefore cannot be captured through the
 * caller's search_path (its unqualified names resolve in pg_catalog, then
 * the session's temporary schema: it must qualify the rest), and a setting
 * it changes does not leak into the caller's session.  The plans are built
 * and run under that same search_path, and always generic, so nothing the
 * caller sets makes them be planned again.  With row_security off, a FORCE
 * ROW LEVEL SECURITY policy makes the statements fail rather than silently
 * see fewer rows.
 *
 * Row versions.  A cached state names the row version it came from: the
 * table's relfilenode, the version's ctid, and its xmin.  The cache may
 * answer for a customer only if that version is there, is visible to a
 * fresh snapshot (written by a committed transaction, and not yet deleted
 * or updated by one), is the customer's, and holds exactly the cached
 * values.  Then the cache says what the latest committed row says, whatever
 * wrote the table and however, so the cache can be stale but never
 * contradict a committed row.  The comparison of values, not the identity
 * of the version alone, is what makes this hold: a transaction that
 * truncates a table it created or truncated earlier empties its storage in
 * place, and may then put another row, of its own xid, at the same place.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/multixact.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "capaccess.h"

/* The columns capaccess reads and writes, and their types. */
typedef struct CustomerColumn
{
	const char *name;
	Oid			type;
} CustomerColumn;

static const CustomerColumn customer_columns[] = {
	{"customer_id", INT8OID},
	{"cap", INT8OID},
	{"used", INT8OID},
	{"access", TEXTOID},
	{"clock", INT8OID},
	{"seq", INT8OID},
	{"state_hash", INT8OID},
	{"updated_at", TIMESTAMPTZOID},
};

/*
 * This backend's lookup of capaccess.customer, and whether its definition
 * was checked, both dropped when the table's relation cache entry is
 * invalidated (any DDL on it, DROP EXTENSION) or the whole cache is reset.
 */
static Oid	customer_relid = InvalidOid;
static Oid	seq_relid = InvalidOid;
static bool customer_checked = false;
static AttrNumber customer_attnums[lengthof(customer_columns)]; /* once checked */
static uint64 customer_generation = 0;
static bool customer_inval_registered = false;

static void customer_lookup(Oid *relid, Oid *seqid);

static void
customer_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || !OidIsValid(customer_relid) ||
		relid == customer_relid || relid == seq_relid)
	{
		customer_relid = InvalidOid;
		seq_relid = InvalidOid;
		customer_checked = false;
		customer_generation++;
	}
}

/*
 * Where the contract's column col (CAPACCESS_COL_*) is in the table.  Only
 * after capaccess_table_open, whose lock keeps it so.
 */
AttrNumber
capaccess_table_attnum(int col)
{
	Assert(col >= 0 && col < lengthof(customer_columns));
	return customer_attnums[col];
}

/* capaccess.seq, locked by capaccess_table_open for a writer. */
Oid
capaccess_table_seq(void)
{
	Oid			relid;
	Oid			seqid;

	customer_lookup(&relid, &seqid);
	return seqid;
}

/*
 * Bumped whenever the table may have changed: plans built before then are
 * to be checked again before they run under a gate.
 */
uint64
capaccess_table_generation(void)
{
	return customer_generation;
}

static Oid
relation_in_capaccess(Oid nsp, const char *name)
{
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"capaccess.%s\" does not exist", name),
				 errhint("Run CREATE EXTENSION capaccess in this database.")));
	return relid;
}

/*
 * OIDs of capaccess.customer and capaccess.seq in this database, by name,
 * without locking.
 */
static void
customer_lookup(Oid *relid, Oid *seqid)
{
	if (!OidIsValid(customer_relid))
	{
		Oid			nsp;
		Oid			relid;
		Oid			seqid;

		if (!customer_inval_registered)
		{
			CacheRegisterRelcacheCallback(customer_inval, (Datum) 0);
			customer_inval_registered = true;
		}
		nsp = get_namespace_oid("capaccess", true);
		relid = relation_in_capaccess(nsp, "customer");
		seqid = relation_in_capaccess(nsp, "seq");
		/* both or neither, so that a failed lookup is made again */
		customer_relid = relid;
		seq_relid = seqid;
	}
	*relid = customer_relid;
	*seqid = seq_relid;
}

/* Is index indexoid a key on exactly the column attnum? */
static bool
index_is_key_on(Oid indexoid, AttrNumber attnum)
{
	HeapTuple	tup;
	Form_pg_index index;
	bool		result;

	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", indexoid);
	index = (Form_pg_index) GETSTRUCT(tup);
	result = index->indnkeyatts == 1 && index->indkey.values[0] == attnum;
	ReleaseSysCache(tup);
	return result;
}

/*
 * Check that the table still has what capaccess reads and writes.  Called
 * with the table locked, so that the answer holds until transaction end.
 */
static void
check_contract(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	key_attnum = InvalidAttrNumber;
	Oid			pk;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"capaccess.customer\" is not a table")));

	for (int i = 0; i < lengthof(customer_columns); i++)
	{
		const CustomerColumn *col = &customer_columns[i];
		Form_pg_attribute found = NULL;

		for (int j = 0; j < desc->natts && found == NULL; j++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, j);

			if (!att->attisdropped && strcmp(NameStr(att->attname), col->name) == 0)
				found = att;
		}
		if (found == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"capaccess.customer\" does not exist",
							col->name),
					 errdetail("capaccess reads and writes the columns customer_id, cap, used, access, clock, seq, state_hash and updated_at by name, and one of them was dropped or renamed."),
					 errhint("Give the table back a column \"%s\" of type %s.",
							 col->name, format_type_be(col->type))));
		if (found->atttypid != col->type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of relation \"capaccess.customer\" has type %s, but capaccess needs type %s",
							col->name, format_type_be(found->atttypid),
							format_type_be(col->type)),
					 errhint("Change the column back with ALTER TABLE capaccess.customer ALTER COLUMN %s TYPE %s.",
							 col->name, format_type_be(col->type))));
		customer_attnums[i] = found->attnum;
	}
	key_attnum = customer_attnums[CAPACCESS_COL_CUSTOMER_ID];

	pk = CAPACCESS_PRIMARY_KEY(rel);
	if (!OidIsValid(pk) || !index_is_key_on(pk, key_attnum))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"capaccess.customer\" has no primary key on customer_id"),
				 errdetail("capaccess relies on that key to find a customer's row and to keep one row per customer."),
				 errhint("Restore it with ALTER TABLE capaccess.customer ADD PRIMARY KEY (customer_id).")));
}

/*
 * Lock capaccess.customer in lockmode and open it, checking its contract;
 * for a writer (RowExclusiveLock), lock capaccess.seq before it.  A writer
 * locks the indexes too before it queues (capaccess_table_lock_indexes).  The locks
 * are held until the transaction ends; close the relation with
 * table_close(rel, NoLock).
 */
Relation
capaccess_table_open(LOCKMODE lockmode)
{
	bool		writer = (lockmode == RowExclusiveLock);
	uint64		generation;
	Oid			relid;
	Oid			seqid;
	Oid			relid_now;
	Oid			seqid_now;
	Relation	rel;

	for (;;)
	{
		customer_lookup(&relid, &seqid);
		if (writer)
			LockRelationOid(seqid, RowExclusiveLock);
		LockRelationOid(relid, lockmode);
		/* locking processed invalidations: do the names still mean these? */
		customer_lookup(&relid_now, &seqid_now);
		if (relid_now == relid && seqid_now == seqid)
			break;
		UnlockRelationOid(relid, lockmode);
		if (writer)
			UnlockRelationOid(seqid, RowExclusiveLock);
	}

	generation = customer_generation;
	rel = table_open(relid, NoLock);
	if (!customer_checked)
	{
		check_contract(rel);
		/* holds for this call (the lock is held); remembered if not stale */
		customer_checked = (customer_generation == generation);
	}
	return rel;
}

/*
 * Before a writer queues for a gate: lock the table's indexes, which the
 * statements' plans lock too, and its TOAST table, so that no lock is
 * waited for under the gate.  (A refusal answered from the cache needs none
 * of them.)
 */
void
capaccess_table_lock_indexes(Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
		LockRelationOid(lfirst_oid(lc), RowExclusiveLock);
	list_free(indexes);

	/*
	 * And the TOAST table, which an UPDATE of a long access text writes: a
	 * REINDEX of its index, or a VACUUM truncating it, then waits for the
	 * queue instead of the queue waiting for it.
	 */
	if (OidIsValid(rel->rd_rel->reltoastrelid))
		LockRelationOid(rel->rd_rel->reltoastrelid, RowExclusiveLock);
}

/*
 * The scope of this database's customers in the slot table: the database
 * and the table, so that neither two databases nor a re-created extension
 * share slots.
 */
uint64
capaccess_table_scope(Relation rel)
{
	return ((uint64) MyDatabaseId << 32) | (uint64) RelationGetRelid(rel);
}

/*
 * Connect to SPI and act as the table's owner, restricted as a security
 * definer would be, with the settings pinned (see the file header).  An
 * error on the way restores the user and the settings at abort.
 */
void
capaccess_spi_connect(Relation rel, CapaccessSpi *spi)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&spi->save_userid, &spi->save_sec_context);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   spi->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	spi->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	/*
	 * The other two only where they would change something: row_security
	 * matters only when the owner is subject to the table's policies, and
	 * plan_cache_mode only when forced to custom plans.
	 */
	if (row_security && rel->rd_rel->relrowsecurity &&
		rel->rd_rel->relforcerowsecurity)
		(void) set_config_option("row_security", "off",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	if (plan_cache_mode == PLAN_CACHE_MODE_FORCE_CUSTOM_PLAN)
		(void) set_config_option("plan_cache_mode", "force_generic_plan",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
}

void
capaccess_spi_finish(CapaccessSpi *spi)
{
	/* also undoes whatever code run as the owner set */
	AtEOXact_GUC(false, spi->save_nestlevel);
	SetUserIdAndSecContext(spi->save_userid, spi->save_sec_context);
	SPI_finish();
}

/* Position of a column, by name, in a result capaccess asked for. */
int
capaccess_spi_column(TupleDesc desc, const char *name)
{
	int			col = SPI_fnumber(desc, name);

	if (col <= 0)
		elog(ERROR, "capaccess statement returned no column \"%s\"", name);
	return col;
}

static int64
row_int8(HeapTuple tup, TupleDesc desc, const char *name, int64 customer_id,
		 bool nullable, bool *isnull)
{
	bool		null;
	Datum		d = SPI_getbinval(tup, desc, capaccess_spi_column(desc, name), &null);

	if (null && !nullable)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"%s\" of customer " INT64_FORMAT " in capaccess.customer is null",
						name, customer_id),
				 errdetail("capaccess needs a value in every column it uses but seq and updated_at.")));
	if (isnull)
		*isnull = null;
	return null ? 0 : DatumGetInt64(d);
}

/*
 * Copy a capaccess.customer row, as a statement returned it, into st (and
 * its access text into cxt), reading each column by name.  The row version
 * is taken from the columns ctid and xmin when the statement returned them.
 */
void
capaccess_state_from_row(Relation rel, HeapTuple tup, TupleDesc desc,
						 int64 customer_id, CapaccessState *st,
						 char **access_out, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	text	   *access;
	int			len;
	int			col;

	st->cap = row_int8(tup, desc, "cap", customer_id, false, NULL);
	st->used = row_int8(tup, desc, "used", customer_id, false, NULL);
	st->clock = row_int8(tup, desc, "clock", customer_id, false, NULL);
	st->seq = row_int8(tup, desc, "seq", customer_id, true, &st->seq_isnull);
	st->state_hash = row_int8(tup, desc, "state_hash", customer_id, false, NULL);

	d = SPI_getbinval(tup, desc, capaccess_spi_column(desc, "access"), &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"access\" of customer " INT64_FORMAT " in capaccess.customer is null",
						customer_id),
				 errdetail("capaccess needs a value in every column it uses but seq and updated_at.")));
	access = DatumGetTextPP(d);

	st->relfilenode = CAPACCESS_REL_FILENUMBER(rel);
	ItemPointerSetInvalid(&st->tid);
	st->xmin = InvalidTransactionId;
	st->lsn = InvalidXLogRecPtr;
	col = SPI_fnumber(desc, "ctid");
	if (col > 0)
	{
		d = SPI_getbinval(tup, desc, col, &isnull);
		if (!isnull)
			ItemPointerCopy((ItemPointer) DatumGetPointer(d), &st->tid);
	}
	col = SPI_fnumber(desc, "xmin");
	if (col > 0)
	{
		d = SPI_getbinval(tup, desc, col, &isnull);
		if (!isnull)
			st->xmin = DatumGetTransactionId(d);
	}

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

/* Is column col of the tuple the bigint value? */
static bool
int8_column_is(HeapTuple tuple, TupleDesc desc, int col, int64 value)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, customer_attnums[col], desc, &isnull);

	return !isnull && DatumGetInt64(d) == value;
}

/* Does the tuple hold customer_id's state st, value for value? */
static bool
tuple_holds_state(Relation rel, HeapTuple tuple, const CapaccessState *st,
				  int64 customer_id)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		d;
	struct varlena *access;

	if (!int8_column_is(tuple, desc, CAPACCESS_COL_CUSTOMER_ID, customer_id) ||
		!int8_column_is(tuple, desc, CAPACCESS_COL_CAP, st->cap) ||
		!int8_column_is(tuple, desc, CAPACCESS_COL_USED, st->used) ||
		!int8_column_is(tuple, desc, CAPACCESS_COL_CLOCK, st->clock) ||
		!int8_column_is(tuple, desc, CAPACCESS_COL_STATE_HASH, st->state_hash))
		return false;
	d = heap_getattr(tuple, customer_attnums[CAPACCESS_COL_SEQ], desc, &isnull);
	if (isnull != st->seq_isnull || (!isnull && DatumGetInt64(d) != st->seq))
		return false;

	/* a cached access is short, so the tuple's must be inline to match */
	d = heap_getattr(tuple, customer_attnums[CAPACCESS_COL_ACCESS], desc, &isnull);
	if (isnull || st->access_len < 0)
		return false;
	access = (struct varlena *) DatumGetPointer(d);
	if (VARATT_IS_EXTERNAL(access) || VARATT_IS_COMPRESSED(access) ||
		VARSIZE_ANY_EXHDR(access) != st->access_len)
		return false;
	return memcmp(VARDATA_ANY(access), st->access, st->access_len) == 0;
}

/*
 * Is the row version st was read from still the latest committed one of
 * customer_id?  See "Row versions" in the file header.  rel is the table,
 * locked and checked by capaccess_table_open.
 */
bool
capaccess_row_is_current(Relation rel, const CapaccessState *st,
						 int64 customer_id)
{
	BlockNumber blkno;
	OffsetNumber offnum;
	PrefetchBufferResult hit;
	Buffer		buf;
	Page		page;
	bool		current = false;

	if (st->relfilenode != CAPACCESS_REL_FILENUMBER(rel) ||
		!ItemPointerIsValid(&st->tid) || !TransactionIdIsNormal(st->xmin))
		return false;
	blkno = ItemPointerGetBlockNumber(&st->tid);
	offnum = ItemPointerGetOffsetNumber(&st->tid);

	/*
	 * The block may be gone (a VACUUM or a TRUNCATE in place shortened the
	 * table).  A shared buffer that still holds it proves it is there, which
	 * is what a refusal of a busy customer finds, without asking the file
	 * system for the table's size; truncation drops such buffers first. Only
	 * in the first segment, which always exists: looking for a block of a
	 * later one past a shortened segment is an error.
	 */
	hit.recent_buffer = InvalidBuffer;
	if (blkno < RELSEG_SIZE)
		hit = PrefetchBuffer(rel, MAIN_FORKNUM, blkno);
	if (BufferIsValid(hit.recent_buffer) &&
		ReadRecentBuffer(CAPACCESS_REL_LOCATOR(rel), MAIN_FORKNUM, blkno, hit.recent_buffer))
		buf = hit.recent_buffer;
	else if (blkno < RelationGetNumberOfBlocks(rel))
		buf = ReadBuffer(rel, blkno);
	else
		return false;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (offnum >= FirstOffsetNumber && offnum <= PageGetMaxOffsetNumber(page))
	{
		ItemId		lp = PageGetItemId(page, offnum);

		if (ItemIdIsNormal(lp))
		{
			HeapTupleData tuple;

			tuple.t_data = (HeapTupleHeader) PageGetItem(page, lp);
			tuple.t_len = ItemIdGetLength(lp);
			tuple.t_self = st->tid;
			tuple.t_tableOid = RelationGetRelid(rel);
			if (HeapTupleHeaderGetRawXmin(tuple.t_data) == st->xmin &&
				HeapTupleSatisfiesVisibility(&tuple, GetLatestSnapshot(), buf))
				current = tuple_holds_state(rel, &tuple, st, customer_id);
		}
	}
	UnlockReleaseBuffer(buf);
	return current;
}

/*
 * Does this transaction hold the row version at tid: did it write it (its
 * xmin), or update, delete or lock it (its xmax, alone or in a
 * multixact)?  Another writer of the row then waits for this transaction,
 * so this transaction must not queue for the customer's gate behind that
 * writer.  An UPDATE that waited for a concurrent writer and found the row
 * no longer qualifying leaves such a lock too.  Reads the header as heapam
 * does; a transaction without an xid holds nothing.
 */
bool
capaccess_row_held_by_us(Relation rel, ItemPointer tid)
{
	BlockNumber blkno = ItemPointerGetBlockNumber(tid);
	OffsetNumber offnum = ItemPointerGetOffsetNumber(tid);
	Buffer		buf;
	Page		page;
	bool		ours = false;

	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		blkno >= RelationGetNumberOfBlocks(rel))
		return false;
	buf = ReadBuffer(rel, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (offnum >= FirstOffsetNumber && offnum <= PageGetMaxOffsetNumber(page))
	{
		ItemId		lp = PageGetItemId(page, offnum);

		if (ItemIdIsNormal(lp))
		{
			HeapTupleHeader htup = (HeapTupleHeader) PageGetItem(page, lp);
			uint16		infomask = htup->t_infomask;
			TransactionId xmax = HeapTupleHeaderGetRawXmax(htup);

			ours = TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmin(htup));
			if (!ours && !(infomask & HEAP_XMAX_INVALID))
			{
				if (infomask & HEAP_XMAX_IS_MULTI)
				{
					MultiXactMember *members;
					int			n = GetMultiXactIdMembers(xmax, &members, false,
														  HEAP_XMAX_IS_LOCKED_ONLY(infomask));

					for (int i = 0; i < n && !ours; i++)
						ours = TransactionIdIsCurrentTransactionId(members[i].xid);
					if (n > 0)
						pfree(members);
				}
				else
					ours = TransactionIdIsCurrentTransactionId(xmax);
			}
		}
	}
	UnlockReleaseBuffer(buf);
	return ours;
}

/*
 * A WAL position that covers the commit of every transaction visible now:
 * the end of the WAL inserted so far.  A commit is inserted before it
 * becomes visible, so flushing up to this makes durable whatever state a
 * statement just read, whoever wrote it and however (early release, an
 * administrator with synchronous_commit = off).
 *
 * GetXLogInsertRecPtr() gives where the next record would start, which is
 * past the header of a page nothing was written to yet; nothing can be
 * flushed there, so such a position is taken back to the page boundary.
 */
XLogRecPtr
capaccess_durable_lsn(void)
{
	XLogRecPtr	lsn = GetXLogInsertRecPtr();

	if (XLogSegmentOffset(lsn, wal_segment_size) == SizeOfXLogLongPHD)
		lsn -= SizeOfXLogLongPHD;
	else if (lsn % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		lsn -= SizeOfXLogShortPHD;
	return lsn;
}
