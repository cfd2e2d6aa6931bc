/*-------------------------------------------------------------------------
 *
 * seq.c
 *	  seq values in blocks: capaccess.seq advanced once per block, the block
 *	  handed out from shared memory.
 *
 * Every accepted update takes the next value of capaccess.seq.  With one
 * nextval per call, every caller in the server goes through the buffer lock
 * of that sequence's one page, and a backend preempted while it holds that
 * lock stalls all the others: at 1000 clients that was most of capaccess's
 * tail latency (bench/PROFILE.md).  So values are drawn from a block kept
 * in shared memory, one per database, and only the backend that finds the
 * block used up calls nextval.
 *
 * The blocks.  From 1.1 on the sequence's INCREMENT is 1024.  A refill reads
 * the sequence's last_value, then takes a nextval, w.  If w is last_value +
 * increment, nothing moved the sequence in between, and the block is
 * (last_value, w]: whatever nextval returned before is at most last_value,
 * and whatever it returns later is above w, so a block never holds a value
 * that nextval gives anyone else.  Otherwise (a setval or a nextval by hand
 * in between), or when the sequence had been set and not called (setval
 * with is_called false, RESTART, a fresh sequence: nextval returns the value
 * set, which says nothing of the values below it), the block is w alone.
 * A block also never reaches back to values its entry handed out.  That gives what a plain sequence gives, and no more:
 *
 *	- unique: blocks are disjoint, and each value is handed out once under
 *	  the entry's spinlock;
 *	- increasing in the order values are handed out: refills of an entry are
 *	  serialised by its LWLock, each new block lies above the previous one,
 *	  and a nextval taken outside the blocks drops what is left of the block;
 *	- above every value in a committed row after a crash or a restart: the
 *	  block's nextval is WAL-logged before the commit of any row holding one
 *	  of its values, and WAL is replayed in order, so a recovered commit
 *	  implies a recovered nextval; the next block is above what the
 *	  sequence recovers to;
 *	- never above the sequence's last_value, so a dump of the table and the
 *	  sequence restores consistently.
 *
 * A restart loses the rest of the block (and nextval logs 32 increments
 * ahead), so seq has gaps, as with any sequence.  A value someone takes with
 * nextval by hand lies above the current block.  setval and ALTER SEQUENCE
 * RESTART take effect at once for backends that start later, and for the
 * others when the block runs out; set below values already handed out, they
 * make seq repeat them, as they would for any sequence.
 *
 * Where blocks would not be safe, every draw is a nextval of its own, and
 * what was left of the block is dropped: an INCREMENT of 1 or less (the 1.0
 * schema), a CACHE other than 1 (backends would return values out of
 * order), CYCLE, a sequence that is not permanent (unlogged values need not
 * survive a crash), or one whose storage this transaction replaced
 * (ALTER SEQUENCE writes a new file, which a rollback discards with the
 * values it gave).
 *
 * An entry is keyed by database, sequence OID and the sequence's file, so
 * that a dropped and re-created extension, or a sequence file replaced by
 * ALTER SEQUENCE, never draws from an old block.  Each backend also checks,
 * the first time it draws for a key, that the sequence stands at the top of
 * the block (it does, unless someone moved the sequence since the refill,
 * or a database was dropped and made again under the same OIDs); if not,
 * the block is dropped.
 *
 * Locking, in this order: LockRelationOid(seq, RowExclusiveLock); the
 * assignment LWLock (only to give an entry to a database that has none,
 * evicting the least recently refilled); the entry's LWLock (to check or
 * refill its block); the entry's spinlock (to draw).  The relation lock is
 * taken first so that no nextval under an LWLock waits for the sequence's
 * lock (DDL on the sequence in an open transaction would otherwise hold up
 * its refills, and deadlock with that transaction's own next draw).  The
 * catalog entries a refill reads under the LWLock were just looked up by
 * the caller; only a cache miss in between (after an invalidation) would
 * read pg_sequence or pg_class again, which a transaction holding an
 * exclusive lock on those catalogs could delay.  An entry's key changes
 * under the assignment lock, its entry lock and its spinlock; its block
 * under its entry lock and its spinlock.  Reading a key without the
 * spinlock is only a hint, checked again under it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_sequence.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_next_seq);

/* What identifies a block: database, sequence, the sequence's file. */
typedef struct SeqKey
{
	Oid			dbid;
	Oid			seqid;
	Oid			file;
} SeqKey;

/*
 * The entry this backend drew from last, and the key whose block it has
 * checked against the sequence (see above).
 */
static int	my_block = -1;
static SeqKey my_checked_key = {InvalidOid, InvalidOid, InvalidOid};

void
capaccess_seq_init(CapaccessSeqShared *s, LWLockPadded *locks)
{
	s->assign_lock = &locks[0].lock;
	pg_atomic_init_u64(&s->refills, 0);
	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
	{
		CapaccessSeqBlock *b = &s->blocks[i];

		SpinLockInit(&b->mutex);
		b->lock = &locks[1 + i].lock;
		b->dbid = InvalidOid;
		b->seqid = InvalidOid;
		b->file = InvalidOid;
		b->next = 0;
		b->left = 0;
		b->top = 0;
		b->refilled = 0;
	}
}

static inline bool
key_is(const CapaccessSeqBlock *b, const SeqKey *key)
{
	return b->dbid == key->dbid && b->seqid == key->seqid && b->file == key->file;
}

/* Has this backend checked key's block against the sequence? */
static inline bool
checked(const SeqKey *key)
{
	return my_checked_key.dbid == key->dbid &&
		my_checked_key.seqid == key->seqid &&
		my_checked_key.file == key->file;
}

/* Take a value from block b if it is key's. */
static bool
take_from(CapaccessSeqBlock *b, const SeqKey *key, int64 *value)
{
	bool		taken = false;

	SpinLockAcquire(&b->mutex);
	if (key_is(b, key) && b->left > 0)
	{
		*value = b->next;
		if (--b->left > 0)
			b->next++;
		taken = true;
	}
	SpinLockRelease(&b->mutex);
	return taken;
}

/*
 * A nextval of its own, for when blocks are not safe, and what is left of
 * this database's blocks for seqid (of any file) dropped, so that the next
 * block starts above it.  The nextval is taken under the first such
 * entry's lock, and every such entry is then locked and emptied before the
 * value is returned: a refill that read last_value before this nextval
 * either publishes before that (and is emptied) or, if it took its own
 * nextval after this one, finds w <> last_value + increment and keeps w
 * alone, above this value.  (A refill of an entry assigned after the scan
 * is missed only if it took its nextval before the scan: that needs two
 * backends of one database to disagree on whether blocks are safe, which
 * only a GRANT or REVOKE on the sequence arriving between them can do.)
 */
static int64
nextval_outside_blocks(Oid seqid)
{
	int64		value = 0;
	bool		done = false;

	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
	{
		CapaccessSeqBlock *b = &capaccess_shared->seq.blocks[i];

		if (b->dbid != MyDatabaseId || b->seqid != seqid)
			continue;			/* a hint: checked again below */
		LWLockAcquire(b->lock, LW_EXCLUSIVE);
		if (!done)
		{
			value = nextval_internal(seqid, true);
			done = true;
		}
		SpinLockAcquire(&b->mutex);
		if (b->dbid == MyDatabaseId && b->seqid == seqid)
		{
			b->left = 0;
			if (b->top < value)
				b->top = value;
		}
		SpinLockRelease(&b->mutex);
		LWLockRelease(b->lock);
	}
	if (!done)
		value = nextval_internal(seqid, true);
	return value;
}

/* The entry holding key, or -1; a hint, to be checked under a lock. */
static int
find_entry(const SeqKey *key)
{
	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
		if (key_is(&capaccess_shared->seq.blocks[i], key))
			return i;
	return -1;
}

/*
 * Give key an entry, empty: the one it has, an unused one, or the least
 * recently refilled, whose database starts a new block on its next draw.
 */
static int
assign_entry(const SeqKey *key)
{
	CapaccessSeqShared *s = &capaccess_shared->seq;
	int			victim = -1;
	CapaccessSeqBlock *b;

	LWLockAcquire(s->assign_lock, LW_EXCLUSIVE);
	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
	{
		b = &s->blocks[i];
		if (key_is(b, key))
		{
			LWLockRelease(s->assign_lock);
			return i;
		}
		if (victim < 0 || b->dbid == InvalidOid ||
			(s->blocks[victim].dbid != InvalidOid &&
			 b->refilled < s->blocks[victim].refilled))
			victim = i;
	}
	/* the same sequence's entry for an old file first */
	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
		if (s->blocks[i].dbid == key->dbid && s->blocks[i].seqid == key->seqid)
			victim = i;
	b = &s->blocks[victim];
	LWLockAcquire(b->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&b->mutex);
	b->dbid = key->dbid;
	b->seqid = key->seqid;
	b->file = key->file;
	b->left = 0;
	b->top = 0;
	/* not the next to go: it is about to be refilled */
	b->refilled = pg_atomic_add_fetch_u64(&s->refills, 1);
	SpinLockRelease(&b->mutex);
	LWLockRelease(b->lock);
	LWLockRelease(s->assign_lock);
	return victim;
}

/*
 * The sequence's last_value, or false if it was set and not yet called
 * (is_called false).  The caller has checked SELECT or USAGE on it.
 */
static bool
sequence_last_value(Oid seqid, int64 *last_value)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		d;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seqid);
	fcinfo->args[0].isnull = false;
	d = pg_sequence_last_value(fcinfo);
	if (fcinfo->isnull)
		return false;
	*last_value = DatumGetInt64(d);
	return true;
}

/*
 * The sequence's increment and minimum, and the key of its block, if blocks
 * are safe for it (see above); otherwise false.
 */
static bool
blocks_are_safe(Oid seqid, SeqKey *key, int64 *increment, int64 *minvalue)
{
	Relation	seqrel;
	HeapTuple	tup;
	Form_pg_sequence seq;
	bool		ok;

	tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid));
	if (!HeapTupleIsValid(tup))
		return false;			/* not a sequence: nextval says so */
	seq = (Form_pg_sequence) GETSTRUCT(tup);
	*increment = seq->seqincrement;
	*minvalue = seq->seqmin;
	ok = seq->seqincrement > 1 && seq->seqcache == 1 && !seq->seqcycle;
	ReleaseSysCache(tup);
	if (!ok)
		return false;

	/* locked by the caller */
	seqrel = relation_open(seqid, NoLock);
	ok = seqrel->rd_rel->relpersistence == RELPERSISTENCE_PERMANENT &&
		!CAPACCESS_REL_FILE_IS_NEW(seqrel);
	key->dbid = MyDatabaseId;
	key->seqid = seqid;
	key->file = CAPACCESS_REL_FILENUMBER(seqrel);
	relation_close(seqrel, NoLock);

	/* the check of a block against last_value needs to read it */
	return ok &&
		pg_class_aclcheck(seqid, GetUserId(), ACL_SELECT | ACL_USAGE) == ACLCHECK_OK;
}

/*
 * With entry b's LWLock held: drop its block if it is above the sequence
 * (this backend's first use of the entry), then take a value, refilling
 * the block with one nextval if it is used up.
 */
static int64
check_and_refill(CapaccessSeqBlock *b, const SeqKey *key, int64 increment,
				 int64 minvalue)
{
	int64		last_value;
	bool		called;
	int64		top;
	int64		expect;
	int64		low;
	int64		value;

	if (!checked(key))
	{
		/* a block is trusted only if the sequence stands at its top */
		called = sequence_last_value(key->seqid, &last_value);
		SpinLockAcquire(&b->mutex);
		if (key_is(b, key) && b->left > 0 && !(called && b->top == last_value))
			b->left = 0;
		SpinLockRelease(&b->mutex);
		my_checked_key = *key;
	}
	if (take_from(b, key, &value))
		return value;

	/* may fail (maximum reached): the abort releases the LWLock */
	called = sequence_last_value(key->seqid, &last_value);
	top = nextval_internal(key->seqid, true);

	/*
	 * The values from last_value + 1 to top are ours only if nothing moved
	 * the sequence in between (a setval, a nextval by hand): then top is
	 * last_value + increment.  Otherwise, or if the sequence had been set and
	 * not called (its value set, and nothing said of those below), the block
	 * is top alone.
	 */
	if (called && !pg_add_s64_overflow(last_value, increment, &expect) &&
		top == expect)
	{
		low = last_value + 1;
		if (low < minvalue)
			low = minvalue;
	}
	else
		low = top;
	/* never back to values this entry handed out */
	if (b->top >= low && b->top < top)
		low = b->top + 1;

	SpinLockAcquire(&b->mutex);
	b->next = low;
	b->left = top - low + 1;
	b->top = top;
	b->refilled = pg_atomic_add_fetch_u64(&capaccess_shared->seq.refills, 1);
	value = b->next;
	if (--b->left > 0)
		b->next++;
	SpinLockRelease(&b->mutex);
	return value;
}

/*
 * The next value of sequence seqid, with nextval's checks, from this
 * database's block.  The caller has looked seqid up in capaccess's schema.
 */
int64
capaccess_seq_next(Oid seqid)
{
	SeqKey		key;
	int64		increment;
	int64		minvalue;
	int64		value;
	bool		waited = false;

	/* before any LWLock: see the locking notes above */
	LockRelationOid(seqid, RowExclusiveLock);

	if (capaccess_shared == NULL)
		return nextval_internal(seqid, true);
	/* what nextval checks; if the check fails, nextval says why */
	if (pg_class_aclcheck(seqid, GetUserId(), ACL_USAGE | ACL_UPDATE) != ACLCHECK_OK)
		return nextval_internal(seqid, true);
	PreventCommandIfReadOnly("nextval()");
	PreventCommandIfParallelMode("nextval()");
	if (!blocks_are_safe(seqid, &key, &increment, &minvalue))
		return nextval_outside_blocks(seqid);

	/*
	 * Like nextval, give the transaction an xid, so that its commit is
	 * WAL-logged after the block's nextval record and, with synchronous
	 * commit, waits for both to be flushed.
	 */
	(void) GetTopTransactionId();

	for (;;)
	{
		CapaccessSeqBlock *b;
		int			i;

		if (my_block >= 0 && checked(&key) &&
			take_from(&capaccess_shared->seq.blocks[my_block], &key, &value))
			return value;

		i = find_entry(&key);
		if (i < 0)
			i = assign_entry(&key);
		my_block = i;
		b = &capaccess_shared->seq.blocks[i];

		/*
		 * Once checked, a backend that finds the lock taken waits for it
		 * without taking it: the holder is refilling, and the new block is
		 * then there to draw from.
		 */
		if (checked(&key) && !waited)
		{
			if (!LWLockAcquireOrWait(b->lock, LW_EXCLUSIVE))
			{
				waited = true;	/* once: then queue for the lock */
				continue;
			}
		}
		else
			LWLockAcquire(b->lock, LW_EXCLUSIVE);
		if (!key_is(b, &key))
		{
			/* given to another database meanwhile */
			LWLockRelease(b->lock);
			continue;
		}
		value = check_and_refill(b, &key, increment, minvalue);
		LWLockRelease(b->lock);
		return value;
	}
}

/* capaccess.next_seq(), or InvalidOid under the 1.0 schema */
Oid
capaccess_seq_function(void)
{
	List	   *name = list_make1(makeString("capaccess"));

	name = lappend(name, makeString("next_seq"));
	return LookupFuncName(name, 0, NULL, true);
}

/* Which form of the statements that take a seq the schema allows. */
int
capaccess_seq_form(void)
{
	return OidIsValid(capaccess_seq_function()) ? 1 : 0;
}

/*
 * capaccess.next_seq() returns bigint: the next value of capaccess.seq, as
 * nextval('capaccess.seq') would give it, from the block.  The statements
 * capaccess runs through SPI call it, so that they take their values in the
 * same order as the direct write does.  Anyone may call it, with the
 * privileges nextval needs on capaccess.seq.
 */
Datum
capaccess_next_seq(PG_FUNCTION_ARGS)
{
	RangeVar   *rv = makeRangeVar("capaccess", "seq", -1);
	Oid			seqid = RangeVarGetRelid(rv, RowExclusiveLock, false);

	PG_RETURN_INT64(capaccess_seq_next(seqid));
}
