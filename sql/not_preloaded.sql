-- Without shared_preload_libraries the extension installs, but every
-- function says what is missing (55000) instead of misbehaving.
CREATE EXTENSION capaccess;
SHOW shared_preload_libraries;
SELECT * FROM capaccess_update(1, 1);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT capaccess_update('{"customer_id": 1}'::jsonb, '{"consume": 0}'::jsonb);
SELECT * FROM capaccess_register(1, 10);
SELECT * FROM capaccess_stats();
SELECT * FROM capaccess_verify();
SELECT * FROM capaccess_reset(1);
SELECT capaccess_reset_all();
SELECT capaccess_unregister(1);
-- the pure functions need no shared memory
SELECT capaccess_fnv1a('a'::bytea) = x'e40c292c'::bigint AS fnv1a_ok;
SELECT count(*) FROM capaccess.customer;
DROP EXTENSION capaccess;
