-- scaleout/proxy.sql: capaccess's API in a proxy database, each call run
-- by PL/Proxy on the partition that owns the customer.
--
-- Load it into the proxy database after CREATE EXTENSION plproxy and the
-- cluster's definition (CREATE SERVER capaccess FOREIGN DATA WRAPPER
-- plproxy ..., one option p0, p1, ... per partition; see the README's
-- "Scaling out").  Every partition runs capaccess (1.1) in schema public.
--
-- Routing.  A customer belongs to partition
--
--     hashint8(customer_id) & (N - 1)
--
-- with N, the number of partitions, a power of two (PL/Proxy's rule).
-- The functions below route with capaccess.key_hash(), which is
-- hashint8(customer_id), and 0 for a NULL customer_id so that such a call
-- gets the partition's own answer to it.  The jsonb form routes by the
-- customer_id inside query, read exactly as the C function reads it.
--
-- A call through the proxy is one autocommit transaction on its partition:
-- it has committed there when it returns, whatever the proxy's transaction
-- does next (README, "Scaling out").
--
-- Functions that answer for the whole cluster (capaccess_stats, _counters,
-- _gates, _verify, _stats_reset) run on every partition in parallel and
-- return a row per partition with its number, or one per partition's row.
-- They take an optional array of partition numbers, the partitions to ask
-- (default: all).  capaccess_reset_all() sums the partitions' counts.
--
-- Privileges: as in an installed extension, PUBLIC has none; grant each
-- role what it needs here AND on the partitions.  PL/Proxy connects to the
-- partitions as the calling role (the cluster's user mapping), so the
-- partitions check their own grants too.  Run this script as a superuser,
-- in one transaction (psql -1): it creates an event trigger that keeps
-- roles from choosing their own user mappings (below).

SET client_min_messages = warning;

CREATE SCHEMA capaccess;
REVOKE ALL ON SCHEMA capaccess FROM PUBLIC;
GRANT USAGE ON SCHEMA capaccess TO PUBLIC;

-- The row capaccess_register() returns: capaccess.customer's columns.
CREATE TYPE capaccess.customer AS (
	customer_id bigint,
	cap bigint,
	used bigint,
	access text,
	clock bigint,
	seq bigint,
	state_hash bigint,
	updated_at timestamptz
);

-- ---------------------------------------------------------------------
-- Routing helpers (the proxy's own; nothing runs remotely)
-- ---------------------------------------------------------------------

CREATE FUNCTION capaccess.key_hash(customer_id bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN COALESCE(pg_catalog.hashint8(customer_id), 0);

COMMENT ON FUNCTION capaccess.key_hash(bigint) IS
'the hash PL/Proxy routes a customer by: hashint8(customer_id), 0 for NULL';

-- The customer_id of a capaccess_update() query as the C function reads it
-- (a whole JSON number, or a string of decimal digits with an optional
-- minus sign, in bigint's range); NULL when it would refuse the query, so
-- that the call goes to partition 0 and gets the same error there.
CREATE FUNCTION capaccess.query_customer(query jsonb)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v jsonb;
	n numeric;
BEGIN
	IF jsonb_typeof(query) IS DISTINCT FROM 'object' THEN
		RETURN NULL;
	END IF;
	v := query -> 'customer_id';
	IF jsonb_typeof(v) = 'string' THEN
		IF (v #>> '{}') !~ '^-?[0-9]+$' THEN
			RETURN NULL;
		END IF;
		-- leading zeros are allowed; more than 19 digits are out of range
		IF length(ltrim(ltrim(v #>> '{}', '-'), '0')) > 19 THEN
			RETURN NULL;
		END IF;
		n := (v #>> '{}')::numeric;
	ELSIF jsonb_typeof(v) = 'number' THEN
		n := (v #>> '{}')::numeric;
	ELSE
		RETURN NULL;
	END IF;
	IF n <> trunc(n) OR n < -9223372036854775808 OR n > 9223372036854775807 THEN
		RETURN NULL;
	END IF;
	RETURN n::bigint;
END
$$;

COMMENT ON FUNCTION capaccess.query_customer(jsonb) IS
'the customer_id of a capaccess_update() query, NULL if the query names none the C function accepts';

CREATE FUNCTION capaccess.query_hash(query jsonb)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN capaccess.key_hash(capaccess.query_customer(query));

-- The number of partitions of cluster capaccess: its options p0, p1, ...
-- (or partition_0, ..., which PL/Proxy accepts too)
CREATE FUNCTION capaccess.partition_count()
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT pg_catalog.count(*)::integer
	  FROM pg_catalog.pg_foreign_server s,
		   LATERAL pg_catalog.unnest(s.srvoptions) o
	 WHERE s.srvname = 'capaccess'
	   AND o OPERATOR(pg_catalog.~) '^(p|partition_)[0-9]+=';
END;

-- The partition that owns a customer, as PL/Proxy picks it.
CREATE FUNCTION capaccess.partition_of(customer_id bigint)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
RETURN capaccess.key_hash(customer_id) OPERATOR(pg_catalog.&)
	(capaccess.partition_count() OPERATOR(pg_catalog.-) 1);

COMMENT ON FUNCTION capaccess.partition_of(bigint) IS
'the partition (0-based) that owns a customer: hashint8(customer_id) & (partitions - 1)';

-- A partition number as PL/Proxy's hash for it, or an error if the
-- cluster has no such partition: the mask would run the call on another
-- partition and label its rows with the number asked for.
CREATE FUNCTION capaccess.partition_hash(partition integer)
RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := capaccess.partition_count();
BEGIN
	IF partition IS NULL OR partition < 0 OR partition >= n THEN
		RAISE EXCEPTION 'capaccess has no partition %', coalesce(partition::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The cluster has %s partitions, numbered from 0 to %s.', n, n - 1);
	END IF;
	RETURN partition;
END
$$;

CREATE FUNCTION capaccess.all_partitions()
RETURNS integer[]
LANGUAGE sql STABLE PARALLEL SAFE
RETURN ARRAY(SELECT pg_catalog.generate_series(0, capaccess.partition_count() OPERATOR(pg_catalog.-) 1));

GRANT EXECUTE ON FUNCTION capaccess.key_hash(bigint), capaccess.query_customer(jsonb),
	capaccess.query_hash(jsonb), capaccess.partition_count(),
	capaccess.partition_of(bigint), capaccess.partition_hash(integer),
	capaccess.all_partitions() TO PUBLIC;

-- ---------------------------------------------------------------------
-- One customer: run on the partition that owns it
-- ---------------------------------------------------------------------

CREATE FUNCTION public.capaccess_register(customer_id bigint, cap bigint,
										  access text DEFAULT 'none')
RETURNS capaccess.customer
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.key_hash(customer_id);
$$;

CREATE FUNCTION public.capaccess_update(customer_id bigint,
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
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.key_hash(customer_id);
$$;

CREATE FUNCTION public.capaccess_update(query jsonb, data jsonb)
RETURNS jsonb
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.query_hash(query);
$$;

CREATE FUNCTION public.capaccess_consume(customer_id bigint,
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
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.key_hash(customer_id);
$$;

CREATE FUNCTION public.capaccess_peek(customer_id bigint,
									  OUT used bigint,
									  OUT cap bigint,
									  OUT remaining bigint,
									  OUT access text,
									  OUT clock bigint,
									  OUT seq bigint,
									  OUT state_hash bigint)
RETURNS SETOF record
LANGUAGE plproxy STRICT ROWS 1 AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.key_hash(customer_id);
$$;

CREATE FUNCTION public.capaccess_reset(customer_id bigint,
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
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.key_hash(customer_id);
$$;

CREATE FUNCTION public.capaccess_unregister(customer_id bigint)
RETURNS boolean
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.key_hash(customer_id);
$$;

-- ---------------------------------------------------------------------
-- Pure functions: any partition computes the same
-- ---------------------------------------------------------------------

CREATE FUNCTION public.capaccess_fnv1a(data bytea)
RETURNS bigint
LANGUAGE plproxy STRICT AS $$
	CLUSTER 'capaccess';
	RUN ON ANY;
$$;

CREATE FUNCTION capaccess.state_hash(customer_id bigint, clock bigint,
									 used bigint, cap bigint, access text)
RETURNS bigint
LANGUAGE plproxy STRICT AS $$
	CLUSTER 'capaccess';
	RUN ON ANY;
$$;

-- ---------------------------------------------------------------------
-- The whole cluster: every partition named in "partitions", in parallel.
-- SPLIT hands each partition the elements of the array that map to it,
-- that is its own number, which its rows carry back; a number the cluster
-- does not have is an error (capaccess.partition_hash).
-- ---------------------------------------------------------------------

CREATE FUNCTION public.capaccess_stats(partitions integer[] DEFAULT capaccess.all_partitions(),
									   OUT partition integer,
									   OUT accepted bigint,
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
RETURNS SETOF record
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	SPLIT partitions;
	RUN ON capaccess.partition_hash(partitions);
	SELECT (partitions)[1] AS partition, s.* FROM public.capaccess_stats() s;
$$;

CREATE FUNCTION public.capaccess_counters(partitions integer[] DEFAULT capaccess.all_partitions(),
										  OUT partition integer,
										  OUT counter text,
										  OUT value bigint)
RETURNS SETOF record
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	SPLIT partitions;
	RUN ON capaccess.partition_hash(partitions);
	SELECT (partitions)[1] AS partition, c.* FROM public.capaccess_counters() c;
$$;

CREATE FUNCTION public.capaccess_gates(partitions integer[] DEFAULT capaccess.all_partitions(),
									   OUT partition integer,
									   OUT database name,
									   OUT customer_id bigint,
									   OUT holder_pid integer,
									   OUT held_since timestamptz,
									   OUT waiters integer,
									   OUT oldest_waiter_pid integer,
									   OUT oldest_wait_since timestamptz)
RETURNS SETOF record
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	SPLIT partitions;
	RUN ON capaccess.partition_hash(partitions);
	SELECT (partitions)[1] AS partition, g.* FROM public.capaccess_gates() g;
$$;

CREATE FUNCTION public.capaccess_verify(partitions integer[] DEFAULT capaccess.all_partitions(),
										OUT partition integer,
										OUT customer_id bigint,
										OUT problem text,
										OUT detail text)
RETURNS SETOF record
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	SPLIT partitions;
	RUN ON capaccess.partition_hash(partitions);
	SELECT (partitions)[1] AS partition, v.* FROM public.capaccess_verify() v;
$$;

CREATE FUNCTION public.capaccess_stats_reset(partitions integer[] DEFAULT capaccess.all_partitions(),
											 OUT partition integer)
RETURNS SETOF integer
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	SPLIT partitions;
	RUN ON capaccess.partition_hash(partitions);
	SELECT (partitions)[1] AS partition FROM public.capaccess_stats_reset();
$$;

-- A process id names a backend of one server: say which.
CREATE FUNCTION public.capaccess_blocking_pids(partition integer, pid integer)
RETURNS integer[]
LANGUAGE plproxy STRICT AS $$
	CLUSTER 'capaccess';
	RUN ON capaccess.partition_hash(partition);
	SELECT public.capaccess_blocking_pids(pid);
$$;

-- Each partition's count; one transaction per partition, so a partition
-- that fails leaves the others' resets committed (README, "Scaling out").
CREATE FUNCTION capaccess.reset_all_each(used bigint)
RETURNS SETOF bigint
LANGUAGE plproxy AS $$
	CLUSTER 'capaccess';
	RUN ON ALL;
	SELECT public.capaccess_reset_all(used);
$$;

CREATE FUNCTION public.capaccess_reset_all(used bigint DEFAULT 0)
RETURNS bigint
LANGUAGE sql
BEGIN ATOMIC
	SELECT pg_catalog.sum(n)::bigint FROM capaccess.reset_all_each(used) n;
END;

-- ---------------------------------------------------------------------
-- User mappings: a superuser's only
--
-- PL/Proxy needs USAGE on the foreign server from each role that calls,
-- and USAGE lets a role create or change the user mapping for itself.
-- With one of its own a role could connect to the partitions as another
-- role (a superuser, where the partitions trust the proxy), or add
-- connection options through the mapping's values.  So in this database
-- only a superuser may create, alter or drop user mappings.
-- ---------------------------------------------------------------------

CREATE FUNCTION capaccess.refuse_user_mapping_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
		RAISE EXCEPTION 'permission denied to change user mappings in the capaccess proxy database'
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'PL/Proxy connects to the partitions with the calling role''s user mapping; a role that chose its own could connect as another role.',
				  HINT = 'A superuser creates the user mappings.';
	END IF;
END
$$;

CREATE EVENT TRIGGER capaccess_user_mappings ON ddl_command_start
	WHEN TAG IN ('CREATE USER MAPPING', 'ALTER USER MAPPING', 'DROP USER MAPPING')
	EXECUTE FUNCTION capaccess.refuse_user_mapping_ddl();

-- ---------------------------------------------------------------------
-- Privileges: none for PUBLIC, as in the extension
-- ---------------------------------------------------------------------

REVOKE ALL ON FUNCTION public.capaccess_register(bigint, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_update(bigint, bigint, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_update(jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_consume(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_peek(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_reset(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_unregister(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_reset_all(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION capaccess.reset_all_each(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_stats(integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_counters(integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_gates(integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_verify(integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_stats_reset(integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.capaccess_blocking_pids(integer, integer) FROM PUBLIC;

-- pg_monitor watches, as the extension grants it on each partition
GRANT EXECUTE ON FUNCTION public.capaccess_counters(integer[]) TO pg_monitor;
GRANT EXECUTE ON FUNCTION public.capaccess_gates(integer[]) TO pg_monitor;
GRANT EXECUTE ON FUNCTION public.capaccess_blocking_pids(integer, integer) TO pg_monitor;
