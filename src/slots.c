/*-------------------------------------------------------------------------
 *
 * slots.c
 *	  Finding, claiming and pinning a customer's slot, and the slot cache.
 *
 * Slot identity protocol
 * ----------------------
 * A customer is identified by its id and its scope: the database and the
 * OID of the capaccess.customer table it lives in, so that two databases,
 * or a dropped and re-created extension, never share a gate or a cache.  A
 * customer lives in at most one slot, within CAPACCESS_PROBE_WINDOW slots of
 * its home slot (a hash of its identity).  A slot's ctl word packs
 *
 *		generation (32 bits) | pins (24 bits) | state (8 bits)
 *
 * with state EMPTY (never used), CLAIMING (being given to a customer) or
 * ACTIVE (key and scope hold a customer).  Every change of ctl is one
 * compare-and-swap, and every change of identity bumps the generation, so a
 * CAS prepared from an older reading fails instead of pinning a slot that
 * meanwhile went to somebody else.
 *
 * Lookup (lock-free, never waits): walk the window from home; stop at the
 * first EMPTY slot (slots never become EMPTY again, so the customer cannot
 * lie beyond one); at an ACTIVE slot whose key and scope match, add a pin
 * with a CAS on the ctl word read before them.
 *
 * Insertion: a pinned slot (pins > 0) is in use: it has a gate holder, a
 * waiter, or a lookup in progress, and it is never taken from its customer.
 * To insert customer C, a backend takes C's home slot's claim spinlock (two
 * backends inserting customers with the same home at the same instant are
 * the only ones that ever meet there), looks C up again, and otherwise
 * turns the first EMPTY or unpinned slot of the window into C's with one
 * CAS (ACTIVE/pins 0 -> CLAIMING/pins 1, generation + 1).  Because every
 * insertion of C happens under the same spinlock after a fresh lookup, and
 * a pinned slot is never reclaimed, C never has two slots at once.  If the
 * whole window is pinned, C gets no slot: its calls rely on the row lock of
 * their UPDATE alone (update.c), correct but without the gate's order.
 *
 * Each database's share.  Slots are shared by every database of the
 * server, and a pinned slot cannot be taken back, so a database could
 * otherwise pin them all and leave the others none.  The slots a database
 * has pinned (pins > 0) are counted in its CapaccessDbShare entry: a pin
 * that takes a slot from 0 pins to 1 first reserves a place there, and
 * gets no slot if the database already has capaccess.database_slot_share
 * percent of them pinned; the unpin that brings a slot back to 0 gives the
 * place back.  Pinning a slot that is pinned already costs nothing there,
 * so a thousand waiters on one customer count once.  The first
 * CAPACCESS_DB_SHARES databases to use capaccess get an entry each; any
 * beyond share the last entry.
 *
 * Pins.  A backend pins a slot at most once for each gate it holds or waits
 * for, plus at most CAPACCESS_MAX_LOOSE_PINS "loose" pins of calls in
 * progress; a static assertion checks that MAX_BACKENDS such backends
 * cannot overflow the 24 pin bits.  Loose pins are remembered with the
 * subtransaction that took them and dropped when it aborts, so an error
 * anywhere in a call leaves no pin behind.  A gate takes over its caller's
 * loose pin (capaccess_slot_keep_pin) and drops it when released.
 *
 * The cache
 * ---------
 * Only the gate holder writes a slot's cache (gate.c), so it is a seqlock
 * with a single writer: version is odd while it writes.  Readers hold a pin
 * (so the slot cannot change customer) and retry on a torn read: a few
 * times spinning, then sleeping a millisecond and checking for interrupts.
 * When a slot is reclaimed for another customer, its cache is emptied.
 * What the cache holds may be stale (table.c says when it may be used).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/s_lock.h"

#include "capaccess.h"

#define SLOT_EMPTY		0
#define SLOT_CLAIMING	1
#define SLOT_ACTIVE		2

#define CTL_STATE(c)	((uint32) ((c) & 0xFF))
#define CTL_PINS(c)		((uint32) (((c) >> 8) & 0xFFFFFF))
#define CTL_GEN(c)		((uint32) ((c) >> 32))
#define CTL_MAKE(gen, pins, state) \
	(((uint64) (gen) << 32) | ((uint64) (pins) << 8) | (uint64) (state))
#define CTL_PINS_MAX	0xFFFFFF

/*
 * Each backend pins a slot at most once for the gate it holds or waits for
 * there, and at most CAPACCESS_MAX_LOOSE_PINS times in calls in progress.
 */
StaticAssertDecl((uint64) MAX_BACKENDS * (CAPACCESS_MAX_LOOSE_PINS + 1) <= CTL_PINS_MAX,
				 "capaccess slot pin count could overflow into the generation");

/* This backend's loose pins, with the subtransaction that took each. */
typedef struct LoosePin
{
	int			slot;
	SubTransactionId subid;
} LoosePin;

static LoosePin loose_pins[CAPACCESS_MAX_LOOSE_PINS];
static int	nloose_pins = 0;

/* This backend's database's entry of the shares, once looked up. */
static CapaccessDbShare *my_share = NULL;

/* Sleep on a torn seqlock read after this many spins. */
#define SEQLOCK_SPINS	100

Size
capaccess_slots_size(int nslots)
{
	return mul_size(nslots, sizeof(CapaccessSlot));
}

void
capaccess_slots_init(CapaccessSlot *slots, int nslots)
{
	for (int i = 0; i < nslots; i++)
	{
		CapaccessSlot *s = &slots[i];

		pg_atomic_init_u64(&s->ctl, CTL_MAKE(0, 0, SLOT_EMPTY));
		pg_atomic_init_u64(&s->key, 0);
		pg_atomic_init_u64(&s->scope, 0);
		SpinLockInit(&s->claim);
		pg_atomic_init_u32(&s->holder, 0);
		pg_atomic_init_u64(&s->releases, 0);
		SpinLockInit(&s->qlock);
		s->qhead = -1;
		s->qtail = -1;
		s->nwaiters = 0;
		s->held_since = 0;
		pg_atomic_init_u32(&s->version, 0);
		s->loaded = false;
		memset(&s->state, 0, sizeof(CapaccessState));
	}
}

/* Home slot of a customer: a 64-bit mix of its identity, reduced to the table. */
static int
slot_home(uint64 scope, int64 customer_id, int nslots)
{
	uint64		x = (uint64) customer_id ^ (scope * UINT64CONST(0x9e3779b97f4a7c15));

	x ^= x >> 33;
	x *= UINT64CONST(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64CONST(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return (int) (x % (uint64) nslots);
}

static int
slot_window(int nslots)
{
	return Min(nslots, CAPACCESS_PROBE_WINDOW);
}

/* The entry of the shares that counts this backend's database's pins. */
static CapaccessDbShare *
share_mine(void)
{
	CapaccessDbShare *shares = capaccess_shared->dbshares;

	if (my_share != NULL)
		return my_share;
	Assert(OidIsValid(MyDatabaseId));
	for (int i = 0; i < CAPACCESS_DB_SHARES && my_share == NULL; i++)
	{
		uint32		dbid = pg_atomic_read_u32(&shares[i].dbid);

		if (dbid == 0)
		{
			/* a free entry: take it, unless somebody just did */
			if (pg_atomic_compare_exchange_u32(&shares[i].dbid, &dbid,
											   (uint32) MyDatabaseId))
				my_share = &shares[i];
		}
		if (my_share == NULL && dbid == (uint32) MyDatabaseId)
			my_share = &shares[i];
	}
	if (my_share == NULL)
		my_share = &shares[CAPACCESS_DB_SHARES];
	return my_share;
}

/* Most slots one database may have pinned at once. */
static uint32
share_limit(void)
{
	int64		limit = (int64) capaccess_shared->nslots *
	capaccess_database_slot_share / 100;

	return (uint32) Max(limit, 1);
}

/* Reserve a place for one more pinned slot; false if the share is full. */
static bool
share_reserve(void)
{
	CapaccessDbShare *share = share_mine();

	if (pg_atomic_fetch_add_u32(&share->pinned, 1) >= share_limit())
	{
		pg_atomic_fetch_sub_u32(&share->pinned, 1);
		return false;
	}
	return true;
}

static void
share_release(void)
{
	pg_atomic_fetch_sub_u32(&share_mine()->pinned, 1);
}

/*
 * Look for the customer in its window and pin its slot.  Returns the slot
 * index, or -1 if the customer has no slot.  *share_full is set if it has
 * one but the database's share did not allow pinning it.
 */
static int
slot_lookup_pin(uint64 scope, int64 customer_id, bool *share_full)
{
	CapaccessSlot *slots = capaccess_shared->slots;
	int			nslots = capaccess_shared->nslots;
	int			home = slot_home(scope, customer_id, nslots);
	int			window = slot_window(nslots);

	for (int i = 0; i < window; i++)
	{
		int			idx = (home + i) % nslots;
		CapaccessSlot *s = &slots[idx];
		uint64		ctl = pg_atomic_read_u64(&s->ctl);

		for (;;)
		{
			bool		reserved = false;

			if (CTL_STATE(ctl) != SLOT_ACTIVE)
				break;
			pg_read_barrier();
			if ((int64) pg_atomic_read_u64(&s->key) != customer_id ||
				pg_atomic_read_u64(&s->scope) != scope)
				break;
			Assert(CTL_PINS(ctl) < CTL_PINS_MAX);
			/* the first pin takes a place in the database's share */
			if (CTL_PINS(ctl) == 0)
			{
				if (!share_reserve())
				{
					*share_full = true;
					return -1;
				}
				reserved = true;
			}
			/* CAS fails if the slot changed hands since ctl was read */
			if (pg_atomic_compare_exchange_u64(&s->ctl, &ctl,
											   CTL_MAKE(CTL_GEN(ctl),
														CTL_PINS(ctl) + 1,
														SLOT_ACTIVE)))
				return idx;
			/* ctl now holds the current value; look again */
			if (reserved)
				share_release();
		}
		if (CTL_STATE(ctl) == SLOT_EMPTY)
			break;
	}
	return -1;
}

/*
 * Give the customer a slot, pinned.  Called with the home slot's claim
 * spinlock held, after a lookup found nothing, and with a place reserved in
 * the database's share.  Returns -1 if every slot of the window is in use.
 */
static int
slot_claim_locked(uint64 scope, int64 customer_id)
{
	CapaccessSlot *slots = capaccess_shared->slots;
	int			nslots = capaccess_shared->nslots;
	int			home = slot_home(scope, customer_id, nslots);
	int			window = slot_window(nslots);

	for (int i = 0; i < window; i++)
	{
		int			idx = (home + i) % nslots;
		CapaccessSlot *s = &slots[idx];
		uint64		ctl = pg_atomic_read_u64(&s->ctl);
		bool		was_active;

		if (CTL_PINS(ctl) != 0 || CTL_STATE(ctl) == SLOT_CLAIMING)
			continue;
		was_active = (CTL_STATE(ctl) == SLOT_ACTIVE);
		if (!pg_atomic_compare_exchange_u64(&s->ctl, &ctl,
											CTL_MAKE(CTL_GEN(ctl) + 1, 1,
													 SLOT_CLAIMING)))
			continue;			/* somebody pinned or took it: try the next */

		/* The slot is ours alone: nobody can pin a CLAIMING slot. */
		capaccess_slot_forget_cache(idx);
		pg_atomic_write_u64(&s->key, (uint64) customer_id);
		pg_atomic_write_u64(&s->scope, scope);
		/* exchange is a full barrier: key is visible before ACTIVE */
		pg_atomic_exchange_u64(&s->ctl,
							   CTL_MAKE(CTL_GEN(ctl) + 1, 1, SLOT_ACTIVE));
		if (was_active)
			pg_atomic_fetch_add_u64(&capaccess_shared->counters.evictions, 1);
		return idx;
	}
	return -1;
}

static void
remember_loose_pin(int slot)
{
	Assert(nloose_pins < CAPACCESS_MAX_LOOSE_PINS);
	loose_pins[nloose_pins].slot = slot;
	loose_pins[nloose_pins].subid = GetCurrentSubTransactionId();
	nloose_pins++;
}

/* Forget the latest loose pin of slot; false if there is none. */
static bool
forget_loose_pin(int slot)
{
	for (int i = nloose_pins - 1; i >= 0; i--)
	{
		if (loose_pins[i].slot == slot)
		{
			loose_pins[i] = loose_pins[--nloose_pins];
			return true;
		}
	}
	return false;
}

static void
unpin(int slot)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	uint64		ctl = pg_atomic_read_u64(&s->ctl);

	for (;;)
	{
		Assert(CTL_PINS(ctl) > 0);
		if (pg_atomic_compare_exchange_u64(&s->ctl, &ctl,
										   CTL_MAKE(CTL_GEN(ctl),
													CTL_PINS(ctl) - 1,
													CTL_STATE(ctl))))
			break;
	}
	/* the last pin gives the database's place back */
	if (CTL_PINS(ctl) == 1)
		share_release();
}

/*
 * Find the customer's slot and pin it, as a loose pin of this call.  With
 * create, a slot is claimed when the customer has none.  Returns -1 when
 * the customer has no slot (and create is false), when no slot of its
 * window is free, or when the database has its whole share pinned: the
 * caller then goes without one.
 */
int
capaccess_slot_pin(uint64 scope, int64 customer_id, bool create)
{
	CapaccessSlot *home_slot;
	int			idx;
	bool		share_full = false;

	if (nloose_pins >= CAPACCESS_MAX_LOOSE_PINS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("capaccess calls are nested too deeply"),
				 errdetail("A call of a capaccess function may run at most %d others inside it, through triggers.",
						   CAPACCESS_MAX_LOOSE_PINS - 1)));

	idx = slot_lookup_pin(scope, customer_id, &share_full);
	if (idx < 0 && create && !share_full)
	{
		home_slot = &capaccess_shared->slots[slot_home(scope, customer_id,
													   capaccess_shared->nslots)];
		/* held for a few dozen instructions, with no error inside */
		SpinLockAcquire(&home_slot->claim);
		idx = slot_lookup_pin(scope, customer_id, &share_full);
		if (idx < 0 && !share_full)
		{
			if (share_reserve())
			{
				idx = slot_claim_locked(scope, customer_id);
				if (idx < 0)
					share_release();
			}
		}
		SpinLockRelease(&home_slot->claim);
	}
	if (idx >= 0)
		remember_loose_pin(idx);
	return idx;
}

/* Drop a loose pin this call took. */
void
capaccess_slot_unpin(int slot)
{
	bool		found PG_USED_FOR_ASSERTS_ONLY = forget_loose_pin(slot);

	Assert(found);
	unpin(slot);
}

/*
 * The caller (a gate) takes over a loose pin: it is no longer dropped at
 * abort, and the caller drops it with capaccess_slot_drop_kept_pin.
 */
void
capaccess_slot_keep_pin(int slot)
{
	bool		found PG_USED_FOR_ASSERTS_ONLY = forget_loose_pin(slot);

	Assert(found);
}

void
capaccess_slot_drop_kept_pin(int slot)
{
	unpin(slot);
}

/*
 * Drop the loose pins taken in subtransaction subid or in its children (all
 * of them for InvalidSubTransactionId): they belonged to calls that an
 * error ended.  A committed subtransaction's pins pass to its parent.
 * Returns how many were dropped.  Cannot fail.
 */
int
capaccess_slot_release_loose_pins(SubTransactionId subid)
{
	int			dropped = 0;

	for (int i = nloose_pins - 1; i >= 0; i--)
	{
		if (loose_pins[i].subid >= subid)
		{
			unpin(loose_pins[i].slot);
			loose_pins[i] = loose_pins[--nloose_pins];
			dropped++;
		}
	}
	return dropped;
}

void
capaccess_slot_reparent_loose_pins(SubTransactionId subid,
								   SubTransactionId parent)
{
	for (int i = 0; i < nloose_pins; i++)
		if (loose_pins[i].subid >= subid)
			loose_pins[i].subid = parent;
}

/* Back off from a torn seqlock read: spin a little, then sleep. */
static void
seqlock_backoff(int *tries)
{
	if (++(*tries) < SEQLOCK_SPINS)
		SPIN_DELAY();
	else
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
	}
}

/* Copy a pinned slot's cache into out; false if it holds nothing. */
static bool
read_cache_raw(int slot, CapaccessState *out)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	int			tries = 0;

	for (;;)
	{
		uint32		before = pg_atomic_read_u32(&s->version);
		bool		loaded;

		/* an odd version: the holder is publishing, for a few instructions */
		if ((before & 1) == 0)
		{
			pg_read_barrier();
			loaded = s->loaded;
			if (loaded)
				memcpy(out, &s->state, sizeof(CapaccessState));
			pg_read_barrier();
			if (pg_atomic_read_u32(&s->version) == before)
				return loaded;
		}
		seqlock_backoff(&tries);
	}
}

/*
 * Read the cache of a pinned slot.  Returns false when it holds nothing, or
 * nothing usable (an access text too long to cache).
 */
bool
capaccess_slot_read_cache(int slot, CapaccessState *out)
{
	return read_cache_raw(slot, out) && out->access_len >= 0;
}

/*
 * Where the last committed version of the slot's row was, if the cache
 * knows.  A hint only: whoever uses it must check the row found there.
 */
bool
capaccess_slot_cached_tid(int slot, ItemPointer tid)
{
	CapaccessState st;

	if (!read_cache_raw(slot, &st) || !ItemPointerIsValid(&st.tid))
		return false;
	ItemPointerCopy(&st.tid, tid);
	return true;
}

/* Publish a committed state.  Caller holds the slot's gate.  Cannot fail. */
void
capaccess_slot_write_cache(int slot, const CapaccessState *state)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	uint32		v = pg_atomic_read_u32(&s->version);

	pg_atomic_write_u32(&s->version, v + 1);
	pg_write_barrier();
	memcpy(&s->state, state, sizeof(CapaccessState));
	s->loaded = true;
	pg_write_barrier();
	pg_atomic_write_u32(&s->version, v + 2);
}

/* Drop the cache, so that it is read again from the table.  Cannot fail. */
void
capaccess_slot_forget_cache(int slot)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	uint32		v = pg_atomic_read_u32(&s->version);

	pg_atomic_write_u32(&s->version, v + 1);
	pg_write_barrier();
	s->loaded = false;
	pg_write_barrier();
	pg_atomic_write_u32(&s->version, v + 2);
}

/*
 * A reading of a slot for capaccess_verify(), taking no lock and no pin:
 * whether it belongs to a customer, which one, its gate holder, and its
 * cache with the cache's version.  Returns false if the slot changed hands
 * while it was read.
 */
bool
capaccess_slot_inspect(int slot, CapaccessSlotView *view)
{
	CapaccessSlot *s = &capaccess_shared->slots[slot];
	uint64		ctl = pg_atomic_read_u64(&s->ctl);
	int			tries = 0;

	view->active = (CTL_STATE(ctl) == SLOT_ACTIVE);
	pg_read_barrier();
	view->customer_id = (int64) pg_atomic_read_u64(&s->key);
	view->scope = pg_atomic_read_u64(&s->scope);
	view->holder = pg_atomic_read_u32(&s->holder);
	for (;;)
	{
		uint32		before = pg_atomic_read_u32(&s->version);

		if ((before & 1) == 0)
		{
			pg_read_barrier();
			view->loaded = s->loaded;
			memcpy(&view->state, &s->state, sizeof(CapaccessState));
			pg_read_barrier();
			if (pg_atomic_read_u32(&s->version) == before)
			{
				view->version = before;
				break;
			}
		}
		seqlock_backoff(&tries);
	}
	pg_read_barrier();
	return CTL_GEN(pg_atomic_read_u64(&s->ctl)) == CTL_GEN(ctl);
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * The customers of scope whose gate somebody holds or waits for: a reading
 * without locks or pins, already out of date when it returns, fit only to
 * decide an order of work.  Returns a palloc'd array, sorted, without
 * duplicates.
 */
int64	   *
capaccess_slot_busy_customers(uint64 scope, int *n)
{
	CapaccessSlot *slots = capaccess_shared->slots;
	int			nslots = capaccess_shared->nslots;
	int64	   *ids = palloc(Max(nslots, 1) * sizeof(int64));
	int			count = 0;

	for (int i = 0; i < nslots; i++)
	{
		CapaccessSlot *s = &slots[i];
		uint64		ctl = pg_atomic_read_u64(&s->ctl);

		if (CTL_STATE(ctl) != SLOT_ACTIVE)
			continue;
		pg_read_barrier();
		if (pg_atomic_read_u64(&s->scope) != scope)
			continue;
		if (pg_atomic_read_u32(&s->holder) == 0 &&
			((volatile CapaccessSlot *) s)->qhead < 0)
			continue;
		ids[count++] = (int64) pg_atomic_read_u64(&s->key);
	}
	if (count > 1)
	{
		int			kept = 1;

		qsort(ids, count, sizeof(int64), cmp_int64);
		for (int i = 1; i < count; i++)
			if (ids[i] != ids[kept - 1])
				ids[kept++] = ids[i];
		count = kept;
	}
	*n = count;
	return ids;
}
