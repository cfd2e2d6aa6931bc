'use strict';

// The package against a real server with capaccess preloaded (PGHOST,
// PGPORT, PGUSER, PGDATABASE), and, for NotPreloadedError, a second one
// without it (CAPACCESS_NOPRELOAD_HOST and _PORT).  scripts/test-node
// starts both.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');
const {
  createCapaccess, stateHash, CapaccessError, DeadlockError, SerializationError,
  LockTimeoutError, QueryCanceledError, ReadOnlyError, NotPreloadedError, InvalidInputError,
} = require('..');

const N = 1000;
const INT64_MAX = 2n ** 63n - 1n;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let pool;
let cap;

before(async () => {
  pool = new pg.Pool({ max: 100 });
  await pool.query('CREATE EXTENSION IF NOT EXISTS capaccess');
  cap = createCapaccess(pool);
});

after(async () => {
  await pool.end();
});

// Every result that says it changed the row carries the hash of the state
// it reports: recompute it here.
function checkHash(customerId, r) {
  assert.equal(r.stateHash, stateHash({
    customerId, clock: r.clock, used: r.used, cap: r.cap, access: r.access,
  }), `state hash of customer ${customerId} at clock ${r.clock}`);
}

const byValue = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

test('read-then-write, as an ORM transaction does it, loses updates', async (t) => {
  await pool.query('CREATE TABLE orm_customer (customer_id bigint PRIMARY KEY, ' +
    'cap bigint NOT NULL, used bigint NOT NULL, access text NOT NULL)');
  await pool.query("INSERT INTO orm_customer VALUES (1, 1000000, 0, 'none')");

  // the original data layer: read the row, compute, write it back
  async function updateCustomerCapAndAccess(query, data) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(
        'SELECT cap, used, access FROM orm_customer WHERE customer_id = $1', [query.customerId]);
      const used = BigInt(rows[0].used) + BigInt(data.consume);
      await client.query('UPDATE orm_customer SET used = $2 WHERE customer_id = $1',
        [query.customerId, used.toString()]);
      await client.query('COMMIT');
      return { updated: true };
    } finally {
      client.release();
    }
  }

  const results = await Promise.all(Array.from({ length: N },
    () => updateCustomerCapAndAccess({ customerId: 1 }, { consume: 1 })));
  const { rows } = await pool.query('SELECT used FROM orm_customer WHERE customer_id = 1');
  const applied = Number(rows[0].used);
  t.diagnostic(`read-then-write: ${results.length} calls said updated, ${applied} applied, ` +
    `${N - applied} lost`);
  assert.ok(applied < N, `expected lost updates, got ${applied} of ${N}`);
});

test('updateCustomerCapAndAccess: 1000 concurrent calls, all applied', async (t) => {
  await cap.register(2, 1000000, 'basic');
  const results = await Promise.all(Array.from({ length: N },
    () => cap.updateCustomerCapAndAccess({ customerId: 2 }, { consume: 1 })));

  assert.equal(results.filter((r) => r.updated).length, N, 'every call was accepted');
  const clocks = results.map((r) => r.clock).sort(byValue);
  assert.deepEqual(clocks, Array.from({ length: N }, (_, i) => BigInt(i + 1)),
    'the clocks are 1..1000, each once');
  assert.equal(new Set(results.map((r) => r.stateHash)).size, N, '1000 distinct hashes');
  for (const r of results) checkHash(2n, r);
  assert.equal(new Set(results.map((r) => r.seq)).size, N, 'the seq values are distinct');
  const peek = await cap.peek(2);
  assert.equal(peek.used, BigInt(N), 'used is 1000');
  t.diagnostic(`capaccess: ${N} of ${N} applied`);
});

test('a cap of 500 under 1000 concurrent consumes', async () => {
  await cap.register(3, 500);
  const results = await Promise.all(Array.from({ length: N }, () => cap.consume(3)));
  const accepted = results.filter((r) => r.updated);
  assert.equal(accepted.length, 500);
  assert.equal(results.filter((r) => r.reason === 'cap_exceeded').length, 500);
  for (const r of accepted) checkHash(3n, r);
  assert.equal((await cap.peek(3)).remaining, 0n);
});

test('the rest of the API', async () => {
  const reg = await cap.register('4', 10n, 'silver');
  assert.deepEqual([reg.customerId, reg.cap, reg.used, reg.access, reg.clock],
    [4n, 10n, 0n, 'silver', 0n]);
  let r = await cap.updateCustomerCapAndAccess({ customerId: 4n }, { cap: 20, access: 'gold' });
  assert.deepEqual([r.updated, r.used, r.cap, r.access, r.clock], [true, 0n, 20n, 'gold', 1n]);
  checkHash(4n, r);
  r = await cap.consume(4, -1);
  assert.deepEqual([r.updated, r.reason, r.used], [false, 'below_zero', 0n]);
  r = await cap.consume(4, 5);
  checkHash(4n, r);
  r = await cap.reset(4);
  assert.deepEqual([r.updated, r.used, r.clock], [true, 0n, 3n]);
  checkHash(4n, r);
  r = await cap.updateCustomerCapAndAccess({ customerId: 4 }, { consume: 0 });
  assert.equal(r.clock, 4n, '{ consume: 0 } advances only the clock');
  r = await cap.updateCustomerCapAndAccess({ customerId: 4 }, { access: 'é 🎉 ü' });
  assert.equal(r.access, 'é 🎉 ü');
  checkHash(4n, r);
  r = await cap.consume(404);
  assert.deepEqual(r, {
    updated: false, reason: 'not_found', used: null, cap: null, access: null,
    clock: null, seq: null, stateHash: null,
  });
  assert.equal(await cap.peek(404), null);
  assert.equal(await cap.unregister(4), true);
  assert.equal(await cap.unregister(4), false);
  const stats = await cap.stats();
  assert.equal(typeof stats.accepted, 'bigint');
  assert.ok(stats.accepted >= 1500n, `accepted = ${stats.accepted}`);
});

test('ids and values above 2^53 round-trip exactly', async () => {
  const id = 2n ** 53n + 1n;
  await cap.register(id, 2n ** 62n, 'big');
  let r = await cap.consume(id, 2n ** 53n + 3n);
  assert.deepEqual([r.updated, r.used, r.cap], [true, 2n ** 53n + 3n, 2n ** 62n]);
  checkHash(id, r);
  assert.equal((await cap.peek(id.toString())).used, 2n ** 53n + 3n);

  await cap.register(INT64_MAX, INT64_MAX);
  r = await cap.updateCustomerCapAndAccess({ customerId: INT64_MAX.toString() },
    { consume: INT64_MAX });
  assert.deepEqual([r.updated, r.used, r.cap], [true, INT64_MAX, INT64_MAX]);
  checkHash(INT64_MAX, r);
  await cap.register(-(2n ** 63n), 1);
  r = await cap.consume(-(2n ** 63n));
  assert.equal(r.used, 1n);
  checkHash(-(2n ** 63n), r);
});

test('input that would be rounded or lost is refused before it is sent', async () => {
  await cap.register(5, 100);
  const before = (await cap.peek(5)).clock;
  const refused = [
    () => cap.consume(2 ** 53 + 1),
    () => cap.consume(5, 1.5),
    () => cap.consume(5, '1e3'),
    () => cap.consume(5, 2n ** 63n),
    () => cap.updateCustomerCapAndAccess({ customerId: 5 }, { consume: undefined }),
    () => cap.updateCustomerCapAndAccess({ customerId: 5 }, { cap: undefined }),
    () => cap.updateCustomerCapAndAccess({ customerId: 5 }, { access: undefined }),
    () => cap.updateCustomerCapAndAccess({ customerId: 5 }, {}),
    () => cap.updateCustomerCapAndAccess({ customerId: 5 }, { consume: 1, used: 3 }),
    () => cap.updateCustomerCapAndAccess({ customer_id: 5 }, { consume: 1 }),
    () => cap.updateCustomerCapAndAccess({ customerId: 5 }, { access: 7 }),
  ];
  for (const call of refused) {
    await assert.rejects(call(), (err) => err instanceof InvalidInputError &&
      err instanceof CapaccessError && err.code === '22023', String(call));
  }
  // null, as the server would say it
  await assert.rejects(cap.consume(null), (err) => err instanceof InvalidInputError &&
    err.code === '22004');
  await assert.rejects(cap.consume(5, null), (err) => err instanceof InvalidInputError &&
    err.code === '22004');
  assert.equal((await cap.peek(5)).clock, before, 'nothing was written');
});

// Two sessions, each in a transaction of its own.
async function twoSessions(fn) {
  const a = await pool.connect();
  const b = await pool.connect();
  try {
    await fn(a, b);
  } finally {
    const done = await Promise.allSettled([a.query('ROLLBACK'), b.query('ROLLBACK')]);
    a.release(done[0].status === 'rejected');
    b.release(done[1].status === 'rejected');
  }
}

test('DeadlockError: two transactions take two gates in opposite order', async () => {
  await cap.register(10, 100);
  await cap.register(11, 100);
  await twoSessions(async (a, b) => {
    const ca = createCapaccess(a);
    const cb = createCapaccess(b);
    await a.query('BEGIN');
    await b.query('BEGIN');
    await ca.consume(10);
    await cb.consume(11);
    const settled = await Promise.allSettled([ca.consume(11), cb.consume(10)]);
    const rejected = settled.filter((s) => s.status === 'rejected');
    assert.equal(rejected.length, 1, 'one of the two is the victim');
    assert.ok(rejected[0].reason instanceof DeadlockError);
    assert.equal(rejected[0].reason.code, '40P01');
    assert.equal(rejected[0].reason.reason, 'deadlock');
  });
  assert.equal((await cap.consume(10)).updated, true, 'the pool is usable afterwards');
});

// b calls for a gate that a holds, with a setting that makes it give up.
async function blockedCall(setting) {
  let error;
  await cap.register(12, 100).catch(() => {});
  await twoSessions(async (a, b) => {
    await a.query('BEGIN');
    await createCapaccess(a).consume(12);
    await b.query('BEGIN');
    await b.query(`SET LOCAL ${setting} = '200ms'`);
    error = await createCapaccess(b).consume(12).then(() => null, (err) => err);
  });
  return error;
}

test('LockTimeoutError: lock_timeout while another transaction holds the gate', async () => {
  const err = await blockedCall('lock_timeout');
  assert.ok(err instanceof LockTimeoutError, String(err));
  assert.equal(err.code, '55P03');
  assert.equal((await cap.consume(12)).updated, true, 'the pool is usable afterwards');
});

test('QueryCanceledError: statement_timeout while another transaction holds the gate', async () => {
  const err = await blockedCall('statement_timeout');
  assert.ok(err instanceof QueryCanceledError, String(err));
  assert.equal(err.code, '57014');
  assert.equal((await cap.consume(12)).updated, true, 'the pool is usable afterwards');
});

test('SerializationError: REPEATABLE READ meets an update committed after its snapshot', async () => {
  await cap.register(13, 100);
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await client.query('SELECT 1');       // takes the snapshot
    assert.equal((await cap.consume(13)).updated, true);
    await assert.rejects(createCapaccess(client).consume(13),
      (err) => err instanceof SerializationError && err.code === '40001' &&
        err.reason === 'serialization_failure');
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
  assert.equal((await cap.consume(13)).clock, 2n, 'the pool is usable afterwards');
});

test('ReadOnlyError: a call in a read-only transaction', async () => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN READ ONLY');
    await assert.rejects(createCapaccess(client).consume(2),
      (err) => err instanceof ReadOnlyError && err.code === '25006');
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
  assert.equal((await cap.consume(2)).updated, true, 'the pool is usable afterwards');
});

test('InvalidInputError: what the server refuses', async () => {
  await assert.rejects(cap.register(20, -1),
    (err) => err instanceof InvalidInputError && err.code === '22023');
  await cap.register(21, INT64_MAX);
  await cap.consume(21, INT64_MAX);
  await assert.rejects(cap.consume(21, 1),
    (err) => err instanceof InvalidInputError && err.code === '22003' && err.reason === 'out_of_range');
  await assert.rejects(cap.register(22, 1, 'x'.repeat(2000)),
    (err) => err instanceof InvalidInputError && err.code === '22001');
  assert.equal((await cap.consume(2)).updated, true, 'the pool is usable afterwards');
});

test('NotPreloadedError: a server without shared_preload_libraries', async (t) => {
  const host = process.env.CAPACCESS_NOPRELOAD_HOST;
  const port = process.env.CAPACCESS_NOPRELOAD_PORT;
  if (!host || !port) {
    t.skip('CAPACCESS_NOPRELOAD_HOST and CAPACCESS_NOPRELOAD_PORT are not set');
    return;
  }
  const client = new pg.Client({ host, port: Number(port) });
  await client.connect();
  try {
    await client.query('CREATE EXTENSION IF NOT EXISTS capaccess');
    await assert.rejects(createCapaccess(client).consume(1),
      (err) => err instanceof NotPreloadedError && err.code === '55000');
  } finally {
    await client.end();
  }
});

test('retry: deadlocks and serialization failures are retried only when asked', async () => {
  const ROW = {
    updated: true, reason: null, used: '1', cap: '10', access: 'none', clock: '1', seq: '1',
    state_hash: '1',
  };
  function fakePool(failures, code) {
    const fake = {
      calls: 0, totalCount: 0, connect() {},
      async query() {
        fake.calls += 1;
        if (fake.calls <= failures) {
          // as pg's DatabaseError carries them; a socket error has no severity
          throw Object.assign(new Error('simulated'), code.startsWith('E') ? { code } :
            { code, severity: 'ERROR' });
        }
        return { rows: [ROW] };
      },
    };
    return fake;
  }
  let fake = fakePool(2, '40P01');
  const r = await createCapaccess(fake, { retry: { retries: 3, minDelayMs: 1 } }).consume(1);
  assert.equal(r.used, 1n);
  assert.equal(fake.calls, 3);

  fake = fakePool(2, '40001');
  await assert.rejects(createCapaccess(fake, { retry: { retries: 1, minDelayMs: 1 } }).consume(1),
    (err) => err instanceof SerializationError);
  assert.equal(fake.calls, 2);

  fake = fakePool(1, '40P01');
  await assert.rejects(createCapaccess(fake).consume(1), DeadlockError);
  assert.equal(fake.calls, 1, 'off by default');

  fake = fakePool(1, '55P03');
  await assert.rejects(createCapaccess(fake, { retry: {} }).consume(1), LockTimeoutError);
  assert.equal(fake.calls, 1, 'a lock timeout is not retried');

  fake = fakePool(1, 'EPIPE');
  await assert.rejects(createCapaccess(fake, { retry: {} }).consume(1),
    (err) => !(err instanceof CapaccessError) && err.code === 'EPIPE',
    'a broken connection is passed through as pg raised it');

  const client = new pg.Client();
  assert.throws(() => createCapaccess(client, { retry: {} }), TypeError);
  assert.throws(() => createCapaccess(fake, { retry: { retries: -1 } }), TypeError);
});

test('transaction(): the gate is held until the transaction ends', async () => {
  await cap.register(30, 100);
  let other;
  let otherDone = false;
  await cap.transaction(async (tx) => {
    const mine = await tx.consume(30);
    assert.equal(mine.clock, 1n);
    other = cap.consume(30).then((r) => {
      otherDone = true;
      return r;
    });
    await sleep(300);
    assert.equal(otherDone, false, 'another caller waits for the gate');
    const { rows } = await pool.query(
      'SELECT count(*)::int AS n FROM capaccess_gates() WHERE customer_id = 30');
    assert.ok(rows[0].n >= 1, 'capaccess_gates() shows it held');
  });
  const r = await other;
  assert.equal(r.clock, 2n, 'and goes after the commit');
  checkHash(30n, r);

  await assert.rejects(cap.transaction(async (tx) => {
    await tx.consume(30);
    throw new Error('application error');
  }), /application error/);
  assert.equal((await cap.peek(30)).clock, 2n, 'a rolled-back transaction leaves nothing');

  // an error caught inside fn still aborts the transaction: no false success
  await assert.rejects(cap.transaction(async (tx) => {
    await tx.consume(30);
    await tx.register(30, 1).catch(() => {});   // 23505, caught
    return 'done';
  }), (err) => err instanceof CapaccessError && err.code === '25P02');
  assert.equal((await cap.peek(30)).clock, 2n, 'and nothing of it was committed');
});

test('a decoy on the application\'s search_path is never called', async () => {
  await pool.query('CREATE SCHEMA decoy');
  await pool.query(`CREATE FUNCTION decoy.capaccess_consume(bigint, bigint,
      OUT updated boolean, OUT reason text, OUT used bigint, OUT cap bigint,
      OUT access text, OUT clock bigint, OUT seq bigint, OUT state_hash bigint)
    LANGUAGE sql AS $$ SELECT true, 'decoy', 0::bigint, 0::bigint, 'decoy', 0::bigint,
      0::bigint, 0::bigint $$`);
  await pool.query('CREATE DOMAIN decoy.text AS pg_catalog.text CHECK (false)');
  const decoyed = new pg.Pool({ max: 2, options: '-c search_path=decoy,pg_catalog,public' });
  try {
    const unqualified = await decoyed.query('SELECT reason FROM capaccess_consume(2::bigint, 1::bigint)');
    assert.equal(unqualified.rows[0].reason, 'decoy', 'an unqualified call would reach the decoy');
    const r = await createCapaccess(decoyed).consume(2);
    assert.equal(r.updated, true);
    assert.equal(r.reason, null);
    checkHash(2n, r);
  } finally {
    await decoyed.end();
    await pool.query('DROP SCHEMA decoy CASCADE');
  }
});

test('the schema is quoted, and the ESM entry exports the same API', async () => {
  const other = createCapaccess(pool, { schema: 'no "such" schema' });
  await assert.rejects(other.peek(2), (err) => err instanceof CapaccessError && err.code === '3F000');
  const esm = await import('../index.mjs');
  assert.equal(esm.createCapaccess, createCapaccess);
  assert.equal(esm.stateHash({ customerId: 1, clock: 0, used: 0, cap: 10, access: 'none' }),
    Number((await pool.query("SELECT capaccess.state_hash(1, 0, 0, 10, 'none') AS h")).rows[0].h));
});
