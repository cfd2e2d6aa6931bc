-- capaccess_verify(): empty when healthy, one row per problem otherwise.
SELECT customer_id FROM capaccess_register(50, 10, 'basic');
SELECT updated, used, clock FROM capaccess_update(50, 4);
SELECT * FROM capaccess_verify();

-- a row edited by hand: its hash no longer matches.  The slot's cache,
-- loaded by the update above, names a row version that is no longer the
-- current one: stale, never answered from, and so not a problem.
UPDATE capaccess.customer SET used = 5 WHERE customer_id = 50;
SELECT customer_id, problem, detail FROM capaccess_verify() ORDER BY 1, 2;

-- the edit made consistent: healthy, and the next update builds on it
UPDATE capaccess.customer
   SET state_hash = capaccess.state_hash(customer_id, clock, used, cap, access)
 WHERE customer_id = 50;
SELECT * FROM capaccess_verify();
SELECT updated, used, clock FROM capaccess_update(50, 1);
SELECT * FROM capaccess_verify();

-- negative values, with the constraints that forbid them dropped
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_used_check;
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_clock_check;
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_cap_check;
SELECT customer_id FROM capaccess_register(51, 10);
UPDATE capaccess.customer SET used = -1, clock = -2, cap = -3 WHERE customer_id = 51;
SELECT customer_id, problem, detail FROM capaccess_verify() ORDER BY 1, 2;
UPDATE capaccess.customer SET used = 0, clock = 0, cap = 10 WHERE customer_id = 51;
ALTER TABLE capaccess.customer ADD CHECK (used >= 0), ADD CHECK (clock >= 0),
	ADD CHECK (cap >= 0);

-- a NULL where capaccess needs a value, with NOT NULL dropped: reported,
-- and a call on that customer fails with 22004 instead of misreading it
ALTER TABLE capaccess.customer ALTER COLUMN used DROP NOT NULL;
UPDATE capaccess.customer SET used = NULL WHERE customer_id = 51;
SELECT customer_id, problem, detail FROM capaccess_verify() ORDER BY 1, 2;
SELECT * FROM capaccess_update(51, 1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT slots_held FROM capaccess_stats();
UPDATE capaccess.customer SET used = 0 WHERE customer_id = 51;
ALTER TABLE capaccess.customer ALTER COLUMN used SET NOT NULL;

-- a cached customer whose row was deleted by hand: nothing to report, and
-- it is not_found
DELETE FROM capaccess.customer WHERE customer_id = 50;
SELECT * FROM capaccess_verify();
SELECT updated, reason FROM capaccess_update(50, 1);
SELECT customer_id FROM capaccess_register(50, 10, 'basic');
SELECT * FROM capaccess_verify();

-- it takes no gate: it runs while a transaction holds one
BEGIN;
SELECT updated, used FROM capaccess_update(50, 1);
SELECT count(*) AS problems FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();
COMMIT;
SELECT * FROM capaccess_verify();
