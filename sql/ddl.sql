-- DDL an administrator may run on capaccess.customer.  Changes that keep the
-- eight columns and the primary key keep every function working; changes
-- that break them are an error that names what is wrong, before any gate
-- is taken, never a crash or a wrong value.
SELECT customer_id FROM capaccess_register(401, 100);

-- ADD COLUMN with a default: register returns it
ALTER TABLE capaccess.customer ADD COLUMN tag int DEFAULT 7;
SELECT customer_id, used, tag FROM capaccess_register(402, 100);
SELECT updated, used, clock FROM capaccess_update(402, 1);
SELECT updated, used, clock FROM capaccess_reset(402, 0);

-- RENAME of that column
ALTER TABLE capaccess.customer RENAME COLUMN tag TO label;
SELECT customer_id, label FROM capaccess_register(403, 100);
SELECT updated, used, clock FROM capaccess_update(403, 1);

-- ADD COLUMN without a default, then DROP both
ALTER TABLE capaccess.customer ADD COLUMN remark text;
SELECT customer_id, label, remark FROM capaccess_register(404, 100);
ALTER TABLE capaccess.customer DROP COLUMN label, DROP COLUMN remark;
SELECT customer_id, used FROM capaccess_register(405, 100);
SELECT updated, used, clock FROM capaccess_update(405, 1);
SELECT capaccess_unregister(405);

-- a new index, on a column capaccess updates
CREATE INDEX customer_used ON capaccess.customer (used);
SELECT updated, used, clock FROM capaccess_update(404, 1);
SELECT updated, used, clock FROM capaccess_update(404, 1);
DROP INDEX capaccess.customer_used;

-- a CHECK constraint of their own: kept, and a call that would break it
-- fails with 23514 and leaves no gate held
ALTER TABLE capaccess.customer ADD CONSTRAINT used_below_50 CHECK (used < 50) NOT VALID;
SELECT updated, used FROM capaccess_update(404, 10);
\set VERBOSITY terse
SELECT * FROM capaccess_update(404, 60);
\set VERBOSITY default
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT slots_held FROM capaccess_stats();
ALTER TABLE capaccess.customer DROP CONSTRAINT used_below_50;

-- a trigger of their own: an audit trail of every change of used
CREATE TABLE customer_audit (customer_id bigint, old_used bigint, new_used bigint);
CREATE FUNCTION customer_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.customer_audit VALUES (NEW.customer_id, OLD.used, NEW.used);
	RETURN NEW;
END
$$;
CREATE TRIGGER audit AFTER UPDATE ON capaccess.customer
	FOR EACH ROW EXECUTE FUNCTION customer_audit();
SELECT updated, used FROM capaccess_update(404, 1);
SELECT updated, used FROM capaccess_reset(404, 0);
SELECT * FROM customer_audit;
DROP TRIGGER audit ON capaccess.customer;

-- a BEFORE trigger that skips the update: an error, not a wrong refusal
CREATE FUNCTION customer_skip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RETURN NULL;
END
$$;
CREATE TRIGGER skip BEFORE UPDATE ON capaccess.customer
	FOR EACH ROW EXECUTE FUNCTION customer_skip();
SELECT * FROM capaccess_update(404, 1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT slots_held FROM capaccess_stats();
DROP TRIGGER skip ON capaccess.customer;
DROP FUNCTION customer_skip();

-- Changes that break the contract, each rolled back after the call
BEGIN;
ALTER TABLE capaccess.customer DROP COLUMN used;
SELECT * FROM capaccess_update(401, 1);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer RENAME COLUMN clock TO version;
SELECT * FROM capaccess_register(406, 100);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer ALTER COLUMN clock TYPE integer;
SELECT * FROM capaccess_update(401, 1);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer ALTER COLUMN seq TYPE numeric;
SELECT * FROM capaccess_update(401, 1);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer ALTER COLUMN access TYPE varchar(20);
SELECT * FROM capaccess_reset(401);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer ALTER COLUMN updated_at TYPE timestamp;
SELECT capaccess_unregister(401);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_pkey;
SELECT * FROM capaccess_update(401, 1);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_pkey;
CREATE UNIQUE INDEX ON capaccess.customer (customer_id, cap);
ALTER TABLE capaccess.customer ADD PRIMARY KEY USING INDEX customer_customer_id_cap_idx;
SELECT capaccess_reset_all();
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
ALTER TABLE capaccess.customer DROP COLUMN state_hash;
SELECT * FROM capaccess_verify();
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE

BEGIN;
ALTER SEQUENCE capaccess.seq RENAME TO seq_elsewhere;
SELECT * FROM capaccess_update(401, 1);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE

-- and after the rollbacks, everything works as before, the sequence
-- locked (before the gate) by its OID
BEGIN;
SELECT updated FROM capaccess_update(401, 1);
SELECT count(*) FILTER (WHERE relation = 'capaccess.seq'::regclass) AS seq_locked,
	   count(*) FILTER (WHERE relation = 0) AS locks_on_no_relation
  FROM pg_locks WHERE locktype = 'relation' AND pid = pg_backend_pid();
COMMIT;
SELECT updated, used, clock FROM capaccess_update(401, 1);
SELECT * FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();
DROP TABLE customer_audit;
DROP FUNCTION customer_audit();
