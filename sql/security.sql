-- Who may do what, and objects on the search_path that try to capture the
-- extension's statements.
CREATE ROLE capaccess_app LOGIN;
CREATE ROLE capaccess_nobody LOGIN;
GRANT EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text),
                          capaccess_update(jsonb, jsonb) TO capaccess_app;
GRANT USAGE ON SCHEMA capaccess TO capaccess_app;
SELECT customer_id FROM capaccess_register(40, 10);

-- a role without EXECUTE: 42501
SET ROLE capaccess_nobody;
SELECT * FROM capaccess_update(40, 1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT * FROM capaccess_register(41, 1);
RESET ROLE;

-- a role with EXECUTE updates through the function, but cannot touch the
-- table itself
SET ROLE capaccess_app;
SELECT updated, used, clock FROM capaccess_update(40, 1);
SELECT capaccess_update('{"customer_id": 40}'::jsonb, '{"consume": 1}'::jsonb) ->> 'clock';
UPDATE capaccess.customer SET used = 0 WHERE customer_id = 40;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
INSERT INTO capaccess.customer VALUES (41, 1, 0, 'x', 0, NULL, 0, NULL);
SELECT * FROM capaccess.customer;
RESET ROLE;

-- Hostile objects first on the search_path: a temp table named like the
-- extension's, a function nextval, an operator + on bigint.
CREATE SCHEMA evil;
CREATE TABLE evil.customer (LIKE capaccess.customer);
CREATE TEMP TABLE customer (LIKE capaccess.customer);
CREATE FUNCTION evil.nextval(regclass) RETURNS bigint
	LANGUAGE sql AS 'SELECT 42::bigint';
CREATE FUNCTION evil.bad_plus(bigint, bigint) RETURNS bigint
	LANGUAGE sql AS 'SELECT 1000::bigint';
CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.bad_plus);
SET search_path = pg_temp, evil, public, pg_catalog;
SELECT 1::bigint + 1::bigint AS captured_here;
SELECT updated, used, clock, seq <> 42 AS real_seq FROM capaccess_update(40, 1);
SELECT count(*) AS rows_in_decoys FROM customer;
SELECT count(*) AS rows_in_decoys FROM evil.customer;
RESET search_path;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 40;

DROP SCHEMA evil CASCADE;
REVOKE ALL ON FUNCTION capaccess_update(bigint, bigint, bigint, text),
                       capaccess_update(jsonb, jsonb) FROM capaccess_app;
REVOKE USAGE ON SCHEMA capaccess FROM capaccess_app;
DROP ROLE capaccess_app;
DROP ROLE capaccess_nobody;
