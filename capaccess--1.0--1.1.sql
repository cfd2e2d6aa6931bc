/* capaccess--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION capaccess UPDATE TO '1.1'" to load this file. \quit

-- seq values in blocks (src/seq.c).  Each nextval of capaccess.seq now
-- reserves the 1024 values up to the one it returns; the functions hand
-- them out from shared memory, so that concurrent calls no longer queue on
-- the sequence's page.  seq stays unique, increasing and above every value
-- handed out before a crash; a restart leaves a gap of at most 1023.
-- First: the calls lock the sequence before the table, and so must this
-- script, or a call that arrives while it waits for the table deadlocks
-- with it.
ALTER SEQUENCE capaccess.seq INCREMENT BY 1024;

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

-- The access text has a maximum length (the C functions check the same,
-- CAPACCESS_ACCESS_MAX).  NOT VALID: rows written before the update are
-- not checked, so the update never fails on them; VALIDATE CONSTRAINT
-- checks them once they are fixed.
ALTER TABLE capaccess.customer
	ADD CONSTRAINT access_max_length
	CHECK (pg_catalog.octet_length(access) OPERATOR(pg_catalog.<=) 1024) NOT VALID;

-- A row written before may be longer.  Any write of such a row now fails
-- until its access text is shortened: say so, rather than let the first
-- application call find out.
DO $$
DECLARE
	n bigint;
BEGIN
	SELECT pg_catalog.count(*) INTO n FROM capaccess.customer
	 WHERE pg_catalog.octet_length(access) OPERATOR(pg_catalog.>) 1024;
	IF n OPERATOR(pg_catalog.>) 0 THEN
		RAISE WARNING '% capaccess customers have an access text longer than 1024 bytes', n
			USING DETAIL = 'Every update of such a customer fails with 23514 (access_max_length) until its access text is shortened.',
				  HINT = 'Shorten it with capaccess_update(customer_id, 0, new_access => ...), then run ALTER TABLE capaccess.customer VALIDATE CONSTRAINT access_max_length.';
	END IF;
END
$$;

-- One function per right (see the README's "Security").  An application
-- role is granted capaccess_consume: it changes nothing but used.
CREATE FUNCTION @extschema@.capaccess_consume(customer_id bigint,
											  consume bigint DEFAULT 1,
											  OUT updated boolean,
											  OUT reason text,
											  OUT used bigint,
											  OUT cap bigint,
											  OUT access text,
											  OUT clock bigint,
											  OUT seq bigint,
											  OUT state_hash bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'capaccess_consume'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.capaccess_consume(bigint, bigint) IS
'consume units of a customer (a negative amount is a refund) under its gate; changes nothing but used';

-- Reading without consuming: the committed state, without taking the gate.
CREATE FUNCTION @extschema@.capaccess_peek(customer_id bigint,
										   OUT used bigint,
										   OUT cap bigint,
										   OUT remaining bigint,
										   OUT access text,
										   OUT clock bigint,
										   OUT seq bigint,
										   OUT state_hash bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'capaccess_peek'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 1;

COMMENT ON FUNCTION @extschema@.capaccess_peek(bigint) IS
'a customer''s committed state, read without taking or waiting for its gate; no row if there is no such customer';

-- Seeing the gates, which pg_locks does not show.
CREATE FUNCTION @extschema@.capaccess_gates(OUT database name,
											OUT customer_id bigint,
											OUT holder_pid integer,
											OUT held_since timestamptz,
											OUT waiters integer,
											OUT oldest_waiter_pid integer,
											OUT oldest_wait_since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'capaccess_gates'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.capaccess_gates() IS
'one row per capaccess gate held or waited for, in every database of the server';

CREATE FUNCTION @extschema@.capaccess_blocking_pids(pid integer)
RETURNS integer[]
AS 'MODULE_PATHNAME', 'capaccess_blocking_pids'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.capaccess_blocking_pids(integer) IS
'the process holding the capaccess gate that pid waits for, as pg_blocking_pids does for locks';

CREATE FUNCTION @extschema@.capaccess_stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'capaccess_stats_reset'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.capaccess_stats_reset() IS
'set every capaccess counter to zero, for the whole server';

REVOKE ALL ON FUNCTION @extschema@.capaccess_consume(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_peek(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_gates() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_blocking_pids(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_stats_reset() FROM PUBLIC;

-- pg_monitor may watch: the counters and who holds or waits for which gate,
-- what pg_locks and pg_stat_activity already show it for other waits.  Not
-- capaccess_verify (it reads every customer's row) nor
-- capaccess_stats_reset (it changes what others measure).  Nor 1.0's
-- capaccess_stats(), whose counters capaccess_counters() gives by name: a
-- GRANT on an object of 1.0 here would record the grants an administrator
-- made on it as the extension's initial privileges (pg_init_privs), and
-- pg_dump, which dumps only changes from those, would leave them out.
-- This script changes no privilege of an object 1.0 created.
GRANT EXECUTE ON FUNCTION @extschema@.capaccess_counters() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.capaccess_gates() TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@.capaccess_blocking_pids(integer) TO pg_monitor;

CREATE FUNCTION capaccess.next_seq()
RETURNS bigint
AS 'MODULE_PATHNAME', 'capaccess_next_seq'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION capaccess.next_seq() IS
'the next value of capaccess.seq, from the block held in shared memory; needs the privileges nextval needs';
