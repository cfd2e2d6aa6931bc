/*-------------------------------------------------------------------------
 *
 * capaccess.c
 *	  Module load, configuration and the shared-memory lifecycle.
 *
 * capaccess must be loaded with shared_preload_libraries.  _PG_init then
 * defines the capaccess.* settings and installs two hooks:
 *
 *	- shmem_request_hook asks for one segment sized from
 *	  capaccess.max_customers and max_connections, and for two named
 *	  LWLock tranches: "capaccess" (one lock, to confirm deadlocks, see
 *	  deadlock.c) and "capaccess_seq" (the blocks of seq values, seq.c);
 *	- shmem_startup_hook lays the segment out.  It runs in the postmaster at
 *	  start and again after every crash restart, when the segment is new: all
 *	  gates are then free and all caches empty, which is right because every
 *	  transaction that held a gate was aborted by the crash.  Caches are
 *	  refilled from capaccess.customer as customers are used again.
 *
 * When the library was not preloaded, _PG_init does nothing and every SQL
 * function fails in capaccess_check_loaded().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "capaccess.h"

PG_MODULE_MAGIC;

#define CAPACCESS_SHMEM_NAME	"capaccess"
#define CAPACCESS_TRANCHE_NAME	"capaccess"
#define CAPACCESS_SEQ_TRANCHE_NAME	"capaccess_seq"

int			capaccess_max_customers = 10000;
bool		capaccess_early_release = true;
int			capaccess_deadlock_walk_delay = 0;
int			capaccess_max_gates_per_transaction = 1000;
int			capaccess_idle_holder_timeout = 10 * 1000;
int			capaccess_database_slot_share = 50;

CapaccessShared *capaccess_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

static void capaccess_shmem_request(void);
static void capaccess_shmem_startup(void);

/* Number of PGPROC entries, so that any pgprocno indexes our proc array. */
static int
capaccess_nprocs(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
capaccess_memsize(void)
{
	Size		size;

	size = MAXALIGN(sizeof(CapaccessShared));
	size = add_size(size, capaccess_slots_size(capaccess_max_customers));
	size = add_size(size, mul_size(capaccess_nprocs(),
								   MAXALIGN(sizeof(CapaccessProc))));
	return size;
}

void
_PG_init(void)
{
	/*
	 * Loaded any other way, the module only lets CREATE EXTENSION and pg_dump
	 * work; its functions report that it is not preloaded.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("capaccess.max_customers",
							"Number of customer slots kept in shared memory.",
							"Slots of idle customers are reused, so this bounds "
							"how many customers can be in use at the same time.",
							&capaccess_max_customers,
							10000,
							16,
							INT_MAX / 2,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("capaccess.early_release",
							 "Hands a customer's gate to the next caller before the commit is flushed.",
							 "The transaction still waits for the flush before it reports "
							 "success, so no acknowledged update can be lost; other sessions "
							 "may read the new state for the duration of that flush.",
							 &capaccess_early_release,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("capaccess.direct_write",
							 "Writes a customer's row without the executor where the table allows it.",
							 "Off, every call writes through an UPDATE statement; the results "
							 "are the same, only slower.",
							 &capaccess_direct_write,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("capaccess.deadlock_walk_delay",
							"Developer option: pause a deadlock check before it reads each backend beyond the second.",
							"Only for tests, which use it to make a walk read the wait-for graph while it changes.",
							&capaccess_deadlock_walk_delay,
							0,
							0,
							60 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("capaccess.max_gates_per_transaction",
							"Most customer gates one transaction may hold at once.",
							"Each held gate keeps its customer's other callers waiting "
							"until the transaction ends, and keeps a slot pinned.",
							&capaccess_max_gates_per_transaction,
							1000,
							1,
							INT_MAX / 2,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("capaccess.idle_holder_timeout",
							"Ends a session that is idle in transaction while it holds a gate others wait for.",
							"Zero turns this off.  A holder nobody waits for is never ended.",
							&capaccess_idle_holder_timeout,
							10 * 1000,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("capaccess.database_slot_share",
							"Percentage of the slots that the customers of one database may have in use at once.",
							"A call that finds its database's share used up goes without "
							"a slot, relying on the row lock alone.",
							&capaccess_database_slot_share,
							50,
							1,
							100,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("capaccess");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = capaccess_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = capaccess_shmem_startup;

	capaccess_gate_register_callbacks();
	capaccess_idle_install_hook();
}

static void
capaccess_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(capaccess_memsize());
	RequestNamedLWLockTranche(CAPACCESS_TRANCHE_NAME, 1);
	RequestNamedLWLockTranche(CAPACCESS_SEQ_TRANCHE_NAME, CAPACCESS_SEQ_LWLOCKS);
}

static void
capaccess_shmem_startup(void)
{
	bool		found;
	char	   *base;
	int			nprocs = capaccess_nprocs();

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	/* The segment may be a new one after a crash restart. */
	capaccess_shared = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	base = ShmemInitStruct(CAPACCESS_SHMEM_NAME, capaccess_memsize(), &found);
	capaccess_shared = (CapaccessShared *) base;

	if (!found)
	{
		CapaccessCounters *c = &capaccess_shared->counters;

		capaccess_shared->deadlock_lock =
			&(GetNamedLWLockTranche(CAPACCESS_TRANCHE_NAME))->lock;
		capaccess_seq_init(&capaccess_shared->seq,
						   GetNamedLWLockTranche(CAPACCESS_SEQ_TRANCHE_NAME));
		capaccess_shared->nslots = capaccess_max_customers;
		capaccess_shared->nprocs = nprocs;
		capaccess_shared->slots = (CapaccessSlot *)
			(base + MAXALIGN(sizeof(CapaccessShared)));
		capaccess_shared->procs = (CapaccessProc *)
			((char *) capaccess_shared->slots +
			 capaccess_slots_size(capaccess_max_customers));

		pg_atomic_init_u64(&c->accepted, 0);
		pg_atomic_init_u64(&c->rejected, 0);
		pg_atomic_init_u64(&c->fast_rejected, 0);
		pg_atomic_init_u64(&c->waits, 0);
		pg_atomic_init_u64(&c->deadlocks, 0);
		pg_atomic_init_u64(&c->lock_timeouts, 0);
		pg_atomic_init_u64(&c->evictions, 0);
		pg_atomic_init_u64(&c->handoffs, 0);
		pg_atomic_init_u64(&c->handoff_us, 0);
		pg_atomic_init_u64(&c->holds, 0);
		pg_atomic_init_u64(&c->hold_us, 0);
		pg_atomic_init_u64(&c->early_releases, 0);
		pg_atomic_init_u64(&c->deadlock_checks, 0);
		pg_atomic_init_u64(&c->stale_caches, 0);
		pg_atomic_init_u64(&c->slotless, 0);
		pg_atomic_init_u64(&capaccess_shared->early_release_lsn, 0);
		pg_atomic_init_u64(&c->gate_limit_errors, 0);
		pg_atomic_init_u64(&c->idle_holders_ended, 0);
		for (int i = 0; i <= CAPACCESS_DB_SHARES; i++)
		{
			pg_atomic_init_u32(&capaccess_shared->dbshares[i].dbid, 0);
			pg_atomic_init_u32(&capaccess_shared->dbshares[i].pinned, 0);
		}

		capaccess_slots_init(capaccess_shared->slots, capaccess_max_customers);

		for (int i = 0; i < nprocs; i++)
		{
			CapaccessProc *p = &capaccess_shared->procs[i];

			p->next = -1;
			p->prev = -1;
			p->waiting_for = 0;
			p->wait_since = 0;
			p->granted_at = 0;
			p->idle_ended_pid = 0;
			p->idle_ended_customer = 0;
			pg_atomic_init_u32(&p->waiting_slot, 0);
			pg_atomic_init_u32(&p->granted, 0);
			pg_atomic_init_u32(&p->wait_seq, 0);
			pg_atomic_init_u32(&p->victim_of, 0);
			p->deadlock_detail[0] = '\0';
		}
	}

	LWLockRelease(AddinShmemInitLock);
}

/*
 * Every SQL entry point starts here: without the preload there is no shared
 * state to work with.
 */
void
capaccess_check_loaded(void)
{
	if (capaccess_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("capaccess must be loaded via \"shared_preload_libraries\""),
				 errhint("Add capaccess to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

/* An access text must fit the table's CHECK access_max_length. */
void
capaccess_check_access_length(size_t len)
{
	if (len > CAPACCESS_ACCESS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("access text is too long"),
				 errdetail("It is %zu bytes long; at most %d bytes are allowed.",
						   len, CAPACCESS_ACCESS_MAX)));
}
