-- Attacks on capaccess by roles that are not superusers.
--
-- sql/security.sql shows the basic rights with SET ROLE, under a superuser
-- session.  This test goes further: after a setup part run as the
-- superuser, every attack runs in a real login session of a role without
-- superuser (psql's \c - role), and only the final check part goes back to
-- the superuser to look at the table.  Nothing runs as the superuser
-- between the setup and the checks, except part 9, which is about what an
-- administrator's CREATE EXTENSION does in a database somebody prepared,
-- and must run as the superuser (capaccess is a C extension).
--
-- The roles, each given only what its job needs:
--   capaccess_atk_app      EXECUTE on capaccess_consume; owns schema atk_app
--   capaccess_atk_reader   EXECUTE on capaccess_peek
--   capaccess_atk_monitor  member of pg_monitor, nothing else
--   capaccess_atk_admin    EXECUTE on the administrator's functions
--   capaccess_atk_nobody   nothing
--
-- What is proved, part by part:
--   1. each right that a role lacks is refused with 42501, and pg_monitor
--      alone lets the monitor watch;
--   2. the application role consumes and refunds, and has no way to change
--      the cap or the access level;
--   3. it cannot read or write the table or the sequence directly, alter
--      them, or set the superuser-only settings;
--   4. decoys that it puts on its search_path (functions nextval,
--      state_hash, now, coalesce, octet_length, format; operators + = <=
--      >= < <> on bigint and = on tid; tables customer and seq, in its
--      schema and in pg_temp) are never run by capaccess: results stay
--      exact and the decoys' log stays empty, while the same decoys do
--      capture the attacker's own unqualified queries (shown inside
--      rolled-back transactions);
--   5. the overload trap: a capaccess_consume(integer, integer) of the
--      attacker's does capture unqualified calls with integer literals (the
--      hazard the README tells callers to avoid), while calls qualified
--      with public., or with bigint arguments, reach capaccess;
--   6. access texts that look like SQL, quotes, backslashes, Unicode, and
--      jsonb with odd keys and values: stored byte for byte, or refused
--      with a SQLSTATE;
--   7. bigint extremes: a clean error or refusal, never a wrong row;
--   8. the length limits of the access text and of a jsonb argument;
--   9. objects created under the extension's names before CREATE EXTENSION
--      make it fail, unchanged, rather than be adopted.
--
-- A trigger added in the setup records the search_path, the user and the
-- session user of every row the functions write, so the checks can show
-- that each write ran as the table's owner under search_path = pg_catalog,
-- pg_temp, whoever called.

-- ======================================================================
-- Setup, as the superuser
-- ======================================================================
SELECT current_user AS su, current_database() AS db \gset

CREATE ROLE capaccess_atk_app LOGIN;
CREATE ROLE capaccess_atk_reader LOGIN;
CREATE ROLE capaccess_atk_monitor LOGIN IN ROLE pg_monitor;
CREATE ROLE capaccess_atk_admin LOGIN;
CREATE ROLE capaccess_atk_nobody LOGIN;

GRANT EXECUTE ON FUNCTION capaccess_consume(bigint, bigint) TO capaccess_atk_app;
GRANT EXECUTE ON FUNCTION capaccess_peek(bigint) TO capaccess_atk_reader;
GRANT EXECUTE ON FUNCTION capaccess_register(bigint, bigint, text),
                          capaccess_update(bigint, bigint, bigint, text),
                          capaccess_update(jsonb, jsonb),
                          capaccess_unregister(bigint),
                          capaccess_reset(bigint, bigint),
                          capaccess_reset_all(bigint),
                          capaccess_peek(bigint),
                          capaccess_verify(),
                          capaccess_stats_reset()
   TO capaccess_atk_admin;
-- USAGE on the schema, so that the application role's direct DML reaches
-- the table's and the sequence's own privileges (part 3), which the
-- extension revokes from PUBLIC.
GRANT USAGE ON SCHEMA capaccess TO capaccess_atk_app;
-- A schema of the application role's own, where it puts its decoys.
CREATE SCHEMA atk_app AUTHORIZATION capaccess_atk_app;

-- A customer whose clock is at its limit (part 7), written by hand with a
-- matching state hash.
SELECT customer_id FROM capaccess_register(1122, 10);
UPDATE capaccess.customer
   SET clock = 9223372036854775807,
       state_hash = capaccess.state_hash(customer_id, 9223372036854775807, used, cap, access)
 WHERE customer_id = 1122;

-- The probe: every row the functions write from now on, and under what.
CREATE TABLE attack_probe (who name, search_path text, run_as name, op text);
CREATE FUNCTION attack_probe_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.attack_probe
		VALUES (session_user, pg_catalog.current_setting('search_path'),
				current_user, TG_OP);
	RETURN NULL;
END
$$;
CREATE TRIGGER attack_probe AFTER INSERT OR UPDATE OR DELETE ON capaccess.customer
	FOR EACH ROW EXECUTE FUNCTION attack_probe_row();

-- The database of part 9, created here while we are the superuser.
CREATE DATABASE capaccess_attack_squat;
CREATE ROLE capaccess_atk_squatter LOGIN;
GRANT CREATE ON DATABASE capaccess_attack_squat TO capaccess_atk_squatter;

-- ======================================================================
-- The administrator (no superuser): customers, and the text attacks
-- ======================================================================
\c - capaccess_atk_admin
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SELECT customer_id, cap, used, access, clock FROM capaccess_register(1101, 10, 'silver');
SELECT customer_id, cap FROM capaccess_register(1102, 5, 'bronze');
SELECT customer_id, cap FROM capaccess_register(1103, 100, 'gold');
SELECT customer_id, cap FROM capaccess_register(1104, 100, 'gold');
SELECT customer_id, cap FROM capaccess_register(1120, 9223372036854775807, 'max');
SELECT customer_id, cap FROM capaccess_register(1121, 10, 'ten');
-- ids at the ends of bigint, and zero
SELECT customer_id FROM capaccess_register(9223372036854775807, 5, 'top');
SELECT customer_id FROM capaccess_register(-9223372036854775808, 5, 'bottom');
SELECT customer_id FROM capaccess_register(0, 5, 'zero');

-- Part 6: access texts that look like SQL, or could trip quoting, escaping,
-- encodings or format strings.  Each is stored byte for byte: what
-- register returns, and what peek reads back from the table, equals it.
CREATE TEMP TABLE texts (n int, t text);
INSERT INTO texts VALUES
	(0, $t$'); DROP TABLE capaccess.customer; --$t$),
	(1, $t$' OR '1'='1$t$),
	(2, $t$"; SELECT pg_sleep(100); --$t$),
	(3, $t$O'Reilly "double" 'single' `back`$t$),
	(4, E'back\\slash\\ at the end\\'),
	(5, $t$\x00\000\u0000 \\ \'$t$),
	(6, E'ünïcødé ✓ 日本語 🎉 \u202Ertl\u202C zero\u200Bwidth \U0001F600'),
	(7, E'line\nbreak\ttab\rcr'),
	(8, ''),
	(9, '%s%n%x%p%%'),
	(10, $t$$1 $$ $q$ :'var' OPERATOR(pg_catalog.+)$t$),
	(11, repeat('€', 16)),             -- 48 bytes: fits the slot cache
	(12, repeat('€', 16) || 'x');      -- 49 bytes: too long for the cache
SELECT n, r.access = t AS register_returns_it, octet_length(r.access) AS bytes
  FROM texts, capaccess_register(1150 + n, 1, t) r ORDER BY n;
SELECT n, p.access = t AS stored_verbatim
  FROM texts, capaccess_peek(1150 + n) p ORDER BY n;
-- the same texts through the row form of update, and back through peek
SELECT n, u.updated, u.access = reverse(t) AS returned
  FROM texts, capaccess_update(1150 + n, 0, NULL, reverse(t)) u ORDER BY n;
SELECT n, p.access = reverse(t) AS stored_verbatim
  FROM texts, capaccess_peek(1150 + n) p ORDER BY n;
-- and through the jsonb form, built with jsonb_build_object
SELECT n, (capaccess_update(jsonb_build_object('customer_id', 1150 + n),
                            jsonb_build_object('access', t))) ->> 'access' = t AS returned
  FROM texts ORDER BY n;
SELECT n, p.access = t AS stored_verbatim
  FROM texts, capaccess_peek(1150 + n) p ORDER BY n;
-- a refusal answers with the whole access text, whether the slot cache
-- can hold it (48 bytes) or not (49 bytes)
SELECT n, u.updated, u.reason, u.access = t AS whole_text
  FROM texts, capaccess_update(1150 + n, 2) u WHERE n IN (11, 12) ORDER BY n;

-- JSON escapes written by hand: decoded once, and stored as decoded
SELECT capaccess_update('{"customer_id": 1150}'::jsonb,
                        '{"access": "q\"uote \\back \/slash \u00e9 \ud83c\udf89 \t"}'::jsonb) ->> 'access'
       = E'q"uote \\back /slash é 🎉 \t' AS decoded;
SELECT access = E'q"uote \\back /slash é 🎉 \t' AS stored FROM capaccess_peek(1150);
-- \u0000 cannot be in a text: the jsonb input itself refuses it, before
-- capaccess is called
SELECT capaccess_update('{"customer_id": 1150}'::jsonb, '{"access": "a\u0000b"}'::jsonb);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT access = E'q"uote \\back /slash é 🎉 \t' AS unchanged FROM capaccess_peek(1150);

-- Keys and values of the wrong kind: each refused (SQLSTATE shown), or
-- accepted when it means a whole number.  Customer 1101's clock before:
SELECT clock FROM capaccess_peek(1101);
SELECT s, pg_temp.try(s) FROM (VALUES
	-- a duplicated key: jsonb keeps the last one, so 1102 is meant
	('SELECT capaccess_update(''{"customer_id": 1101, "customer_id": 1102}''::jsonb, ''{"consume": 0}''::jsonb)'),
	-- nested objects and arrays, booleans, and numbers as strings (whole
	-- ones are taken: JavaScript cannot write a bigint as a JSON number)
	('SELECT capaccess_update(''{"customer_id": {"customer_id": 1101}}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": [1101]}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": "1101"}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": true}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": "1"}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": false}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": {"n": 1}}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"cap": "100"}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"access": ["gold"]}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"access": {"level": "gold"}}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"access": 7}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"data": {"consume": 1}}''::jsonb)'),
	-- keys that differ from the real ones by case or a space
	('SELECT capaccess_update(''{"Customer_id": 1101}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume ": 1}''::jsonb)'),
	-- huge numbers: 22023, naming the key
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": 1e30}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 9223372036854775808}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"cap": 9223372036854775808}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": -9223372036854775809}''::jsonb)'),
	-- fractions: 22023, however small the fraction
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": 0.5}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": 1.00000000000000000001}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101.5}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"cap": 1e-3}''::jsonb)'),
	-- the whole of jsonb: a scalar or an array is not an object
	('SELECT capaccess_update(''1101''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''[]''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''"consume"''::jsonb)'),
	-- strings that are not a bigint in decimal digits
	('SELECT capaccess_update(''{"customer_id": "1101.0"}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": " 1101"}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": "+1101"}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": "-"}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": ""}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": "0x1f"}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"cap": "9223372036854775808"}''::jsonb)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": "-9223372036854775809"}''::jsonb)'),
	-- data that names nothing to change: JSON.stringify({consume: undefined})
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{}''::jsonb)')
) v(s);
-- of those, only the three whole numbers written as strings wrote to 1101
-- (clock 3); the duplicated key moved 1102's clock once
SELECT clock FROM capaccess_peek(1101);
SELECT clock FROM capaccess_peek(1102);
-- whole numbers in other spellings are whole numbers: 1.0, 1e0, 2E+1,
-- -0, and an escaped key that decodes to "customer_id"
SELECT capaccess_update('{"customer_id": 1.198e3}'::jsonb, '{"consume": 0}'::jsonb) ->> 'reason' AS no_customer_1198;
SELECT capaccess_update('{"customer_id": 1101}'::jsonb, '{"consume": 1.0}'::jsonb) -> 'used' AS used;
SELECT capaccess_update('{"customer_id": 1101}'::jsonb, '{"consume": 1e0}'::jsonb) -> 'used' AS used;
SELECT capaccess_update('{"customer_id": 1101}'::jsonb, '{"consume": -0, "cap": 2E+1}'::jsonb) -> 'cap' AS cap;
SELECT capaccess_update('{"c\u0075stomer_id": 1101}'::jsonb, '{"consume": -2, "cap": 10.000}'::jsonb) -> 'cap' AS cap;
SELECT used, cap, clock FROM capaccess_peek(1101);
-- and bigints as strings, exact at both ends of the range
SELECT capaccess_update('{"customer_id": "1101"}'::jsonb,
                        '{"consume": "-1", "cap": "9223372036854775807"}'::jsonb)
       - 'seq' - 'state_hash' AS as_strings;
SELECT capaccess_update('{"customer_id": "-9223372036854775808"}'::jsonb,
                        '{"consume": "0"}'::jsonb) -> 'updated' AS min_bigint_id_updated;
SELECT capaccess_update('{"customer_id": 1101}'::jsonb, '{"cap": 20}'::jsonb) -> 'cap' AS cap;

-- Part 7 (the administrator's half): the cap at the top of bigint
SELECT capaccess_update('{"customer_id": 1121}'::jsonb, '{"cap": 9223372036854775807}'::jsonb) -> 'cap' AS cap;
SELECT updated, cap FROM capaccess_update(1121, 0, 10);

-- Part 8: the access text is at most 1024 bytes, counted in bytes.
SELECT customer_id, octet_length(access) FROM capaccess_register(1130, 1, repeat('a', 1024));
SELECT customer_id FROM capaccess_register(1131, 1, repeat('a', 1025));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT customer_id FROM capaccess_register(1131, 1, repeat('€', 342));  -- 1026 bytes
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT customer_id, octet_length(access) FROM capaccess_register(1131, 1, repeat('€', 341) || 'a');  -- 1024
SELECT updated, octet_length(access) FROM capaccess_update(1130, 0, NULL, repeat('b', 1024));
SELECT updated FROM capaccess_update(1130, 0, NULL, repeat('b', 1025));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated FROM capaccess_update(1130, 0, NULL, repeat('€', 342));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT octet_length(capaccess_update('{"customer_id": 1130}'::jsonb,
       jsonb_build_object('access', repeat('c', 1024))) ->> 'access') AS bytes;
SELECT capaccess_update('{"customer_id": 1130}'::jsonb, jsonb_build_object('access', repeat('c', 1025)));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT capaccess_update('{"customer_id": 1130}'::jsonb, jsonb_build_object('access', repeat('€', 342)));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- an escape that decodes to more than 1024 bytes is counted decoded:
-- 342 \u20ac are 2052 characters of JSON but 1026 bytes of text
SELECT capaccess_update('{"customer_id": 1130}'::jsonb,
       ('{"access": "' || repeat('\u20ac', 342) || '"}')::jsonb);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- a huge value, compressed in a table: refused from its size alone
CREATE TEMP TABLE big AS SELECT repeat('z', 1000000) AS t;
SELECT customer_id FROM big, capaccess_register(1132, 1, big.t);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated FROM big, capaccess_update(1130, 0, NULL, big.t);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- a jsonb argument above 8192 bytes: 54000, whichever argument, before
-- its keys are looked at
SELECT capaccess_update('{"customer_id": 1130}'::jsonb, jsonb_build_object('access', repeat('x', 9000)));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT capaccess_update(jsonb_build_object('customer_id', 1130, 'pad', repeat('x', 9000)), '{}'::jsonb);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT capaccess_update('{"customer_id": 1130}'::jsonb, (SELECT jsonb_build_object('access', t) FROM big));
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- nothing of that was written
SELECT octet_length(access) AS bytes, clock FROM capaccess_peek(1130);
SELECT count(*) AS not_registered FROM capaccess_peek(1132);

-- ======================================================================
-- The application role: rights, direct access, decoys, traps, extremes
-- ======================================================================
\c - capaccess_atk_app
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Part 1: every function but capaccess_consume is refused
SELECT s, pg_temp.try(s) FROM (VALUES
	('SELECT capaccess_update(1101, 1)'),
	('SELECT capaccess_update(1101, 0, 1000000)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"cap": 1000000}''::jsonb)'),
	('SELECT capaccess_register(1199, 1000000)'),
	('SELECT capaccess_unregister(1101)'),
	('SELECT capaccess_reset(1101)'),
	('SELECT capaccess_reset_all()'),
	('SELECT capaccess_peek(1101)'),
	('SELECT capaccess_verify()'),
	('SELECT capaccess_stats_reset()'),
	('SELECT capaccess_stats()'),
	('SELECT capaccess_counters()'),
	('SELECT capaccess_gates()'),
	('SELECT capaccess_blocking_pids(pg_backend_pid())')
) v(s);

-- Part 2: consume and refund, and nothing else
SELECT updated, reason, used, cap, access, clock, seq IS NOT NULL AS has_seq,
       state_hash = capaccess.state_hash(1101, clock, used, cap, access) AS hash_ok
  FROM capaccess_consume(1101, 3);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1101, -2);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1101);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1101, 100);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1101, -100);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1199);
-- capaccess_update's other arguments do not exist on capaccess_consume
SELECT * FROM capaccess_consume(1101, 0, 1000000);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT * FROM capaccess_consume(1101, new_cap => 1000000);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT * FROM capaccess_consume(customer_id => 1101, new_access => 'platinum');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT * FROM capaccess_consume(NULL);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- nor can it grant itself more
GRANT EXECUTE ON FUNCTION capaccess_update(bigint, bigint, bigint, text) TO capaccess_atk_app;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT has_function_privilege('capaccess_update(bigint, bigint, bigint, text)', 'EXECUTE') AS may_update,
       has_function_privilege('capaccess_update(jsonb, jsonb)', 'EXECUTE') AS may_update_jsonb,
       has_function_privilege('capaccess_reset(bigint, bigint)', 'EXECUTE') AS may_reset;

-- Part 3: the table and the sequence, directly; their definitions; the
-- superuser-only settings
SELECT s, pg_temp.try(s) FROM (VALUES
	('SELECT * FROM capaccess.customer'),
	('SELECT count(*) FROM capaccess.customer'),
	('INSERT INTO capaccess.customer VALUES (1199, 1000000, 0, ''x'', 0, NULL, 0, NULL)'),
	('UPDATE capaccess.customer SET cap = 1000000 WHERE customer_id = 1101'),
	('UPDATE capaccess.customer SET access = ''platinum'''),
	('DELETE FROM capaccess.customer WHERE customer_id = 1101'),
	('TRUNCATE capaccess.customer'),
	('LOCK TABLE capaccess.customer IN ACCESS EXCLUSIVE MODE'),
	('SELECT nextval(''capaccess.seq'')'),
	('SELECT capaccess.next_seq()'),
	('SELECT setval(''capaccess.seq'', 1)'),
	('SELECT currval(''capaccess.seq'')'),
	('SELECT last_value FROM capaccess.seq'),
	('ALTER SEQUENCE capaccess.seq RESTART'),
	('ALTER TABLE capaccess.customer DISABLE TRIGGER ALL'),
	('ALTER TABLE capaccess.customer DROP CONSTRAINT access_max_length'),
	('CREATE TRIGGER t BEFORE UPDATE ON capaccess.customer FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()'),
	('CREATE TABLE capaccess.mine (x int)'),
	('CREATE OR REPLACE FUNCTION capaccess.state_hash(bigint, bigint, bigint, bigint, text) RETURNS bigint LANGUAGE sql AS ''SELECT 0::bigint'''),
	('CREATE FUNCTION public.capaccess_consume(bigint) RETURNS void LANGUAGE sql AS '''''),
	('ALTER FUNCTION capaccess_consume(bigint, bigint) SECURITY DEFINER'),
	('DROP FUNCTION capaccess_update(bigint, bigint, bigint, text)'),
	('ALTER EXTENSION capaccess UPDATE'),
	('DROP EXTENSION capaccess'),
	('SET session_replication_role = replica'),
	('SET capaccess.max_gates_per_transaction = 1000000'),
	('SET capaccess.idle_holder_timeout = 0'),
	('SET capaccess.deadlock_walk_delay = 1000')
) v(s);
COPY capaccess.customer TO STDOUT;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
ALTER SYSTEM SET capaccess.idle_holder_timeout = 0;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;

-- Part 4: decoys, in a schema the role owns and in pg_temp.  Each logs its
-- call into atk_app.decoy_calls and raises a warning.  The application
-- role lets everybody use them, as an attacker would.
CREATE TABLE atk_app.decoy_calls (decoy text, run_as name);
GRANT USAGE ON SCHEMA atk_app TO PUBLIC;
GRANT INSERT, SELECT ON atk_app.decoy_calls TO PUBLIC;
CREATE FUNCTION atk_app.logged(decoy text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO atk_app.decoy_calls VALUES (decoy, current_user);
	RAISE WARNING 'decoy % ran as %', decoy, current_user;
END
$$;
CREATE FUNCTION atk_app.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('nextval(regclass)'); RETURN 42; END $$;
CREATE FUNCTION atk_app.nextval(text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('nextval(text)'); RETURN 42; END $$;
CREATE FUNCTION atk_app.state_hash(bigint, bigint, bigint, bigint, text) RETURNS bigint
	LANGUAGE plpgsql AS $$ BEGIN PERFORM atk_app.logged('state_hash'); RETURN 0; END $$;
CREATE FUNCTION atk_app.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION atk_app."coalesce"(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('coalesce(bigint)'); RETURN 1000000; END $$;
CREATE FUNCTION atk_app."coalesce"(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('coalesce(text)'); RETURN 'platinum'; END $$;
CREATE FUNCTION atk_app.octet_length(text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('octet_length'); RETURN 0; END $$;
CREATE FUNCTION atk_app.format(text, text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('format'); RETURN 'fine'; END $$;
-- operators that would turn the UPDATE's arithmetic and its checks around
CREATE FUNCTION atk_app.plus(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('+(bigint,bigint)'); RETURN 0; END $$;
CREATE FUNCTION atk_app.plus4(bigint, integer) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('+(bigint,integer)'); RETURN 0; END $$;
CREATE FUNCTION atk_app.always(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('comparison(bigint,bigint)'); RETURN true; END $$;
CREATE FUNCTION atk_app.always_tid(tid, tid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM atk_app.logged('=(tid,tid)'); RETURN true; END $$;
CREATE OPERATOR atk_app.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk_app.plus);
CREATE OPERATOR atk_app.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = atk_app.plus4);
CREATE OPERATOR atk_app.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk_app.always);
CREATE OPERATOR atk_app.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk_app.always);
CREATE OPERATOR atk_app.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk_app.always);
CREATE OPERATOR atk_app.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk_app.always);
CREATE OPERATOR atk_app.<> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = atk_app.always);
CREATE OPERATOR atk_app.= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = atk_app.always_tid);
-- tables named like the extension's, holding a tempting row
CREATE TABLE atk_app.customer (customer_id bigint, cap bigint, used bigint,
	access text, clock bigint, seq bigint, state_hash bigint, updated_at timestamptz);
INSERT INTO atk_app.customer VALUES (1102, 1000000, 0, 'platinum', 0, NULL, 0, NULL);
CREATE TABLE atk_app.seq (last_value bigint);
INSERT INTO atk_app.seq VALUES (42);
GRANT ALL ON atk_app.customer, atk_app.seq TO PUBLIC;
CREATE TEMP TABLE customer (LIKE atk_app.customer);
INSERT INTO customer SELECT * FROM atk_app.customer;
CREATE TEMP TABLE seq (last_value bigint);
INSERT INTO seq VALUES (42);

-- The decoys are live: with pg_catalog last on the path they capture the
-- role's own unqualified queries (in a transaction that is rolled back, so
-- that their log stays empty).
SET search_path = atk_app, pg_temp, public, pg_catalog;
BEGIN;
SELECT 2::bigint + 2::bigint AS two_plus_two, 1::bigint = 2::bigint AS one_is_two,
       nextval('capaccess.seq') AS next, now() AS now;
SELECT cap, access FROM customer WHERE customer_id = 1102::bigint;
SELECT count(*) AS decoy_calls FROM atk_app.decoy_calls;
ROLLBACK;
SELECT count(*) AS decoy_calls FROM atk_app.decoy_calls;

-- Customer 1102 (cap 5, clock 1 from the duplicated key above) under each
-- hostile path.  Only columns are printed: an operator in these queries
-- would itself be captured.
SET search_path = atk_app, pg_temp, public;
SELECT updated, reason, used, cap, access, clock, seq IS NOT NULL AS has_seq
  FROM capaccess_consume(1102, 1);
SET search_path = atk_app, pg_temp, public, pg_catalog;
SELECT updated, reason, used, cap, access, clock, seq IS NOT NULL AS has_seq
  FROM capaccess_consume(1102, 2);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, 3);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, -4);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1198, 1);
SET search_path = pg_temp, atk_app, public, pg_catalog;
SET plan_cache_mode = force_custom_plan;
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, 4);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, 1);
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, -1);
RESET plan_cache_mode;
SET search_path = pg_temp, public, pg_catalog;
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, -2);
-- in a transaction, with SET LOCAL, after a failed call and a savepoint
BEGIN;
SET LOCAL search_path = atk_app, pg_temp, public, pg_catalog;
SAVEPOINT a;
\set VERBOSITY terse
SELECT * FROM capaccess_consume(1102, 9223372036854775807);
\set VERBOSITY default
ROLLBACK TO SAVEPOINT a;
SELECT updated, reason, used, cap, access, clock FROM capaccess_consume(1102, 1);
COMMIT;
-- from a function of the attacker's that carries its own search_path
CREATE FUNCTION atk_app.consume_via(id bigint, n bigint) RETURNS text
	LANGUAGE plpgsql SET search_path = atk_app, pg_temp, public, pg_catalog AS $$
DECLARE r record;
BEGIN
	SELECT * INTO r FROM public.capaccess_consume(id, n);
	RETURN pg_catalog.format('%s %s %s %s', r.updated, r.reason, r.used, r.clock);
END
$$;
SELECT atk_app.consume_via(1102, 1);
SELECT atk_app.consume_via(1102, 5);
-- the search_path set before the calls is the one in force after them
SHOW search_path;
RESET search_path;
-- never run, and untouched
SELECT count(*) AS decoy_calls FROM atk_app.decoy_calls;
SELECT * FROM atk_app.customer;
SELECT * FROM pg_temp.customer;
SELECT * FROM atk_app.seq;
SELECT * FROM pg_temp.seq;

-- Part 5: the overload trap.  Functions of the attacker's named like
-- capaccess's, but with integer arguments, log their calls and pretend.
CREATE TABLE atk_app.trap_calls (trap text, run_as name);
GRANT INSERT, SELECT ON atk_app.trap_calls TO PUBLIC;
CREATE FUNCTION atk_app.capaccess_consume(customer_id integer, consume integer)
	RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO atk_app.trap_calls VALUES ('capaccess_consume(integer, integer)', current_user);
	RETURN 'trapped';
END
$$;
CREATE FUNCTION atk_app.capaccess_update(customer_id integer, consume integer)
	RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO atk_app.trap_calls VALUES ('capaccess_update(integer, integer)', current_user);
	RETURN 'trapped';
END
$$;
GRANT EXECUTE ON FUNCTION atk_app.capaccess_update(integer, integer) TO PUBLIC;
-- The hazard: integer literals are an exact match for the trap, which wins
-- over capaccess's bigint function wherever the trap's schema is on the
-- path, even after public.
SET search_path = atk_app, public;
SELECT capaccess_consume(1104, 1) AS with_integer_literals;
SELECT capaccess_consume(customer_id => 1104, consume => 1) AS named;
SET search_path = public, atk_app;
SELECT capaccess_consume(1104, 1) AS trap_after_public;
-- The avoidance: qualify the name, or pass bigints
SELECT updated, used, clock FROM public.capaccess_consume(1104, 1);
SELECT updated, used, clock FROM capaccess_consume(1104::bigint, 1::bigint);
SELECT updated, used, clock FROM capaccess_consume(1104::bigint, 1);
SELECT updated, used, clock FROM capaccess_consume(1104);
RESET search_path;
SELECT trap, run_as FROM atk_app.trap_calls;

-- Part 7: bigint extremes through consume.  1120's cap is the largest
-- bigint.  (Terse errors: their context would print capaccess's UPDATE.)
\set VERBOSITY terse
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1120, 9223372036854775807);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1120, 1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1120, -9223372036854775808);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1120, -9223372036854775807);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1120, -1);
-- 1121: cap 10
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, 9223372036854775807);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, -9223372036854775808);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, 5);
-- used + consume overflows: an error, whether or not the cache could refuse
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, 9223372036854775807);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, 9223372036854775803);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, -9223372036854775808);
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1121, -5);
-- 1122: the clock is at its limit (set in the setup): every accepted
-- update would overflow it
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1122, 1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1122, 0);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT updated, reason, used, cap, clock FROM capaccess_consume(1122, 11);
-- the ids at the ends of bigint are customers like any other
SELECT updated, reason, used, clock FROM capaccess_consume(9223372036854775807, 5);
SELECT updated, reason, used, clock FROM capaccess_consume(9223372036854775807, 1);
SELECT updated, reason, used, clock FROM capaccess_consume(-9223372036854775808, 5);
SELECT updated, reason, used, clock FROM capaccess_consume(-9223372036854775808, 1);
SELECT updated, reason, used, clock FROM capaccess_consume(0, 1);
SELECT updated, reason, used, clock FROM capaccess_consume(-1, 1);

\set VERBOSITY default

-- ======================================================================
-- The reader: peek only, also under the attacker's path
-- ======================================================================
\c - capaccess_atk_reader
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT s, pg_temp.try(s) FROM (VALUES
	('SELECT capaccess_consume(1101, 1)'),
	('SELECT capaccess_consume(1101, -1)'),
	('SELECT capaccess_update(1101, 0)'),
	('SELECT capaccess_update(''{"customer_id": 1101}''::jsonb, ''{"consume": 0}''::jsonb)'),
	('SELECT capaccess_reset(1101)'),
	('SELECT capaccess_verify()'),
	('SELECT capaccess_gates()'),
	('SELECT capaccess_stats()'),
	('SELECT * FROM capaccess.customer')
) v(s);
SET search_path = atk_app, pg_temp, public, pg_catalog;
SELECT used, cap, remaining, access, clock, seq IS NOT NULL AS has_seq FROM capaccess_peek(1101);
SELECT used, cap, remaining, access, clock FROM capaccess_peek(1102);
SELECT used, cap, remaining, access, clock FROM capaccess_peek(1120);
SELECT used, cap, remaining, access, clock FROM capaccess_peek(1122);
SELECT used, cap, remaining, clock FROM capaccess_peek(9223372036854775807);
SELECT used, cap, remaining, clock FROM capaccess_peek(-9223372036854775808);
SELECT count(*) AS no_such_customer FROM capaccess_peek(1198);
RESET search_path;
SELECT count(*) AS decoy_calls FROM atk_app.decoy_calls;

-- ======================================================================
-- The monitor: what pg_monitor grants, and nothing more
-- ======================================================================
\c - capaccess_atk_monitor
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT count(*) > 10 AS counters FROM capaccess_counters();
SELECT count(*) AS gates_held FROM capaccess_gates();
SELECT capaccess_blocking_pids(pg_backend_pid()) AS blocking;
SELECT s, pg_temp.try(s) FROM (VALUES
	('SELECT capaccess_consume(1101, 1)'),
	('SELECT capaccess_peek(1101)'),
	('SELECT capaccess_verify()'),
	('SELECT capaccess_stats()'),
	('SELECT capaccess_stats_reset()'),
	('SELECT capaccess_update(1101, 0)'),
	('SELECT capaccess_reset_all()')
) v(s);

-- ======================================================================
-- A role with nothing
-- ======================================================================
\c - capaccess_atk_nobody
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT s, pg_temp.try(s) FROM (VALUES
	('SELECT capaccess_stats()'),
	('SELECT capaccess_counters()'),
	('SELECT capaccess_gates()'),
	('SELECT capaccess_blocking_pids(pg_backend_pid())'),
	('SELECT capaccess_consume(1101, 1)'),
	('SELECT capaccess_peek(1101)'),
	('SELECT capaccess_verify()')
) v(s);

-- ======================================================================
-- The administrator again, on the attacker's path
-- ======================================================================
\c - capaccess_atk_admin
-- Part 4 for the administrator's functions: every one of them exact, and
-- no decoy run.  Results are printed as plain columns.
SET search_path = atk_app, pg_temp, public, pg_catalog;
SELECT customer_id, cap, used, access, clock FROM capaccess_register(1105, 7, 'new');
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1105::bigint, 2::bigint);
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1105::bigint, 0::bigint, 3::bigint, 'changed');
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1105::bigint, 2::bigint);
SELECT capaccess_update('{"customer_id": 1105}'::jsonb, '{"consume": -1, "cap": 9}'::jsonb) - 'seq' AS result;
SELECT updated, reason, used, cap, access, clock FROM capaccess_reset(1105, 5);
SELECT used, cap, remaining, access, clock FROM capaccess_peek(1105);
SELECT * FROM capaccess_verify();
SELECT capaccess_unregister(1105) AS gone, capaccess_unregister(1105) AS gone_again;
SELECT count(*) AS no_row FROM capaccess_peek(1105);
-- Part 5 for the administrator: the trap runs with the administrator's
-- rights when the attacker's schema is on its path and the call uses
-- integer literals; qualified, or with bigints, capaccess answers.
SELECT capaccess_update(1103, 0) AS with_integer_literals;
SELECT updated, used, clock FROM public.capaccess_update(1103, 0);
SELECT updated, used, clock FROM capaccess_update(1103::bigint, 0);
SELECT updated, used, clock FROM capaccess_update(1103, 0, 100);
RESET search_path;
SELECT trap, run_as FROM atk_app.trap_calls ORDER BY trap;
SELECT count(*) AS decoy_calls FROM atk_app.decoy_calls;

-- ======================================================================
-- Checks, as the superuser
-- ======================================================================
\c - :su
-- the table is there, with its definition, its rows and its privileges
SELECT count(*) AS columns FROM pg_attribute
 WHERE attrelid = 'capaccess.customer'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT c.oid::regclass AS relation, count(a.grantee) AS granted_to_others
  FROM pg_class c LEFT JOIN LATERAL aclexplode(c.relacl) a ON a.grantee <> c.relowner
 WHERE c.oid IN ('capaccess.customer'::regclass, 'capaccess.seq'::regclass)
 GROUP BY c.oid ORDER BY c.oid::regclass::text;
SELECT conname, convalidated FROM pg_constraint
 WHERE conrelid = 'capaccess.customer'::regclass
   AND contype <> 'n'		-- 18 lists NOT NULL constraints here too
 ORDER BY conname;
SELECT customer_id, cap, used, clock, octet_length(access) AS access_bytes,
       left(access, 10) AS access_start
  FROM capaccess.customer
 WHERE customer_id BETWEEN 1100 AND 1199 OR customer_id IN (-9223372036854775808, 0, 9223372036854775807)
 ORDER BY customer_id;
SELECT * FROM capaccess_verify();
SELECT slots_held FROM capaccess_stats();
-- Who may run which function: the owner, what the setup granted, and
-- pg_monitor's three; PUBLIC only the hash functions (proacl NULL).
SELECT p.oid::regprocedure AS function,
       string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                       WHEN a.grantee = p.proowner THEN 'owner'
                       ELSE a.grantee::regrole::text END, ', '
                  ORDER BY CASE WHEN a.grantee = p.proowner THEN '' ELSE a.grantee::regrole::text END) AS may_execute
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid,
       aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'capaccess')
   AND d.deptype = 'e' AND a.privilege_type = 'EXECUTE'
 GROUP BY p.oid
 ORDER BY p.oid::regprocedure::text;
-- No decoy ever ran.  The traps ran only when called unqualified with
-- integers, each as its caller.
SELECT count(*) AS decoy_calls FROM atk_app.decoy_calls;
SELECT trap, run_as, count(*) FROM atk_app.trap_calls GROUP BY 1, 2 ORDER BY 1, 2;
-- Every row the functions wrote, from every role's session, was written
-- as the table's owner under search_path = pg_catalog, pg_temp.
SELECT who, op, search_path, run_as = :'su' AS as_owner, count(*)
  FROM attack_probe GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;

-- Clean up this database's part
DROP TRIGGER attack_probe ON capaccess.customer;
DROP FUNCTION attack_probe_row();
DROP TABLE attack_probe;
SELECT count(*) FILTER (WHERE capaccess_unregister(customer_id)) AS unregistered
  FROM (SELECT customer_id FROM capaccess.customer
         WHERE customer_id BETWEEN 1100 AND 1199
            OR customer_id IN (-9223372036854775808, 0, 9223372036854775807)) c;
SET client_min_messages = warning;
DROP SCHEMA atk_app CASCADE;
RESET client_min_messages;
REVOKE ALL ON FUNCTION capaccess_consume(bigint, bigint) FROM capaccess_atk_app;
REVOKE ALL ON FUNCTION capaccess_peek(bigint) FROM capaccess_atk_reader;
REVOKE ALL ON FUNCTION capaccess_register(bigint, bigint, text),
                       capaccess_update(bigint, bigint, bigint, text),
                       capaccess_update(jsonb, jsonb),
                       capaccess_unregister(bigint),
                       capaccess_reset(bigint, bigint),
                       capaccess_reset_all(bigint),
                       capaccess_peek(bigint),
                       capaccess_verify(),
                       capaccess_stats_reset()
   FROM capaccess_atk_admin;
REVOKE USAGE ON SCHEMA capaccess FROM capaccess_atk_app;
DROP ROLE capaccess_atk_app, capaccess_atk_reader, capaccess_atk_monitor,
          capaccess_atk_admin, capaccess_atk_nobody;

-- ======================================================================
-- Part 9: objects squatting on the extension's names, in a database of
-- its own.  A role without superuser creates them; CREATE EXTENSION of a C
-- extension needs the superuser, so an administrator runs it here.
-- ======================================================================
\c capaccess_attack_squat :su
-- PostgreSQL 18 adds the script's statement to an error in an extension
-- script as CONTEXT; the errors themselves are what this part compares.
\set SHOW_CONTEXT never
GRANT CREATE ON SCHEMA public TO capaccess_atk_squatter;

-- a) the schema capaccess, with a table customer and a state_hash of its own
\c - capaccess_atk_squatter
CREATE SCHEMA capaccess;
CREATE TABLE capaccess.customer (customer_id bigint, note text);
CREATE FUNCTION capaccess.state_hash(bigint, bigint, bigint, bigint, text)
	RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
\c - :su
CREATE EXTENSION capaccess;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT count(*) AS extension FROM pg_extension WHERE extname = 'capaccess';
SELECT nspowner::regrole AS schema_owner FROM pg_namespace WHERE nspname = 'capaccess';
SELECT relname, relowner::regrole, relnatts FROM pg_class
 WHERE relnamespace = 'capaccess'::regnamespace ORDER BY relname;
SELECT oid::regprocedure, proowner::regrole, prosrc FROM pg_proc
 WHERE pronamespace = 'capaccess'::regnamespace;
SELECT count(*) AS functions_left_behind FROM pg_proc WHERE proname LIKE 'capaccess%';
SET client_min_messages = warning;
DROP SCHEMA capaccess CASCADE;
RESET client_min_messages;

-- b) the row form of capaccess_update, in public
\c - capaccess_atk_squatter
CREATE FUNCTION public.capaccess_update(bigint, bigint, bigint, text)
	RETURNS text LANGUAGE sql AS $$SELECT 'squatted'$$;
\c - :su
CREATE EXTENSION capaccess;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT count(*) AS extension FROM pg_extension WHERE extname = 'capaccess';
SELECT count(*) AS schema_left_behind FROM pg_namespace WHERE nspname = 'capaccess';
SELECT oid::regprocedure, proowner::regrole, prorettype::regtype, prosrc FROM pg_proc
 WHERE proname LIKE 'capaccess%';
DROP FUNCTION public.capaccess_update(bigint, bigint, bigint, text);

-- c) capaccess_peek, which only version 1.1 creates: the default version
-- fails; 1.0 installs, and its update to 1.1 fails and stays at 1.0
\c - capaccess_atk_squatter
CREATE FUNCTION public.capaccess_peek(bigint) RETURNS text LANGUAGE sql AS $$SELECT 'squatted'$$;
\c - :su
SELECT default_version FROM pg_available_extensions WHERE name = 'capaccess';
CREATE EXTENSION capaccess;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT count(*) AS extension FROM pg_extension WHERE extname = 'capaccess';
CREATE EXTENSION capaccess VERSION '1.0';
ALTER EXTENSION capaccess UPDATE;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT extversion FROM pg_extension WHERE extname = 'capaccess';
SELECT oid::regprocedure, proowner::regrole, prosrc,
       EXISTS (SELECT FROM pg_depend WHERE objid = p.oid AND deptype = 'e') AS member
  FROM pg_proc p WHERE proname = 'capaccess_peek';
DROP EXTENSION capaccess;
DROP FUNCTION public.capaccess_peek(bigint);

-- d) a table named like a function, capaccess_gates: tables and functions
-- do not share names, and the function makes no row type, so nothing
-- clashes.  CREATE EXTENSION succeeds; the table stays the squatter's,
-- not the extension's, and each name means what it meant.
\c - capaccess_atk_squatter
CREATE TABLE public.capaccess_gates (note text);
INSERT INTO public.capaccess_gates VALUES ('squatted');
\c - :su
CREATE EXTENSION capaccess;
SELECT extversion FROM pg_extension WHERE extname = 'capaccess';
SELECT c.relowner::regrole AS table_owner,
       EXISTS (SELECT FROM pg_depend WHERE objid = c.oid AND deptype = 'e') AS member
  FROM pg_class c WHERE c.oid = 'public.capaccess_gates'::regclass;
SELECT * FROM public.capaccess_gates;
SELECT count(*) AS gates FROM public.capaccess_gates();
DROP EXTENSION capaccess;
SELECT * FROM public.capaccess_gates;

-- e) an overload with integer arguments is no clash either: CREATE
-- EXTENSION succeeds beside it, and it stays the squatter's trap (part 5)
\c - capaccess_atk_squatter
CREATE FUNCTION public.capaccess_consume(integer, integer) RETURNS text
	LANGUAGE sql AS $$SELECT 'trapped'$$;
\c - :su
CREATE EXTENSION capaccess;
SELECT extversion FROM pg_extension WHERE extname = 'capaccess';
SELECT p.oid::regprocedure, p.proowner::regrole = 'capaccess_atk_squatter'::regrole AS squatters,
       EXISTS (SELECT FROM pg_depend WHERE objid = p.oid AND deptype = 'e') AS member
  FROM pg_proc p WHERE proname = 'capaccess_consume' ORDER BY p.oid::regprocedure::text;
SELECT capaccess_consume(1, 1) AS integer_literals;
DROP EXTENSION capaccess;

\set SHOW_CONTEXT errors
\c :db :su
DROP DATABASE capaccess_attack_squat WITH (FORCE);
DROP ROLE capaccess_atk_squatter;
