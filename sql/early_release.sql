-- Early release (capaccess.early_release): a transaction that holds a gate
-- commits asynchronously, hands the gate on, and flushes before it
-- answers.  Which commits do it, that they are flushed when they answer,
-- and that synchronous_commit is left as the session had it.
SHOW capaccess.early_release;
SELECT customer_id FROM capaccess_register(900, 10, 'standard');
SELECT customer_id FROM capaccess_register(901, 10, 'standard');

SELECT early_releases AS e FROM capaccess_stats() \gset
SELECT pg_current_wal_insert_lsn() AS before \gset

-- an accepted update: released early, and durable when it answers
SELECT updated, clock FROM capaccess_update(900, 1);
SELECT early_releases - :e AS early FROM capaccess_stats();
SELECT pg_current_wal_flush_lsn() > :'before'::pg_lsn AS flushed;
SHOW synchronous_commit;

-- two customers in one transaction: one commit, one early release
SELECT early_releases AS e FROM capaccess_stats() \gset
BEGIN;
SELECT updated FROM capaccess_update(900, 1);
SELECT updated FROM capaccess_update(901, 1);
COMMIT;
SELECT early_releases - :e AS early FROM capaccess_stats();

-- the session's own setting is what it gets back
SET synchronous_commit = local;
SELECT early_releases AS e FROM capaccess_stats() \gset
SELECT updated FROM capaccess_update(900, 1);
SELECT early_releases - :e AS early FROM capaccess_stats();
SHOW synchronous_commit;
RESET synchronous_commit;

-- nothing to release early: a refusal, a rollback
SELECT early_releases AS e FROM capaccess_stats() \gset
SELECT updated, reason FROM capaccess_update(900, 100);
BEGIN;
SELECT updated FROM capaccess_update(900, 1);
ROLLBACK;
SELECT early_releases - :e AS early FROM capaccess_stats();

-- not wanted: early release off, or a commit that is asynchronous anyway
SET capaccess.early_release = off;
SELECT updated FROM capaccess_update(900, 1);
RESET capaccess.early_release;
SET synchronous_commit = off;
SELECT updated FROM capaccess_update(900, 1);
RESET synchronous_commit;
SELECT early_releases - :e AS early FROM capaccess_stats();

-- whatever the path, the row and the cache agree
SELECT customer_id, used, clock FROM capaccess.customer
 WHERE customer_id IN (900, 901) ORDER BY 1;
SELECT * FROM capaccess_verify();
