-- PREPARE TRANSACTION is refused (0A000) in a transaction that holds a
-- gate, because no callback runs at COMMIT PREPARED; the gate is released.
SELECT customer_id FROM capaccess_register(30, 10);

BEGIN;
SELECT updated, used, clock FROM capaccess_update(30, 1);
PREPARE TRANSACTION 'capaccess_p1';
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT gid FROM pg_prepared_xacts;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 30;
SELECT slots_held FROM capaccess_stats();

-- the gate is free: another session's update goes through at once
\c
SET lock_timeout = '2s';
SELECT updated, used, clock FROM capaccess_update(30, 1);

-- a transaction that only read capaccess may be prepared
BEGIN;
SELECT used FROM capaccess.customer WHERE customer_id = 30;
PREPARE TRANSACTION 'capaccess_p2';
COMMIT PREPARED 'capaccess_p2';

-- a refusal holds no gate, so it does not prevent PREPARE either
BEGIN;
SELECT updated, reason FROM capaccess_update(30, 100);
PREPARE TRANSACTION 'capaccess_p3';
COMMIT PREPARED 'capaccess_p3';
SELECT slots_held FROM capaccess_stats();
