-- Early release (capaccess.early_release) needs someone queued on the gate
-- (specs/gate_early_release.spec has those cases).  Alone, a transaction
-- commits the ordinary way: no early release, whatever it does.
SHOW capaccess.early_release;
SELECT customer_id FROM capaccess_register(900, 10, 'standard');
SELECT customer_id FROM capaccess_register(901, 10, 'standard');

SELECT early_releases AS e FROM capaccess_stats() \gset
SELECT updated, clock FROM capaccess_update(900, 1);
BEGIN;
SELECT updated FROM capaccess_update(900, 1);
SELECT updated FROM capaccess_update(901, 1);
COMMIT;
SELECT updated, reason FROM capaccess_update(900, 100);
SELECT early_releases - :e AS early FROM capaccess_stats();
SHOW synchronous_commit;

-- the setting is the user's to change
SET capaccess.early_release = off;
SHOW capaccess.early_release;
SELECT updated, clock FROM capaccess_update(900, 1);
RESET capaccess.early_release;

SELECT customer_id, used, clock FROM capaccess.customer
 WHERE customer_id IN (900, 901) ORDER BY 1;
SELECT * FROM capaccess_verify();
