/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The few PostgreSQL APIs that differ between the major versions
 *	  capaccess builds against (15 and later), each behind one name.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAPACCESS_COMPAT_H
#define CAPACCESS_COMPAT_H

#include "storage/proc.h"
#include "utils/rel.h"
#include "utils/relcache.h"

/* A PGPROC's index in ProcGlobal->allProcs; 17 dropped PGPROC.pgprocno. */
#if PG_VERSION_NUM >= 170000
#define CAPACCESS_PROCNO(proc)	GetNumberFromPGProc(proc)
#define CAPACCESS_MY_PROCNO		MyProcNumber
#define CAPACCESS_PROC_LXID(proc) ((proc)->vxid.lxid)
#else
#define CAPACCESS_PROCNO(proc)	((proc)->pgprocno)
#define CAPACCESS_MY_PROCNO		(MyProc->pgprocno)
#define CAPACCESS_PROC_LXID(proc) ((proc)->lxid)
#endif

/* The relation's storage: 16 renamed RelFileNode to RelFileLocator. */
#if PG_VERSION_NUM >= 160000
#define CAPACCESS_REL_LOCATOR(rel)	((rel)->rd_locator)
#define CAPACCESS_REL_FILENUMBER(rel)	((rel)->rd_locator.relNumber)
#define CAPACCESS_REL_FILE_IS_NEW(rel) \
	((rel)->rd_createSubid != InvalidSubTransactionId || \
	 (rel)->rd_newRelfilelocatorSubid != InvalidSubTransactionId || \
	 (rel)->rd_firstRelfilelocatorSubid != InvalidSubTransactionId)
#else
#define CAPACCESS_REL_LOCATOR(rel)	((rel)->rd_node)
#define CAPACCESS_REL_FILENUMBER(rel)	((rel)->rd_node.relNode)
#define CAPACCESS_REL_FILE_IS_NEW(rel) \
	((rel)->rd_createSubid != InvalidSubTransactionId || \
	 (rel)->rd_newRelfilenodeSubid != InvalidSubTransactionId || \
	 (rel)->rd_firstRelfilenodeSubid != InvalidSubTransactionId)
#endif

/* 18 asks whether a deferrable primary key will do; it will not here. */
#if PG_VERSION_NUM >= 180000
#define CAPACCESS_PRIMARY_KEY(rel)	RelationGetPrimaryKeyIndex((rel), false)
#else
#define CAPACCESS_PRIMARY_KEY(rel)	RelationGetPrimaryKeyIndex(rel)
#endif

/* 17 renamed ShmemVariableCache to TransamVariables. */
#if PG_VERSION_NUM >= 170000
#define CAPACCESS_TRANSAM_VARIABLES	TransamVariables
#else
#define CAPACCESS_TRANSAM_VARIABLES	ShmemVariableCache
#endif

/* 17 renamed the lookup of a backend's status by its position. */
#if PG_VERSION_NUM >= 170000
#define CAPACCESS_LOCAL_BEENTRY(i)	pgstat_get_local_beentry_by_index(i)
#else
#define CAPACCESS_LOCAL_BEENTRY(i)	pgstat_fetch_stat_local_beentry(i)
#endif

/*
 * 17 lets an extension name its own wait events: a gate waiter then shows
 * in pg_stat_activity as wait_event_type Extension, wait_event
 * CapaccessGate.  Before 17 it shows as wait_event Extension.
 */
#if PG_VERSION_NUM >= 170000
#include "utils/wait_event.h"
#define CAPACCESS_WAIT_EVENT_NEW(name)	WaitEventExtensionNew(name)
#else
#define CAPACCESS_WAIT_EVENT_NEW(name)	((void) (name), PG_WAIT_EXTENSION)
#endif

#endif							/* CAPACCESS_COMPAT_H */
