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

-- Every counter by name.  capaccess_stats() keeps its 1.0 columns, so that
-- this update keeps its grants and whatever depends on it; counters added
-- from 1.1 on (deadlock_checks, stale_caches) are listed here.
CREATE FUNCTION @extschema@.capaccess_counters(OUT counter text,
											   OUT value bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'capaccess_counters'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.capaccess_counters() IS
'every capaccess counter since the server started, by name; times in microseconds';

REVOKE ALL ON FUNCTION @extschema@.capaccess_unregister(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_reset(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_reset_all(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_counters() FROM PUBLIC;
