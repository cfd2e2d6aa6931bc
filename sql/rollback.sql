-- Rolled-back updates leave no trace in the table or in the slot cache:
-- the next accepted update gets clock = last committed clock + 1.
SELECT customer_id FROM capaccess_register(20, 10);
SELECT updated, used, clock FROM capaccess_update(20, 2);

-- ROLLBACK
BEGIN;
SELECT updated, used, clock FROM capaccess_update(20, 3);
SELECT updated, used, clock FROM capaccess_update(20, 3);
ROLLBACK;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 20;
SELECT updated, used, clock FROM capaccess_update(20, 1);

-- an error later in the transaction
BEGIN;
SELECT updated, used, clock FROM capaccess_update(20, 1);
SELECT 1 / 0;
ROLLBACK;
SELECT updated, used, clock FROM capaccess_update(20, 1);

-- ROLLBACK TO SAVEPOINT: the outer update stays, the inner one goes
BEGIN;
SELECT updated, used, clock FROM capaccess_update(20, 1);
SAVEPOINT s1;
SELECT updated, used, clock FROM capaccess_update(20, 5);
ROLLBACK TO SAVEPOINT s1;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 20;
-- later updates in the same transaction work, from the state before s1
SELECT updated, used, clock FROM capaccess_update(20, 1);
COMMIT;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 20;

-- The slot cache did not keep the rolled-back state: a refusal decided from
-- it reports the committed one (used 6, clock 5), not used 10.
SELECT updated, reason, used, clock FROM capaccess_update(20, 5);
SELECT updated, reason, used, clock FROM capaccess_update(20, 4);
SELECT updated, reason, used, clock FROM capaccess_update(20, 1);

-- a savepoint that rolls back the only update of the transaction
SELECT updated, used, clock FROM capaccess_update(20, -6);
BEGIN;
SAVEPOINT s1;
SELECT updated, used, clock FROM capaccess_update(20, 6);
ROLLBACK TO SAVEPOINT s1;
COMMIT;
-- accepted: the cache did not keep used 10 from the rolled-back update
SELECT updated, reason, used, clock FROM capaccess_update(20, 6);

-- RELEASE SAVEPOINT keeps the inner update, published once at commit
BEGIN;
SAVEPOINT s1;
SELECT updated, used, clock FROM capaccess_update(20, -5);
RELEASE SAVEPOINT s1;
COMMIT;
-- refused from the committed state: used 5, clock 9
SELECT updated, reason, used, clock FROM capaccess_update(20, 6);
SELECT updated, reason, used, clock FROM capaccess_update(20, 5);

-- a PL/pgSQL EXCEPTION block: its update is undone with it, and the
-- update after it starts from used 10, not 5
DO $$
BEGIN
	BEGIN
		PERFORM capaccess_update(20, -5);
		RAISE division_by_zero;
	EXCEPTION WHEN division_by_zero THEN
		RAISE NOTICE 'inner block rolled back';
	END;
	PERFORM capaccess_update(20, -1);
END
$$;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 20;
SELECT updated, reason, used, clock FROM capaccess_update(20, 2);

-- the sequence number went on rising through all of this: the last
-- accepted update has the highest
SELECT seq = (SELECT max(seq) FROM capaccess.customer) AS highest_seq
  FROM capaccess.customer WHERE customer_id = 20;
SELECT slots_held FROM capaccess_stats();
SELECT state_hash = capaccess.state_hash(customer_id, clock, used, cap, access) AS hash_ok
  FROM capaccess.customer WHERE customer_id = 20;
