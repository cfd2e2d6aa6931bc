-- Every path of the API, with the default search_path.

-- registering
SELECT customer_id, cap, used, access, clock, seq,
       state_hash = capaccess.state_hash(customer_id, clock, used, cap, access) AS hash_ok
  FROM capaccess_register(1, 10);
SELECT customer_id, cap, used, access, clock FROM capaccess_register(2, 5, 'gold');
SELECT customer_id, cap, used, access, clock FROM capaccess_register(3, 0, '');

-- accepted: used grows, the clock advances by exactly one, seq is new
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1, 3);
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1);
-- up to the cap exactly
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1, 6);

-- rejected: nothing written, the clock stays, the current state is returned
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1, 1);
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1, -11);
SELECT updated, reason, used, cap, access, clock, seq, state_hash
  FROM capaccess_update(999);
SELECT customer_id, used, clock FROM capaccess.customer WHERE customer_id = 1;

-- a refund is accepted, a consume of 0 too (it only moves the clock)
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, -4);
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, 0);

-- a new cap, and a new access level
SELECT updated, reason, used, cap, access, clock FROM capaccess_update(1, 0, 20);
SELECT updated, reason, used, cap, access, clock
  FROM capaccess_update(1, 0, new_access => 'premium');
-- the consume is checked against the new cap, not the old one
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, 10, 12);
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, 6, 12);

-- lowering the cap below used is accepted; then only refunds and changes
-- that consume nothing are, even while over the cap
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, 0, 4);
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, 1);
SELECT updated, reason, used, cap, clock FROM capaccess_update(1, -2);
SELECT updated, reason, used, cap, access, clock
  FROM capaccess_update(1, 0, new_access => 'suspended');
-- a cap of zero refuses any consume
SELECT updated, reason, used, cap, clock FROM capaccess_update(3, 1);

-- seq: one server-wide counter, increasing across customers
CREATE TEMP TABLE seqs AS
SELECT 1 AS n, seq FROM capaccess_update(2, 1)
UNION ALL SELECT 2, seq FROM capaccess_update(1, 0)
UNION ALL SELECT 3, seq FROM capaccess_update(2, 1);
SELECT bool_and(seq IS NOT NULL) AS all_set,
       (SELECT array_agg(seq ORDER BY n) FROM seqs) =
       (SELECT array_agg(seq ORDER BY seq) FROM seqs) AS increasing
  FROM seqs;

-- the returned state is the row, and the hash matches the row
CREATE TEMP TABLE r AS SELECT * FROM capaccess_update(2, 1);
SELECT r.used = c.used AND r.cap = c.cap AND r.access = c.access AND
       r.clock = c.clock AND r.seq = c.seq AND r.state_hash = c.state_hash AS same_as_row,
       c.state_hash = capaccess.state_hash(c.customer_id, c.clock, c.used, c.cap, c.access) AS hash_ok
  FROM r, capaccess.customer c
 WHERE c.customer_id = 2;

-- the same transaction may update the same customer again: no self-wait
BEGIN;
SELECT updated, used, clock FROM capaccess_update(2, -1);
SELECT updated, used, clock FROM capaccess_update(2, -1);
SELECT updated, reason, used, clock FROM capaccess_update(2, 100);
SELECT slots_held FROM capaccess_stats();
COMMIT;
SELECT slots_held FROM capaccess_stats();
SELECT used, clock FROM capaccess.customer WHERE customer_id = 2;

-- The jsonb form: the contract of the data layer capaccess replaces.
SELECT capaccess_update('{"customer_id": 2}'::jsonb, '{"consume": 1}'::jsonb)
       - 'seq' - 'state_hash';
SELECT capaccess_update('{"customer_id": 2}'::jsonb,
                        '{"consume": 0, "cap": 7, "access": "silver"}'::jsonb)
       - 'seq' - 'state_hash';
SELECT capaccess_update('{"customer_id": 2}'::jsonb, '{"consume": 100}'::jsonb)
       - 'seq' - 'state_hash';
SELECT capaccess_update('{"customer_id": 2}'::jsonb, '{"consume": -100}'::jsonb)
       - 'seq' - 'state_hash';
SELECT capaccess_update('{"customer_id": 12345}'::jsonb, '{"consume": 1}'::jsonb);
-- absent keys change nothing but the clock; null cap and access too
SELECT capaccess_update('{"customer_id": 2}'::jsonb, '{"consume": 0}'::jsonb) - 'seq' - 'state_hash';
SELECT capaccess_update('{"customer_id": 2}'::jsonb, '{"cap": null, "access": null}'::jsonb)
       - 'seq' - 'state_hash';
-- jsonb and row forms agree on the hash
CREATE TEMP TABLE j AS
SELECT capaccess_update('{"customer_id": 2}'::jsonb, '{"consume": 1}'::jsonb) AS j;
SELECT (j ->> 'state_hash')::bigint = c.state_hash AS same_hash,
       (j ->> 'seq')::bigint = c.seq AS same_seq,
       (j ->> 'clock')::bigint = c.clock AS same_clock
  FROM j, capaccess.customer c
 WHERE c.customer_id = 2;

-- the counters moved
SELECT accepted > 0 AS accepted, rejected > 0 AS rejected,
       fast_rejected > 0 AS fast_rejected, slots_held,
       holds > 0 AS holds, hold_time_ms > 0 AS hold_time
  FROM capaccess_stats();

-- every row is consistent with its hash
SELECT customer_id, used, cap, access, clock,
       state_hash = capaccess.state_hash(customer_id, clock, used, cap, access) AS hash_ok
  FROM capaccess.customer ORDER BY customer_id;
