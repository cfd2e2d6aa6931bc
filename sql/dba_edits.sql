-- The three edits that an administrator made by hand and that broke 1.0,
-- typed as the table's owner would type them.  The server must stay up
-- throughout: after a crash, the checkpointer would be a new process.
SELECT backend_start AS checkpointer_start FROM pg_stat_activity
 WHERE backend_type = 'checkpointer' \gset

-- 1. The owner raises the cap of a customer who had used its cap of 1.
SELECT customer_id FROM capaccess_register(202, 1);
SELECT updated, reason, used, cap, clock FROM capaccess_update(202, 1);
-- refused, from the cache
SELECT updated, reason, used, cap, clock FROM capaccess_update(202, 1);
UPDATE capaccess.customer SET cap = 100 WHERE customer_id = 202;
-- accepted now, from the committed row: clock 2, no gap
SELECT updated, reason, used, cap, clock FROM capaccess_update(202, 1);
SELECT * FROM capaccess_verify();

-- 2. The owner deletes a customer who had used its cap.
SELECT customer_id FROM capaccess_register(203, 1);
SELECT updated, reason, used, cap FROM capaccess_update(203, 1);
SELECT updated, reason, used, cap FROM capaccess_update(203, 1);
DELETE FROM capaccess.customer WHERE customer_id = 203;
SELECT updated, reason, used, cap, clock FROM capaccess_update(203, 1);
SELECT * FROM capaccess_verify();

-- 3. The owner adds a column for bookkeeping, then drops it again.
ALTER TABLE capaccess.customer ADD COLUMN note text;
SELECT customer_id, cap, used, access, clock, seq, state_hash, note
  FROM capaccess_register(204, 10);
SELECT updated, used, clock FROM capaccess_update(204, 1);
UPDATE capaccess.customer SET note = 'moved to the gold plan' WHERE customer_id = 204;
SELECT updated, used, clock FROM capaccess_update(204, 1, new_access => 'gold');
SELECT customer_id, used, access, clock, note FROM capaccess.customer
 WHERE customer_id = 204;
ALTER TABLE capaccess.customer DROP COLUMN note;
SELECT customer_id, cap, used, access, clock, seq, state_hash
  FROM capaccess_register(205, 10);
SELECT updated, used, clock FROM capaccess_update(205, 1);
SELECT * FROM capaccess_verify();

SELECT backend_start = :'checkpointer_start' AS server_never_restarted
  FROM pg_stat_activity WHERE backend_type = 'checkpointer';
