-- From 1.0 to 1.1: a database created with the released 1.0 script, used,
-- then updated in place with ALTER EXTENSION.  Runs last: it re-creates
-- the extension.
DROP EXTENSION capaccess;
CREATE EXTENSION capaccess VERSION '1.0';
CREATE ROLE capaccess_upgrade_app;
GRANT EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text),
						  capaccess_stats() TO capaccess_upgrade_app;
CREATE VIEW gate_load AS SELECT waits, slots_held FROM capaccess_stats();

-- the 1.1 library serves the 1.0 functions, capaccess_stats() included
SELECT customer_id FROM capaccess_register(801, 5);
SELECT updated, used, clock FROM capaccess_update(801, 5);
SELECT updated, reason FROM capaccess_update(801, 1);
SELECT * FROM capaccess_stats() \gdesc
SELECT accepted > 0 AS counts FROM capaccess_stats();
-- 1.0 had no limit on access: a row over 1.1's (written by the owner; the
-- 1.1 library refuses it already), which the update warns of
INSERT INTO capaccess.customer (customer_id, cap, access, state_hash)
	VALUES (802, 5, repeat('x', 2000), capaccess.state_hash(802, 0, 0, 5, repeat('x', 2000)));

-- seq under 1.0: a nextval per update, from a sequence of INCREMENT 1.
-- Through SPI, to see which statement this session has prepared.
SET capaccess.direct_write = off;
CREATE TEMP TABLE up_seq (n serial, version text, seq bigint);
SELECT customer_id FROM capaccess_register(803, 5);
INSERT INTO up_seq (version, seq) SELECT '1.0', seq FROM capaccess_update(803, 0);
INSERT INTO up_seq (version, seq) SELECT '1.0', seq FROM capaccess_update(803, 0);

-- a 1.0 schema whose INCREMENT an administrator raised: the direct write
-- and the UPDATE through SPI each take a nextval, so seq still rises
ALTER SEQUENCE capaccess.seq INCREMENT BY 10;
RESET capaccess.direct_write;
INSERT INTO up_seq (version, seq) SELECT '1.0, increment 10', seq FROM capaccess_update(803, 0);
SET capaccess.direct_write = off;
INSERT INTO up_seq (version, seq) SELECT '1.0, increment 10', seq FROM capaccess_update(803, 0);
RESET capaccess.direct_write;
INSERT INTO up_seq (version, seq) SELECT '1.0, increment 10', seq FROM capaccess_update(803, 0);
SELECT bool_and(seq > prev) AS rises
  FROM (SELECT seq, lag(seq) OVER (ORDER BY n) AS prev FROM up_seq) u;
ALTER SEQUENCE capaccess.seq INCREMENT BY 1;
SET capaccess.direct_write = off;

ALTER EXTENSION capaccess UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'capaccess';

-- seq under 1.1, in the same session: the statements are prepared again,
-- and take their values from blocks, above the last one 1.0 gave
INSERT INTO up_seq (version, seq) SELECT '1.1', seq FROM capaccess_update(803, 0);
INSERT INTO up_seq (version, seq) SELECT '1.1', seq FROM capaccess_update(803, 0);
INSERT INTO up_seq (version, seq) SELECT '1.1', seq FROM capaccess_update(803, 0);
RESET capaccess.direct_write;
SELECT increment_by FROM pg_sequences
 WHERE schemaname = 'capaccess' AND sequencename = 'seq';
SELECT version, max(seq) - min(seq) AS span FROM up_seq GROUP BY version ORDER BY version;
SELECT min(seq) FILTER (WHERE version = '1.1') >
	   max(seq) FILTER (WHERE version = '1.0') AS above_1_0
  FROM up_seq;
SELECT count(capaccess_unregister(803));

-- that row cannot be written until its access is shortened, and then the
-- constraint can be validated
\set VERBOSITY terse
SELECT * FROM capaccess_consume(802, 1);
\set VERBOSITY default
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated, used, clock, access FROM capaccess_update(802, 0, new_access => 'short');
SELECT updated, used, clock FROM capaccess_consume(802, 1);
ALTER TABLE capaccess.customer VALIDATE CONSTRAINT access_max_length;

-- the rows, the grants and a view on capaccess_stats() are kept; the new
-- functions are there, revoked from PUBLIC like the others, and work on
-- the old rows
SELECT customer_id, used, clock FROM capaccess.customer;
SELECT has_function_privilege('capaccess_upgrade_app',
		'capaccess_update(bigint, bigint, bigint, text)', 'EXECUTE') AS app_keeps_execute,
	   has_function_privilege('capaccess_upgrade_app',
		'capaccess_stats()', 'EXECUTE') AS app_keeps_stats;
SELECT waits >= 0 AS view_on_stats_works FROM gate_load;
SELECT p.oid::regprocedure AS function,
	   has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'capaccess')
   AND d.deptype = 'e'
 ORDER BY p.oid::regprocedure::text;
SELECT * FROM capaccess_stats() \gdesc
SELECT counter FROM capaccess_counters() ORDER BY 1;
SELECT updated, reason, used, clock FROM capaccess_reset(801);
SELECT updated, used, clock FROM capaccess_update(801, 1);
SELECT capaccess_reset_all();
SELECT * FROM capaccess_verify();

DROP VIEW gate_load;
REVOKE EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text),
						   capaccess_stats() FROM capaccess_upgrade_app;
DROP ROLE capaccess_upgrade_app;
