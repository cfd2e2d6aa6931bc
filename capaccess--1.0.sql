/* capaccess--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION capaccess" to load this file. \quit

-- The table, its sequence and internal helpers live in schema capaccess;
-- the API lives in the extension's schema (public unless chosen otherwise).
CREATE SCHEMA capaccess;

-- One server-wide counter: every accepted update takes the next value.
CREATE SEQUENCE capaccess.seq AS bigint NO CYCLE;

CREATE FUNCTION capaccess.state_hash(customer_id bigint, clock bigint,
									 used bigint, cap bigint, access text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'capaccess_state_hash_sql'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION capaccess.state_hash(bigint, bigint, bigint, bigint, text) IS
'FNV-1a (32 bits) of the canonical encoding of a customer state; a fingerprint, not a cryptographic hash';

CREATE TABLE capaccess.customer (
	customer_id bigint PRIMARY KEY,
	cap bigint NOT NULL CHECK (cap >= 0),
	used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
	access text NOT NULL,
	clock bigint NOT NULL DEFAULT 0 CHECK (clock >= 0),
	seq bigint,
	state_hash bigint NOT NULL CHECK (state_hash BETWEEN 0 AND 4294967295),
	updated_at timestamptz
);

COMMENT ON TABLE capaccess.customer IS
'per-customer cap, used units and access level; written only by the capaccess functions';

-- Only the extension's functions write the table: nobody else gets rights.
REVOKE ALL ON TABLE capaccess.customer FROM PUBLIC;
REVOKE ALL ON SEQUENCE capaccess.seq FROM PUBLIC;

-- The table is user data: pg_dump must dump its rows and the sequence.
SELECT pg_catalog.pg_extension_config_dump('capaccess.customer', '');
SELECT pg_catalog.pg_extension_config_dump('capaccess.seq', '');

CREATE FUNCTION @extschema@.capaccess_register(customer_id bigint, cap bigint,
											   access text DEFAULT 'none')
RETURNS capaccess.customer
AS 'MODULE_PATHNAME', 'capaccess_register'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.capaccess_update(customer_id bigint,
											 consume bigint DEFAULT 1,
											 new_cap bigint DEFAULT NULL,
											 new_access text DEFAULT NULL,
											 OUT updated boolean,
											 OUT reason text,
											 OUT used bigint,
											 OUT cap bigint,
											 OUT access text,
											 OUT clock bigint,
											 OUT seq bigint,
											 OUT state_hash bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'capaccess_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.capaccess_update(query jsonb, data jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'capaccess_update_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.capaccess_fnv1a(data bytea)
RETURNS bigint
AS 'MODULE_PATHNAME', 'capaccess_fnv1a_sql'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

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
											OUT slots integer,
											OUT slots_loaded integer,
											OUT slots_held integer)
RETURNS record
AS 'MODULE_PATHNAME', 'capaccess_stats'
LANGUAGE C VOLATILE PARALLEL SAFE;

-- One row per problem found; empty when the table and the shared state agree.
CREATE FUNCTION @extschema@.capaccess_verify(OUT customer_id bigint,
											 OUT problem text,
											 OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'capaccess_verify'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Writing and watching are granted explicitly, as with any protected data.
REVOKE ALL ON FUNCTION @extschema@.capaccess_register(bigint, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_update(bigint, bigint, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_update(jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.capaccess_verify() FROM PUBLIC;
