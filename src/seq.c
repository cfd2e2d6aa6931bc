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
 * in shared memory, one entry per database, and only the backend that
 * finds the block used up calls nextval.
 *
 * The blocks.  From 1.1 on the sequence's INCREMENT is 1024.  When nextval
 * returns w, the block is (w - increment, w]: the values from just above the
 * previous value of the sequence up to w itself.  Whatever nextval returned
 * before w is at most w - increment, and whatever it returns later is above
 * w, so a block never holds a value that nextval gives anyone else.  That
 * gives the guarantees a plain sequence gives, and no more:
 *
 *	- unique: blocks are disjoint, and each value is handed out once under
 *	  the entry's spinlock;
 *	- increasing in the order values are handed out: refills are serialised
 *	  by one LWLock, and each new block lies above the previous one;
 *	- above every value handed out before a crash or a restart: the sequence
 *	  itself is at w or beyond (nextval's WAL record precedes the commit of
 *	  any row that holds a value of the block), and the next block is above
 *	  its next value;
 *	- never above the sequence's last_value, so a dump of the table and the
 *	  sequence restores consistently.
 *
 * A restart loses the rest of the block: a gap of at most 1023 values, as a
 * sequence's CACHE would leave.  A value someone takes with nextval by hand
 * lies above the current block.  setval and ALTER SEQUENCE RESTART take
 * effect when the block runs out; set below values already handed out,
 * they make seq repeat them, as they would for any sequence.  Where blocks would not be safe (the 1.0
 * schema's INCREMENT 1, a negative increment, a CACHE other than 1, which
 * lets backends return values out of order), every draw is a nextval.
 *
 * Locking.  LockRelationOid(seq, RowExclusiveLock), then the LWLock
 * capaccess_shared->seq_lock (refills only), then an entry's spinlock.  The
 * relation lock is taken before the LWLock so that the nextval made under
 * the LWLock never waits for a heavyweight lock (an ALTER SEQUENCE in an
 * open transaction would otherwise hold up every refill in the server, and
 * deadlock with its own transaction's next draw).  An entry's key (database,
 * sequence) and block change only under both the LWLock and its spinlock;
 * a draw from the block takes only the spinlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_sequence.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_next_seq);

/* The entry this backend drew from last; checked under its spinlock. */
static int	my_block = -1;

void
capaccess_seq_init(CapaccessSeqShared *s, LWLock *lock)
{
	s->lock = lock;
	s->refills = 0;
	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
	{
		CapaccessSeqBlock *b = &s->blocks[i];

		SpinLockInit(&b->mutex);
		b->dbid = InvalidOid;
		b->seqid = InvalidOid;
		b->next = 0;
		b->left = 0;
		b->refilled = 0;
	}
}

/* Take a value from block b if it is this database's for seqid. */
static bool
take_from(CapaccessSeqBlock *b, Oid seqid, int64 *value)
{
	bool		taken = false;

	SpinLockAcquire(&b->mutex);
	if (b->dbid == MyDatabaseId && b->seqid == seqid && b->left > 0)
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
 * Drop what is left of this database's block for seqid, if it has one.  The
 * key changes only under the LWLock, so it can be compared without the
 * spinlock; the spinlock makes sure it was still this block that lost it.
 */
static void
forget_block(Oid seqid)
{
	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
	{
		CapaccessSeqBlock *b = &capaccess_shared->seq.blocks[i];

		if (b->dbid != MyDatabaseId || b->seqid != seqid)
			continue;
		SpinLockAcquire(&b->mutex);
		if (b->dbid == MyDatabaseId && b->seqid == seqid)
			b->left = 0;
		SpinLockRelease(&b->mutex);
	}
}

/*
 * The sequence's increment and minimum, if blocks are safe for it;
 * otherwise false.
 */
static bool
block_bounds(Oid seqid, int64 *increment, int64 *minvalue)
{
	HeapTuple	tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid));
	Form_pg_sequence seq;
	bool		ok;

	if (!HeapTupleIsValid(tup))
		return false;			/* not a sequence: nextval says so */
	seq = (Form_pg_sequence) GETSTRUCT(tup);
	*increment = seq->seqincrement;
	*minvalue = seq->seqmin;
	ok = seq->seqincrement > 1 && seq->seqcache == 1;
	ReleaseSysCache(tup);
	return ok;
}

/*
 * A new block for seqid, from one nextval; returns its first value.  Called
 * with the LWLock held.
 */
static int64
refill(Oid seqid, int64 increment, int64 minvalue)
{
	CapaccessSeqShared *s = &capaccess_shared->seq;
	int			found = -1;
	int			victim = -1;
	CapaccessSeqBlock *b;
	int64		top;
	int64		low;
	int64		value;

	for (int i = 0; i < CAPACCESS_SEQ_BLOCKS; i++)
	{
		b = &s->blocks[i];
		if (b->dbid == MyDatabaseId && b->seqid == seqid)
		{
			found = i;
			break;
		}
		if (victim < 0 || b->dbid == InvalidOid ||
			(s->blocks[victim].dbid != InvalidOid &&
			 b->refilled < s->blocks[victim].refilled))
			victim = i;
	}
	if (found >= 0)
	{
		/* someone may have refilled it while we waited */
		my_block = found;
		if (take_from(&s->blocks[found], seqid, &value))
			return value;
	}
	else
		found = victim;
	b = &s->blocks[found];

	/* may fail (permission, maximum reached): the abort frees the LWLock */
	top = nextval_internal(seqid, true);

	if (pg_sub_s64_overflow(top, increment - 1, &low) || low < minvalue)
		low = minvalue;

	SpinLockAcquire(&b->mutex);
	b->dbid = MyDatabaseId;
	b->seqid = seqid;
	b->next = low;
	b->left = top - low + 1;
	b->refilled = ++s->refills;
	/* take the first value */
	value = b->next;
	if (--b->left > 0)
		b->next++;
	SpinLockRelease(&b->mutex);
	my_block = found;
	return value;
}

/*
 * The next value of sequence seqid, with nextval's checks, from this
 * database's block.  The caller has looked seqid up in capaccess's schema.
 */
int64
capaccess_seq_next(Oid seqid)
{
	int64		value;
	int64		increment;
	int64		minvalue;

	/* before any LWLock: see the locking notes above */
	LockRelationOid(seqid, RowExclusiveLock);

	if (capaccess_shared == NULL)
		return nextval_internal(seqid, true);
	if (!block_bounds(seqid, &increment, &minvalue))
	{
		/* what is left of a block would be below this nextval: drop it */
		forget_block(seqid);
		return nextval_internal(seqid, true);
	}

	/* what nextval checks */
	if (pg_class_aclcheck(seqid, GetUserId(), ACL_USAGE | ACL_UPDATE) != ACLCHECK_OK)
		return nextval_internal(seqid, true);	/* which fails, and says why */
	PreventCommandIfReadOnly("nextval()");
	PreventCommandIfParallelMode("nextval()");

	/*
	 * Like nextval, make the commit wait for WAL: the block's nextval record
	 * is before this transaction's commit, so a committed value is always
	 * below the sequence after a crash.
	 */
	(void) GetTopTransactionId();

	if (my_block >= 0 &&
		take_from(&capaccess_shared->seq.blocks[my_block], seqid, &value))
		return value;

	LWLockAcquire(capaccess_shared->seq.lock, LW_EXCLUSIVE);
	value = refill(seqid, increment, minvalue);
	LWLockRelease(capaccess_shared->seq.lock);
	return value;
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
