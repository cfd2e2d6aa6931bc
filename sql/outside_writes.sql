-- Writes that do not go through capaccess: UPDATE, DELETE, INSERT, COPY,
-- TRUNCATE with a reload, MERGE, and a write in the same transaction as a
-- capaccess call.  The writer is an administrator without superuser, who
-- was granted rights on the table; the consumer is an application role
-- with EXECUTE only.  Every customer first uses up its cap, so that its
-- cache would refuse; after each write commits, capaccess answers from the
-- committed row instead, and the clock goes on from it.
CREATE ROLE capaccess_dba LOGIN;
CREATE ROLE capaccess_app LOGIN;
GRANT USAGE ON SCHEMA capaccess TO capaccess_dba;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON capaccess.customer TO capaccess_dba;
GRANT EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text) TO capaccess_app;

SELECT c.customer_id FROM generate_series(301, 306) i, capaccess_register(i, 2) c;
SET ROLE capaccess_app;
SELECT i, u.updated, u.used, u.clock FROM generate_series(301, 306) i, capaccess_update(i, 2) u;
SELECT i, u.reason FROM generate_series(301, 306) i, capaccess_update(i, 1) u;
RESET ROLE;
SELECT value AS stale_before FROM capaccess_counters()
 WHERE counter = 'stale_caches' \gset

-- UPDATE: the administrator raises 301's cap
SET ROLE capaccess_dba;
UPDATE capaccess.customer SET cap = 10 WHERE customer_id = 301;
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(301, 1);

-- DELETE: 302 leaves, and is not_found; that drops what its slot cached
SET ROLE capaccess_dba;
DELETE FROM capaccess.customer WHERE customer_id = 302;
RESET ROLE;
SELECT slots_loaded AS loaded_before FROM capaccess_stats() \gset
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(302, 1);
RESET ROLE;
SELECT :loaded_before - slots_loaded AS caches_dropped FROM capaccess_stats();

-- INSERT: 302 comes back with a state of its own; the clock goes on from 7
SET ROLE capaccess_dba;
INSERT INTO capaccess.customer
	(customer_id, cap, used, access, clock, seq, state_hash, updated_at)
VALUES (302, 5, 0, 'restored', 7, NULL,
		capaccess.state_hash(302, 7, 0, 5, 'restored'), now());
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(302, 1);

-- COPY FROM: 303 replaced by a copied row
SET ROLE capaccess_dba;
DELETE FROM capaccess.customer WHERE customer_id = 303;
COPY capaccess.customer (customer_id, cap, used, access, clock, state_hash) FROM stdin;
303	50	0	copied	3	0
\.
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(303, 1);

-- TRUNCATE and a reload, as a data-only restore does: 304 comes back with
-- a larger cap
RESET ROLE;
CREATE TEMP TABLE saved AS SELECT * FROM capaccess.customer;
GRANT SELECT ON saved TO capaccess_dba;
SET ROLE capaccess_dba;
BEGIN;
TRUNCATE capaccess.customer;
INSERT INTO capaccess.customer SELECT * FROM saved;
UPDATE capaccess.customer SET cap = 20 WHERE customer_id = 304;
COMMIT;
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(304, 1);

-- MERGE: 305's cap raised
SET ROLE capaccess_dba;
MERGE INTO capaccess.customer AS c
USING (VALUES (305::bigint, 9::bigint)) AS v(customer_id, cap)
   ON c.customer_id = v.customer_id
 WHEN MATCHED THEN UPDATE SET cap = v.cap;
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(305, 1);

-- a write in a transaction that also called capaccess: the state it staged
-- (cap 2) is published at commit, but names a row version the same
-- transaction replaced (cap 30)
RESET ROLE;
BEGIN;
SELECT updated, used, cap, clock FROM capaccess_update(306, 0);
UPDATE capaccess.customer SET cap = 30 WHERE customer_id = 306;
COMMIT;
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(306, 1);

-- a transaction that truncates the table twice empties it in place the
-- second time, and can put a row back at the very place, with its own xid,
-- that one of its calls cached: 310's cache (used 10 of 10) names (0,2),
-- where the reload put used 5 of 1000.  The values differ, so the cache
-- does not answer.
RESET ROLE;
BEGIN;
CREATE TEMP TABLE kept AS SELECT * FROM capaccess.customer;
TRUNCATE capaccess.customer;
SELECT customer_id FROM capaccess_register(310, 10);
SELECT updated, used, cap FROM capaccess_update(310, 10);
SELECT ctid FROM capaccess.customer WHERE customer_id = 310;
TRUNCATE capaccess.customer;
INSERT INTO capaccess.customer VALUES
	(311, 1, 0, 'filler', 0, NULL, capaccess.state_hash(311, 0, 0, 1, 'filler'), now()),
	(310, 1000, 5, 'none', 1, NULL, capaccess.state_hash(310, 1, 5, 1000, 'none'), now());
SELECT ctid, customer_id, used, cap FROM capaccess.customer ORDER BY ctid;
INSERT INTO capaccess.customer SELECT * FROM kept;
COMMIT;
DROP TABLE kept;
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(310, 1);

-- a hand edit that lowers a cap: the refusal reports the committed row
SET ROLE capaccess_dba;
UPDATE capaccess.customer SET cap = 1 WHERE customer_id = 301;
SET ROLE capaccess_app;
SELECT updated, reason, used, cap, clock FROM capaccess_update(301, 1);
RESET ROLE;

-- each of the seven caches that would have refused was found stale
SELECT value - :stale_before AS stale_caches_seen FROM capaccess_counters()
 WHERE counter = 'stale_caches';

-- the administrator's edits left hashes to recompute; a call does it
SELECT customer_id, problem FROM capaccess_verify() ORDER BY 1, 2;
SELECT updated, used, cap, clock FROM capaccess_update(301, 0);
SELECT * FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();

DROP TABLE saved;
REVOKE ALL ON capaccess.customer FROM capaccess_dba;
REVOKE USAGE ON SCHEMA capaccess FROM capaccess_dba;
REVOKE EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text) FROM capaccess_app;
DROP ROLE capaccess_dba;
DROP ROLE capaccess_app;
