-- capaccess_verify(): empty when healthy, one row per problem otherwise.
SELECT customer_id FROM capaccess_register(50, 10, 'basic');
SELECT updated, used, clock FROM capaccess_update(50, 4);
SELECT * FROM capaccess_verify();

-- a row edited by hand: its hash no longer matches, and the slot's cache
-- (loaded by the update above) differs from the row
UPDATE capaccess.customer SET used = 5 WHERE customer_id = 50;
SELECT customer_id, problem FROM capaccess_verify() ORDER BY 1, 2;
SELECT regexp_replace(detail, 'seq=\d+', 'seq=N', 'g') AS detail
  FROM capaccess_verify() WHERE problem = 'slot_differs';

-- a forged hash that matches the edit: only the cache tells
UPDATE capaccess.customer
   SET state_hash = capaccess.state_hash(customer_id, clock, used, cap, access)
 WHERE customer_id = 50;
SELECT customer_id, problem FROM capaccess_verify();

-- put the row back: healthy again
UPDATE capaccess.customer
   SET used = 4,
       state_hash = capaccess.state_hash(customer_id, clock, 4, cap, access)
 WHERE customer_id = 50;
SELECT * FROM capaccess_verify();

-- negative values, with the constraints that forbid them dropped
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_used_check;
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_clock_check;
ALTER TABLE capaccess.customer DROP CONSTRAINT customer_cap_check;
SELECT customer_id FROM capaccess_register(51, 10);
UPDATE capaccess.customer SET used = -1, clock = -2, cap = -3 WHERE customer_id = 51;
SELECT customer_id, problem, detail FROM capaccess_verify() ORDER BY 1, 2;
UPDATE capaccess.customer SET used = 0, clock = 0, cap = 10 WHERE customer_id = 51;

-- a cached customer whose row was deleted by hand
DELETE FROM capaccess.customer WHERE customer_id = 50;
SELECT customer_id, problem FROM capaccess_verify();
SELECT customer_id FROM capaccess_register(50, 10, 'basic');
SELECT * FROM capaccess_verify();
ALTER TABLE capaccess.customer ADD CHECK (used >= 0), ADD CHECK (clock >= 0),
	ADD CHECK (cap >= 0);

-- it takes no gate: it runs while a transaction holds one
BEGIN;
SELECT updated, used FROM capaccess_update(50, 1);
SELECT count(*) AS problems FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();
COMMIT;
SELECT * FROM capaccess_verify();
