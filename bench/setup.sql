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

-- The sqlfunc strategy: what an application developer would write to get
-- capaccess's columns without capaccess.  A copy of capaccess.customer, its
-- own sequence, and one SQL function doing a guarded UPDATE that computes
-- the clock, the sequence number, the state hash and the time, RETURNING
-- the row.  The row lock orders the updates; there is no gate and no cache.
DROP FUNCTION IF EXISTS bench_sqlfunc_update(bigint, bigint);
DROP TABLE IF EXISTS bench_sqlfunc;
DROP SEQUENCE IF EXISTS bench_sqlfunc_seq;
CREATE SEQUENCE bench_sqlfunc_seq AS bigint;
CREATE TABLE bench_sqlfunc (LIKE capaccess.customer INCLUDING ALL);
INSERT INTO bench_sqlfunc SELECT * FROM capaccess.customer;
CREATE FUNCTION bench_sqlfunc_update(k bigint, n bigint)
RETURNS SETOF bench_sqlfunc
LANGUAGE sql VOLATILE AS $$
	UPDATE bench_sqlfunc AS c
	   SET used = c.used + n,
		   clock = c.clock + 1,
		   seq = nextval('bench_sqlfunc_seq'),
		   state_hash = capaccess.state_hash(c.customer_id, c.clock + 1,
											 c.used + n, c.cap, c.access),
		   updated_at = now()
	 WHERE c.customer_id = k AND c.used + n <= c.cap
	RETURNING c.*
$$;
VACUUM ANALYZE bench_sqlfunc;
