-- capaccess runs its statements as the table's owner with search_path =
-- pg_catalog, pg_temp and row_security = off, restored afterwards.  So a
-- trigger an administrator adds cannot be captured through the caller's
-- search_path, and a setting it changes does not leak into the session.
CREATE ROLE capaccess_caller LOGIN;
GRANT EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text) TO capaccess_caller;
CREATE SCHEMA trap AUTHORIZATION capaccess_caller;
SELECT customer_id FROM capaccess_register(601, 100);

-- the administrator's trigger: plain PL/pgSQL with an unqualified +, which
-- also changes a setting
ALTER TABLE capaccess.customer ADD COLUMN next_used bigint;
CREATE FUNCTION customer_next_used() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.next_used := NEW.used + 1;
	PERFORM set_config('work_mem', '7777kB', false);
	RETURN NEW;
END
$$;
CREATE TRIGGER next_used BEFORE UPDATE ON capaccess.customer
	FOR EACH ROW EXECUTE FUNCTION customer_next_used();

-- the caller's own operator bigint + integer, first on its search_path
SET ROLE capaccess_caller;
CREATE FUNCTION trap.plus(bigint, integer) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'trap.+ runs as %', current_user;
	RETURN 1000;
END
$$;
CREATE OPERATOR trap.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = trap.plus);
SET search_path = trap, pg_catalog, public;
SELECT 1::bigint + 1 AS in_the_callers_own_queries;
SHOW work_mem;
SELECT updated, used FROM capaccess_update(601, 1);
SELECT updated, used FROM capaccess_update(601, 1);
SHOW work_mem;
RESET search_path;
RESET ROLE;
SELECT used, next_used FROM capaccess.customer WHERE customer_id = 601;

-- A table handed to an owner without superuser: the statements run as that
-- owner, which needs only the schema and the sequence.
DROP TRIGGER next_used ON capaccess.customer;
DROP FUNCTION customer_next_used();
ALTER TABLE capaccess.customer DROP COLUMN next_used;
CREATE ROLE capaccess_owner;
GRANT USAGE ON SCHEMA capaccess TO capaccess_owner;
GRANT USAGE ON SEQUENCE capaccess.seq TO capaccess_owner;
ALTER TABLE capaccess.customer OWNER TO capaccess_owner;
SET ROLE capaccess_caller;
SELECT updated, used FROM capaccess_update(601, 1);
RESET ROLE;

-- FORCE ROW LEVEL SECURITY with a policy that hides the row from that
-- owner: an error, never a not_found for a customer that exists
CREATE POLICY below_600 ON capaccess.customer USING (customer_id < 600);
ALTER TABLE capaccess.customer ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
SET ROLE capaccess_caller;
SELECT * FROM capaccess_update(601, 1);
RESET ROLE;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
ALTER TABLE capaccess.customer NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
DROP POLICY below_600 ON capaccess.customer;
ALTER TABLE capaccess.customer OWNER TO CURRENT_USER;
REVOKE USAGE ON SEQUENCE capaccess.seq FROM capaccess_owner;
REVOKE USAGE ON SCHEMA capaccess FROM capaccess_owner;
DROP ROLE capaccess_owner;
SELECT updated, used FROM capaccess_update(601, 1);
SELECT * FROM capaccess_verify();

DROP SCHEMA trap CASCADE;
REVOKE EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text) FROM capaccess_caller;
DROP ROLE capaccess_caller;
