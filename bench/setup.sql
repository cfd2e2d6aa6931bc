-- Benchmark data: the same customers in a plain table (for PostgreSQL's own
-- strategies) and in capaccess.customer.  Customer 1 is the hot one,
-- customer 2 has used up its cap, 1000..100999 are the uniform workload's.
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_customer;
CREATE TABLE bench_customer (customer_id bigint PRIMARY KEY, cap bigint NOT NULL,
							 used bigint NOT NULL);
INSERT INTO bench_customer
SELECT id, CASE WHEN id = 2 THEN 1000 ELSE 1000000000000 END,
	   CASE WHEN id = 2 THEN 1000 ELSE 0 END
  FROM (SELECT 1 AS id UNION ALL SELECT 2 UNION ALL
		SELECT generate_series(1000, 100999)) ids;
-- capaccess's rows, bulk-loaded the way pg_restore would load them
TRUNCATE capaccess.customer;
INSERT INTO capaccess.customer
SELECT customer_id, cap, used, 'standard', 0, NULL,
	   capaccess.state_hash(customer_id, 0, used, cap, 'standard'), now()
  FROM bench_customer;
VACUUM ANALYZE bench_customer;
VACUUM ANALYZE capaccess.customer;
