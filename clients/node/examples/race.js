'use strict';

// 1000 concurrent calls of the data layer's updateCustomerCapAndAccess, the
// old way (read the row, compute, write it back) and through capaccess.
// Connects with the usual PGHOST, PGPORT, PGUSER and PGDATABASE; needs
// capaccess preloaded and CREATE EXTENSION capaccess done.
//
//   npm ci && node examples/race.js

const pg = require('pg');
const { createCapaccess, stateHash } = require('..');

const CALLS = 1000;
const ID = 424242;

async function main() {
  const pool = new pg.Pool({ max: 100 });
  const cap = createCapaccess(pool);
  try {
    await pool.query('DELETE FROM capaccess.customer WHERE customer_id = $1', [ID]);
    await cap.register(ID, 1000000, 'basic');

    // the old way: a transaction that reads, computes and writes back
    const readThenWrite = async () => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query(
          'SELECT used FROM capaccess.customer WHERE customer_id = $1', [ID]);
        await client.query('UPDATE capaccess.customer SET used = $2 WHERE customer_id = $1',
          [ID, (BigInt(rows[0].used) + 1n).toString()]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    };
    await Promise.all(Array.from({ length: CALLS }, readThenWrite));
    const lost = CALLS - Number((await cap.peek(ID)).used);
    console.log(`read-then-write: ${CALLS - lost} of ${CALLS} applied, ${lost} lost`);

    // capaccess: same contract, one call
    await cap.reset(ID, 0);
    const results = await Promise.all(Array.from({ length: CALLS },
      () => cap.updateCustomerCapAndAccess({ customerId: ID }, { consume: 1 })));
    const clocks = new Set(results.map((r) => r.clock));
    const hashesOk = results.every((r) => r.stateHash === stateHash({
      customerId: ID, clock: r.clock, used: r.used, cap: r.cap, access: r.access,
    }));
    console.log(`capaccess: ${(await cap.peek(ID)).used} of ${CALLS} applied, ` +
      `${clocks.size} distinct clocks, hashes ${hashesOk ? 'all match' : 'DO NOT match'}`);
    await cap.unregister(ID);
  } finally {
    await pool.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
