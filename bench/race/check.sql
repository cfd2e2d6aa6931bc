-- One row of facts about both runs; the demo prints it, the test asserts it.
SELECT
	(SELECT used FROM race_plain WHERE customer_id = 1) AS before_applied,
	(SELECT count(*) FROM race_log) AS after_calls,
	(SELECT count(*) FROM race_log WHERE updated) AS after_accepted,
	(SELECT used FROM capaccess.customer WHERE customer_id = 1) AS after_applied,
	(SELECT count(DISTINCT clock) FROM race_log WHERE updated) AS distinct_clocks,
	(SELECT min(clock) FROM race_log WHERE updated) AS min_clock,
	(SELECT max(clock) FROM race_log WHERE updated) AS max_clock,
	(SELECT count(DISTINCT state_hash) FROM race_log WHERE updated) AS distinct_hashes,
	(SELECT count(DISTINCT seq) FROM race_log WHERE updated) AS distinct_seqs;
