-- Slots are per database and per incarnation of the extension: two
-- databases with the same customer ids, or an extension dropped, re-created
-- and refilled (as a restore does), never share a gate or a cache.
SELECT current_database() AS home \gset
CREATE DATABASE capaccess_scope_other;
\c capaccess_scope_other
CREATE EXTENSION capaccess;
SELECT customer_id FROM capaccess_register(70, 5);
SELECT updated, used, cap FROM capaccess_update(70, 5);
-- refused here, from this database's cache
SELECT updated, reason, used, cap FROM capaccess_update(70, 1);

\c :home
SELECT customer_id FROM capaccess_register(70, 100);
-- accepted here: the other database's cache says nothing about this one
SELECT updated, reason, used, cap FROM capaccess_update(70, 1);
SELECT count(*) FROM capaccess_verify();

-- drop and re-create the extension in the other database, and put the
-- customer back the way pg_restore would, behind the functions' back
\c capaccess_scope_other
SELECT updated, reason, used, cap FROM capaccess_update(70, 1);
DROP EXTENSION capaccess;
CREATE EXTENSION capaccess;
INSERT INTO capaccess.customer
SELECT 70, 100, 0, 'none', 0, NULL, capaccess.state_hash(70, 0, 0, 100, 'none'), now();
-- accepted: the old incarnation's cache (used 5 of 5) is not consulted
SELECT updated, reason, used, cap, clock FROM capaccess_update(70, 1);
SELECT count(*) FROM capaccess_verify();

-- one transaction holds customer 70's gate, then drops and re-creates the
-- extension: the new incarnation's gate is another one, taken anew
BEGIN;
SELECT updated FROM capaccess_update(70, 1);
DROP EXTENSION capaccess;
CREATE EXTENSION capaccess;
SELECT customer_id FROM capaccess_register(70, 5);
SELECT updated, used, clock FROM capaccess_update(70, 1);
SELECT slots_held AS gates_held FROM capaccess_stats();
COMMIT;
SELECT slots_held FROM capaccess_stats();
SELECT count(*) FROM capaccess_verify();

\c :home
DROP DATABASE capaccess_scope_other;
