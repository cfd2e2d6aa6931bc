-- Bad inputs fail with the proper SQLSTATE and write nothing.
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SELECT customer_id FROM capaccess_register(10, 100);
SELECT customer_id FROM capaccess_register(11, 9223372036854775807);
SELECT updated, used FROM capaccess_update(11, 1);

SELECT s, pg_temp.sqlstate_of(s) FROM (VALUES
	-- NULLs: 22004
	('SELECT capaccess_update(NULL)'),
	('SELECT capaccess_update(10, NULL)'),
	('SELECT capaccess_register(NULL, 1)'),
	('SELECT capaccess_register(12, NULL)'),
	('SELECT capaccess_register(12, 1, NULL)'),
	('SELECT capaccess_update(NULL::jsonb, ''{}'')'),
	('SELECT capaccess_update(''{"customer_id": null}''::jsonb, ''{}'')'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"consume": null}'')'),
	-- negative caps: 22023
	('SELECT capaccess_update(10, 0, -1)'),
	('SELECT capaccess_register(12, -1)'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"cap": -1}'')'),
	-- overflow: 22003 (in the jsonb form, 22023 naming the key)
	('SELECT capaccess_update(11, 9223372036854775807)'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"consume": 1e30}'')'),
	-- duplicate registration: 23505
	('SELECT capaccess_register(10, 5)'),
	-- the jsonb contract: 22023 naming the key
	('SELECT capaccess_update(''{"customer_id": 10, "x": 1}''::jsonb, ''{"consume": 0}'')'),
	('SELECT capaccess_update(''{}''::jsonb, ''{"consume": 0}'')'),
	('SELECT capaccess_update(''[1]''::jsonb, ''{"consume": 0}'')'),
	('SELECT capaccess_update(''{"customer_id": "ten"}''::jsonb, ''{"consume": 0}'')'),
	('SELECT capaccess_update(''{"customer_id": 1.5}''::jsonb, ''{"consume": 0}'')'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"consume": "1.0"}'')'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{}'')'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"cap": true}'')'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"access": 3}'')'),
	('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"used": 3}'')')
) v(s);

-- the clock at its limit: 22003, and the row is unchanged
UPDATE capaccess.customer SET clock = 9223372036854775807 WHERE customer_id = 11;
SELECT pg_temp.sqlstate_of('SELECT capaccess_update(11, 1)');
SELECT used, clock FROM capaccess.customer WHERE customer_id = 11;
-- (undo the hand edit, so that the row matches its hash again)
UPDATE capaccess.customer SET clock = 1 WHERE customer_id = 11;

-- nothing above was written
SELECT customer_id, used, cap, clock FROM capaccess.customer
 WHERE customer_id IN (10, 11, 12) ORDER BY 1;

-- read-only transactions fail with 25006 before taking any gate
BEGIN READ ONLY;
SELECT pg_temp.sqlstate_of('SELECT capaccess_update(10, 1)');
SELECT pg_temp.sqlstate_of('SELECT capaccess_register(13, 1)');
SELECT pg_temp.sqlstate_of('SELECT capaccess_update(''{"customer_id": 10}''::jsonb, ''{"consume": 0}'')');
ROLLBACK;
SELECT slots_held FROM capaccess_stats();

-- No slot to be had: the call relies on its UPDATE's row lock instead.  The
-- test instance has 64 slots and a database may pin half of them
-- (capaccess.database_slot_share = 50): one transaction updating 65
-- customers gets gates for 32, and the other 33 are still accepted, each
-- with its next clock, without a gate.
SELECT count(*) FROM (SELECT capaccess_register(i, 100) FROM generate_series(100, 131) i) s;
SELECT count(*) FROM (SELECT capaccess_register(i, 100) FROM generate_series(132, 164) i) s;
SELECT value AS slotless_before FROM capaccess_counters()
 WHERE counter = 'slotless_calls' \gset
BEGIN;
SELECT count(*) FILTER (WHERE updated AND clock = 1) AS accepted
  FROM generate_series(100, 164) i, capaccess_update(i, 1);
SELECT slots_held FROM capaccess_stats();
SELECT value - :slotless_before AS slotless FROM capaccess_counters()
 WHERE counter = 'slotless_calls';
-- a refusal without a slot still says why, from the row it locked
SELECT updated, reason, used, clock FROM capaccess_update(164, 1000);
ROLLBACK;
-- the rollback freed them all
SELECT slots_held FROM capaccess_stats();
SELECT updated, used, clock FROM capaccess_update(164, 1);
SELECT count(*) AS untouched FROM capaccess.customer
 WHERE customer_id BETWEEN 100 AND 163 AND used = 0 AND clock = 0;
