/* capaccess--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION capaccess UPDATE TO '1.1'" to load this file. \quit

-- Writes that bypass the functions are supported from 1.1 on: the table is
-- the truth, and shared memory only answers from what the table still holds.
COMMENT ON TABLE capaccess.customer IS
'per-customer cap, used units and access level; the capaccess functions write it, and any other committed write is honoured';

-- What an administrator would otherwise do with raw DML.  Each takes the
-- customer's gate, so it is ordered with every other update.
CREATE FUNCTION @extschema@.capaccess_unregister(customer_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'capaccess_unregister'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.capaccess_reset(customer_id bigint,
											used bigint DEFAULT 0,
											OUT updated boolean,
											OUT reason text,
											OUT used bigint,
											OUT cap bigint,
											OUT access text,
											OUT clock bigint,
											OUT seq bigint,
											OUT state_hash bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'capaccess_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.capaccess_reset_all(used bigint DEFAULT 0)
RETURNS bigint
AS 'MODULE_PATHNAME', 'capaccess_reset_all'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.capaccess_unregister(bigint) IS
'delete a customer under its gate; false if there was none';
COMMENT ON FUNCTION @extschema@.capaccess_reset(bigint, bigint) IS
'set a customer''s used units (a new billing period) under its gate';
COMMENT ON FUNCTION @extschema@.capaccess_reset_all(bigint) IS
'set every customer''s used units in one transaction; returns how many';

-- capaccess_stats() gains deadlock_checks and stale_caches.  A function's
-- result columns cannot be changed in place, so it is created anew, and
-- EXECUTE on it must be granted again to the roles that had it.
DROP FUNCTION @extschema@.capaccess_stats();
CREATE FUNCTION @extschema@.capaccess_stats(OUT accepted bigint,
											OUT rejected bigint,
											OUT fast_rejected bigint,
											OUT waits bigint,
											OUT deadlocks bigint,
											OUT lock_timeouts bigint,
											OUT evictions bigint,
											OUT handoffs bigint,
											OUT handoff_time_ms double precision,
											OUT holds bigint,
											OUT hold_time_ms double precision,
											OUT early_releases bigint,
											OUT deadlock_checks bigint,
											OUT stale_caches bigint,
											OUT slots integer,
											OUT slots_loaded integer,
											OUT slots_held integer)
RETURNS record
AS 'MODULE_PATHNAME', 'capaccess_stats'
LANGUAGE C VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION @extschema@.capaccess_unregister(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_reset(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_reset_all(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_stats() FROM PUBLIC;
