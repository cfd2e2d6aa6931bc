-- The direct write (src/write.c): where the table allows it, a call writes
-- its row without the executor; everywhere else it falls back to the
-- UPDATE.  Both must leave the same row, and the fallback must be taken
-- whenever something an administrator added needs the executor.
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS amcheck;

-- how many rows the last statements wrote directly
CREATE FUNCTION direct_writes() RETURNS bigint LANGUAGE sql
AS $$ SELECT value FROM capaccess_counters() WHERE counter = 'direct_writes' $$;
SELECT direct_writes() AS d0 \gset

-- 1. The same calls, written directly (9101) and through the UPDATE (9102),
-- leave the same values and hashes that capaccess_verify accepts.
SELECT customer_id FROM capaccess_register(9101, 100, 'basic');
SELECT customer_id FROM capaccess_register(9102, 100, 'basic');
SELECT updated, used, cap, access, clock FROM capaccess_update(9101, 30);
SELECT updated, used, cap, access, clock FROM capaccess_update(9101, 5, new_cap => 40, new_access => 'gold');
SELECT updated, reason, used, clock FROM capaccess_update(9101, 10);
SELECT updated, used, clock FROM capaccess_consume(9101, -20);
SELECT updated, used, clock FROM capaccess_reset(9101, 3);
SELECT direct_writes() - :d0 AS direct_writes_on;
SELECT direct_writes() AS d0 \gset
SET capaccess.direct_write = off;
SELECT updated, used, cap, access, clock FROM capaccess_update(9102, 30);
SELECT updated, used, cap, access, clock FROM capaccess_update(9102, 5, new_cap => 40, new_access => 'gold');
SELECT updated, reason, used, clock FROM capaccess_update(9102, 10);
SELECT updated, used, clock FROM capaccess_consume(9102, -20);
SELECT updated, used, clock FROM capaccess_reset(9102, 3);
RESET capaccess.direct_write;
SELECT direct_writes() - :d0 AS direct_writes_off;
SELECT a.used = b.used AND a.cap = b.cap AND a.access = b.access
       AND a.clock = b.clock AND a.seq < b.seq AS same_rows
  FROM capaccess.customer a, capaccess.customer b
 WHERE a.customer_id = 9101 AND b.customer_id = 9102;
SELECT * FROM capaccess_verify();

-- several calls for one customer in one statement see each other's rows
SELECT array_agg(u.clock ORDER BY g) AS clocks
  FROM generate_series(1, 3) g, LATERAL capaccess_update(9101, 1 + 0 * g) u;
-- and a rolled-back one leaves nothing
BEGIN;
SELECT updated, used, clock FROM capaccess_update(9101, 1);
ROLLBACK;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 9101;

-- only superusers may switch it
CREATE ROLE direct_write_app;
SET ROLE direct_write_app;
SET capaccess.direct_write = off;
RESET ROLE;
DROP ROLE direct_write_app;

-- 2. Constraints the administrator adds are enforced on the new row, with
-- PostgreSQL's own error, NOT VALID ones included.
ALTER TABLE capaccess.customer ADD CONSTRAINT used_below_50 CHECK (used < 50) NOT VALID;
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT updated, used, clock FROM capaccess_update(9101, 60, new_cap => 100);
SELECT used, cap, clock FROM capaccess.customer WHERE customer_id = 9101;
SELECT direct_writes() - :d0 AS direct_writes_with_check;
ALTER TABLE capaccess.customer DROP CONSTRAINT used_below_50;
-- a constraint through a function, which planning folds to a constant: a
-- new definition of the function applies from the next call on
CREATE FUNCTION public.used_limit() RETURNS bigint LANGUAGE sql IMMUTABLE
AS 'SELECT 1000::bigint';
ALTER TABLE capaccess.customer ADD CONSTRAINT used_below_limit
  CHECK (used < public.used_limit()) NOT VALID;
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_function_check;
CREATE OR REPLACE FUNCTION public.used_limit() RETURNS bigint LANGUAGE sql
IMMUTABLE AS 'SELECT 0::bigint';
SELECT updated, used, clock FROM capaccess_update(9101, 1);
ALTER TABLE capaccess.customer DROP CONSTRAINT used_below_limit;
DROP FUNCTION public.used_limit();

-- 3. Indexes: a plain one on a column every call changes makes no update
-- heap-only, so each one writes index entries; a unique one is checked.
-- amcheck then finds every row version in each index.
CREATE INDEX customer_used ON capaccess.customer (used);
CREATE UNIQUE INDEX customer_seq ON capaccess.customer (seq);
SELECT direct_writes() AS d0 \gset
SELECT count(*) FILTER (WHERE u.updated) AS accepted
  FROM generate_series(1, 40) g, LATERAL capaccess_update(9101 + g % 2, 1) u;
SELECT direct_writes() - :d0 AS direct_writes_indexed;
SELECT bt_index_check('capaccess.customer_used', true);
SELECT bt_index_check('capaccess.customer_seq', true);
SELECT bt_index_check('capaccess.customer_pkey', true);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT c.customer_id FROM capaccess.customer c
 WHERE c.used = (SELECT used FROM capaccess.customer WHERE customer_id = 9101)
   AND c.customer_id = 9101;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX capaccess.customer_used;
DROP INDEX capaccess.customer_seq;

-- 4. What needs the executor makes every call fall back, and works.
-- An expression index:
CREATE INDEX customer_lower_access ON capaccess.customer (lower(access));
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1, new_access => 'Silver');
SELECT direct_writes() - :d0 AS direct_writes_expression_index;
SET enable_seqscan = off;
SELECT customer_id FROM capaccess.customer
 WHERE lower(access) = 'silver' AND customer_id > 9100;
RESET enable_seqscan;
SELECT bt_index_check('capaccess.customer_lower_access', true);
DROP INDEX capaccess.customer_lower_access;
-- a partial index:
CREATE INDEX customer_over ON capaccess.customer (customer_id) WHERE used > 10;
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_partial_index;
DROP INDEX capaccess.customer_over;
-- a trigger, which sees the new row:
CREATE FUNCTION pg_temp.note_update() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RAISE NOTICE 'trigger saw used = %', NEW.used; RETURN NEW; END $$;
CREATE TRIGGER note_update BEFORE UPDATE ON capaccess.customer
  FOR EACH ROW EXECUTE FUNCTION pg_temp.note_update();
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_trigger;
DROP TRIGGER note_update ON capaccess.customer;
-- row level security:
ALTER TABLE capaccess.customer ENABLE ROW LEVEL SECURITY;
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_rls;
ALTER TABLE capaccess.customer DISABLE ROW LEVEL SECURITY;
-- a SERIALIZABLE transaction:
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_serializable;
COMMIT;
-- a partition, whose bound the UPDATE checks:
CREATE TABLE public.customer_parts (LIKE capaccess.customer) PARTITION BY RANGE (used);
ALTER TABLE public.customer_parts ATTACH PARTITION capaccess.customer
  FOR VALUES FROM (MINVALUE) TO (1000000);
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT updated, used, clock FROM capaccess_update(9101, 2000000, new_cap => 10000000);
SELECT direct_writes() - :d0 AS direct_writes_partition;
ALTER TABLE public.customer_parts DETACH PARTITION capaccess.customer;
DROP TABLE public.customer_parts;
-- and with all of it gone, the direct write again:
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_plain_again;

-- a child table, whose rows the UPDATE (of capaccess.customer, not ONLY)
-- writes too:
CREATE TABLE public.customer_archive () INHERITS (capaccess.customer);
INSERT INTO public.customer_archive (customer_id, cap, used, access, clock, state_hash)
VALUES (9103, 10, 0, 'old', 0, capaccess.state_hash(9103, 0, 0, 10, 'old'));
SELECT direct_writes() AS d0 \gset
SELECT updated, used, clock FROM capaccess_update(9103, 1);
SELECT updated, used, clock FROM capaccess_update(9101, 1);
SELECT direct_writes() - :d0 AS direct_writes_inherited;
DROP TABLE public.customer_archive;

-- 5. An overflow is the UPDATE's error, and writes nothing.
SELECT updated, used, clock FROM capaccess_update(9102, 9223372036854775807);
SELECT updated, used, clock FROM capaccess_reset(9102, 9223372036854775807);
SELECT updated, used, clock FROM capaccess_consume(9102, 1);
SELECT used, clock FROM capaccess.customer WHERE customer_id = 9102;
SELECT * FROM capaccess_verify();

DELETE FROM capaccess.customer WHERE customer_id IN (9101, 9102);
DROP FUNCTION direct_writes();
DROP EXTENSION amcheck;
