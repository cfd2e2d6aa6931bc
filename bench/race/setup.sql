-- Race demo: one customer, 1000 clients.  Run against a database where
-- CREATE EXTENSION capaccess has been done.
SET client_min_messages = warning;
DROP TABLE IF EXISTS race_plain, race_log;

-- (a) the "before" data layer's own table: one customer row
CREATE TABLE race_plain (customer_id bigint PRIMARY KEY, used bigint NOT NULL);
INSERT INTO race_plain VALUES (1, 0);

-- (b) capaccess: the customer, and a log of every call's result
DELETE FROM capaccess.customer WHERE customer_id = 1;
SELECT customer_id FROM capaccess_register(1, 1000000, 'standard');
CREATE TABLE race_log AS
	SELECT * FROM capaccess_update(1, 0) WITH NO DATA;
