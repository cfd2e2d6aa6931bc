-- Parallel query: the functions are PARALLEL UNSAFE, so a plan that would
-- use workers runs them in the leader, and nothing breaks.
-- (force_parallel_mode was renamed debug_parallel_query in 16)
SELECT CASE WHEN current_setting('server_version_num')::int >= 160000
            THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END
       AS parallel_mode \gset
SET :parallel_mode = regress;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;

SELECT customer_id FROM capaccess_register(60, 100);
SELECT updated, used, clock FROM capaccess_update(60, 1);
SELECT capaccess_update('{"customer_id": 60}'::jsonb, '{"consume": 1}'::jsonb) ->> 'clock';

-- called once per row of a scan that could be parallel
CREATE TABLE charges AS SELECT 60::bigint AS customer_id, g AS n FROM generate_series(1, 50) g;
ANALYZE charges;
SELECT count(*) FILTER (WHERE u.updated) AS accepted, max(u.clock) AS last_clock
  FROM charges, capaccess_update(charges.customer_id, 1) AS u;

-- parallel-safe reads of the table and the pure functions may use workers
EXPLAIN (COSTS OFF)
SELECT count(*) FROM capaccess.customer
 WHERE state_hash = capaccess.state_hash(customer_id, clock, used, cap, access);
SELECT count(*) FROM capaccess.customer
 WHERE state_hash = capaccess.state_hash(customer_id, clock, used, cap, access);
SELECT count(*) FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();

RESET :parallel_mode;
SELECT used, clock FROM capaccess.customer WHERE customer_id = 60;
DROP TABLE charges;
