-- seq values in blocks (src/seq.c): capaccess.seq advances by 1024 once
-- per block, and the block's values are handed out one at a time, by the
-- direct write and by the statements run through SPI alike.
SELECT increment_by, cache_size FROM pg_sequences
 WHERE schemaname = 'capaccess' AND sequencename = 'seq';
SELECT count(*) FROM (
	SELECT capaccess_register(id, 1000000) FROM generate_series(1601, 1612) id) r;

CREATE TEMP TABLE drawn (n serial, phase text, seq bigint);
CREATE FUNCTION pg_temp.draw(phase text, calls int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..calls LOOP
		-- both writes, in turn, over two customers
		PERFORM set_config('capaccess.direct_write',
						   CASE WHEN i % 2 = 0 THEN 'on' ELSE 'off' END, true);
		INSERT INTO drawn (phase, seq)
			SELECT phase, u.seq FROM capaccess_update(1601 + i % 2, 1) u;
	END LOOP;
END $$;

-- one session alone: each value is the one after the last, across blocks
SELECT pg_temp.draw('consecutive', 1500);
SELECT count(*) AS calls, count(DISTINCT seq) AS distinct_seqs,
	   max(seq) - min(seq) AS span,
	   bool_and(seq = first_seq + n - first_n) AS each_one_more
  FROM (SELECT n, seq, first_value(seq) OVER w AS first_seq,
			   first_value(n) OVER w AS first_n
		  FROM drawn WINDOW w AS (ORDER BY n)) d;

-- the sequence is never below a seq in the table (a dump restores
-- consistently), and at most one block above
SELECT s.last_value >= m.max_seq AS seq_at_or_above_table,
	   s.last_value - m.max_seq < 1024 AS within_one_block
  FROM capaccess.seq s, (SELECT max(seq) AS max_seq FROM capaccess.customer) m;

-- a value taken by hand lies above the current block and is never handed
-- out; the block runs out first
SELECT nextval('capaccess.seq') AS by_hand \gset
SELECT pg_temp.draw('after nextval by hand', 1100);
SELECT count(*) FILTER (WHERE seq = :by_hand) AS by_hand_handed_out,
	   count(DISTINCT seq) = count(*) AS all_distinct,
	   max(seq) > :by_hand AS went_past_it
  FROM drawn;

-- setval just above last_value, is_called false (the usual way to say
-- "go on from here"), and RESTART WITH just above it: the next block is
-- that value alone, nothing below it is handed out again.  RESTART gives
-- the sequence a new file, so a new block entry that knows nothing of
-- the values handed out before.
SELECT setval('capaccess.seq', last_value + 1, false) IS NOT NULL AS set
  FROM capaccess.seq;
SELECT pg_temp.draw('after setval, not called', 1100);
SELECT last_value + 1 AS restart_at FROM capaccess.seq \gset
ALTER SEQUENCE capaccess.seq RESTART WITH :restart_at;
SELECT pg_temp.draw('after restart', 1100);
SELECT count(DISTINCT seq) = count(*) AS all_distinct,
	   bool_and(seq > prev) AS increasing
  FROM (SELECT seq, lag(seq) OVER (ORDER BY n) AS prev FROM drawn) d;

-- ALTER SEQUENCE writes the sequence a new file; rolled back, the values
-- drawn from it in that transaction must not stay in shared memory
BEGIN;
ALTER SEQUENCE capaccess.seq CACHE 1;
SELECT pg_temp.draw('in a rolled back ALTER', 1100);
ROLLBACK;
SELECT pg_temp.draw('after a rolled back ALTER', 1100);
SELECT count(DISTINCT seq) = count(*) AS all_distinct,
	   bool_and(seq > prev) AS increasing,
	   (SELECT last_value FROM capaccess.seq) >= max(seq) AS seq_at_or_above
  FROM (SELECT seq, lag(seq) OVER (ORDER BY n) AS prev FROM drawn) d;

-- an increment of 1 (what an administrator might set back): every value
-- is then a nextval, still above everything handed out before, and what
-- was left of the block is dropped, so that an increment of 1024 again
-- goes on above them
ALTER SEQUENCE capaccess.seq INCREMENT BY 1;
SELECT pg_temp.draw('increment 1', 20);
SELECT min(seq) FILTER (WHERE phase = 'increment 1') >
	   max(seq) FILTER (WHERE phase <> 'increment 1') AS above_all_before,
	   max(seq) FILTER (WHERE phase = 'increment 1') -
	   min(seq) FILTER (WHERE phase = 'increment 1') AS span
  FROM drawn;
ALTER SEQUENCE capaccess.seq INCREMENT BY 1024;
SELECT pg_temp.draw('increment 1024 again', 20);
SELECT min(seq) FILTER (WHERE phase = 'increment 1024 again') >
	   max(seq) FILTER (WHERE phase <> 'increment 1024 again') AS above_all_before,
	   count(DISTINCT seq) = count(*) AS all_distinct
  FROM drawn;

-- a CACHE lets backends return values out of order: no blocks then, each
-- call takes a nextval of its own
ALTER SEQUENCE capaccess.seq CACHE 5;
SELECT pg_temp.draw('cache 5', 4);
SELECT array_agg(seq - lag ORDER BY n) AS steps
  FROM (SELECT n, seq, lag(seq) OVER (ORDER BY n) FROM drawn
		 WHERE phase = 'cache 5') d WHERE lag IS NOT NULL;
ALTER SEQUENCE capaccess.seq CACHE 1;
SELECT pg_temp.draw('cache 1 again', 4);
SELECT max(seq) - min(seq) AS span FROM drawn WHERE phase = 'cache 1 again';
RESET capaccess.direct_write;

-- set back below last_value, the sequence repeats values, as any sequence
-- would; a session that starts afterwards follows it at once, instead of
-- handing out the rest of a block that is now above it
SELECT last_value AS before_setback FROM capaccess.seq \gset
SELECT setval('capaccess.seq', :before_setback - 5000) IS NOT NULL AS set;
\c -
SELECT seq <= :before_setback - 5000 + 1024 AS follows_the_sequence
  FROM capaccess_update(1601, 1);
SELECT setval('capaccess.seq', :before_setback + 1024) IS NOT NULL AS set_forward;

-- capaccess_reset_all takes its values from the block too: one nextval
-- for all the rows, not one each
SELECT last_value AS before_reset FROM capaccess.seq \gset
SELECT capaccess_reset_all() > 12 AS reset_many;
SELECT last_value - :before_reset <= 1024 AS at_most_one_block_taken
  FROM capaccess.seq;
SELECT count(DISTINCT seq) = count(*) AS all_distinct FROM capaccess.customer;

-- capaccess.next_seq() itself: what nextval checks
SELECT capaccess.next_seq() > (SELECT max(seq) FROM capaccess.customer) AS next_is_above;
BEGIN READ ONLY;
SELECT capaccess.next_seq();
ROLLBACK;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
CREATE ROLE capaccess_seq_nobody;
GRANT USAGE ON SCHEMA capaccess TO capaccess_seq_nobody;
SET ROLE capaccess_seq_nobody;
SELECT capaccess.next_seq();
RESET ROLE;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
REVOKE USAGE ON SCHEMA capaccess FROM capaccess_seq_nobody;
DROP ROLE capaccess_seq_nobody;

SELECT count(*) FROM capaccess_verify();
SELECT count(capaccess_unregister(id)) FROM generate_series(1601, 1612) id;
