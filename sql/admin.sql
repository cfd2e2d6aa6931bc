-- What an administrator would otherwise do with raw DML: capaccess_reset,
-- capaccess_unregister and capaccess_reset_all.
SELECT customer_id FROM capaccess_register(501, 10);
SELECT updated, used, clock FROM capaccess_update(501, 10);
SELECT updated, reason FROM capaccess_update(501, 1);

-- a new period: used set, clock + 1, a new seq and hash
SELECT updated, reason, used, cap, clock,
	   state_hash = capaccess.state_hash(501, clock, used, cap, access) AS hash_ok
  FROM capaccess_reset(501);
SELECT updated, used, clock FROM capaccess_update(501, 1);
SELECT updated, used, clock FROM capaccess_reset(501, 12);
SELECT updated, reason FROM capaccess_update(501, 1);
SELECT updated, reason, used, clock FROM capaccess_reset(599);
SELECT * FROM capaccess_reset(501, -1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT * FROM capaccess_reset(NULL);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT capaccess_reset_all(-1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;

-- unregister: true once, then false, and the customer is not_found
SELECT capaccess_unregister(501);
SELECT capaccess_unregister(501);
SELECT updated, reason FROM capaccess_update(501, 1);
SELECT customer_id, used, clock FROM capaccess_register(501, 10);

-- all in one transaction: the gate is taken once, and a rollback undoes it all
BEGIN;
SELECT updated, used, clock FROM capaccess_update(501, 3);
SELECT updated, used, clock FROM capaccess_reset(501);
SELECT capaccess_unregister(501);
SELECT updated, reason FROM capaccess_update(501, 1);
SELECT slots_held FROM capaccess_stats();
ROLLBACK;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 501;
SELECT slots_held FROM capaccess_stats();

-- reset_all: every customer once, clock + 1 each, nothing else changed
SELECT c.customer_id FROM generate_series(502, 504) i, capaccess_register(i, 5) c;
SELECT i, u.used FROM generate_series(502, 504) i, capaccess_update(i, 5) u;
SELECT i, u.reason FROM generate_series(502, 504) i, capaccess_update(i, 1) u;
CREATE TEMP TABLE before_reset AS SELECT * FROM capaccess.customer;
SELECT capaccess_reset_all() = (SELECT count(*) FROM before_reset) AS every_customer;
SELECT count(*) AS not_reset FROM capaccess.customer WHERE used <> 0;
SELECT count(*) AS clock_not_advanced_by_one
  FROM capaccess.customer c JOIN before_reset b USING (customer_id)
 WHERE c.clock <> b.clock + 1 OR c.cap <> b.cap OR c.access <> b.access;
SELECT count(*) = (SELECT count(*) FROM before_reset) AS each_with_a_new_seq
  FROM capaccess.customer c JOIN before_reset b USING (customer_id)
 WHERE c.seq > coalesce(b.seq, 0);
-- the caches that refused are stale now: accepted
SELECT i, u.updated, u.used FROM generate_series(502, 504) i, capaccess_update(i, 1) u;

-- a customer whose gate the same transaction holds is reset through it
BEGIN;
SELECT updated, used, clock FROM capaccess_update(502, 2);
SELECT capaccess_reset_all(1) > 0 AS reset;
SELECT updated, used, clock FROM capaccess_update(502, 0);
COMMIT;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 502;
SELECT * FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();
DROP TABLE before_reset;
