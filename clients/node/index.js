'use strict';

// capaccess for Node.js: the data-layer contract
// updateCustomerCapAndAccess(query, data) and the rest of capaccess's SQL
// API, over a pg.Pool or pg.Client of node-postgres.
//
// Every call is one statement, qualified with the extension's schema and
// typed with ::bigint, so neither the application's search_path nor pg's
// untyped parameters can pick another function.  64-bit values go out as
// decimal text and come back as text (this package's own type parsing, per
// query), and are handed to the application as BigInt: nothing is rounded.

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// ---------------------------------------------------------------- errors

class CapaccessError extends Error {
  constructor(message, { code = null, reason = 'error', cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = this.constructor.name;
    this.code = code;
    this.reason = reason;
  }
}
class DeadlockError extends CapaccessError {}
class SerializationError extends CapaccessError {}
class LockTimeoutError extends CapaccessError {}
class QueryCanceledError extends CapaccessError {}
class ReadOnlyError extends CapaccessError {}
class NotPreloadedError extends CapaccessError {}
class InvalidInputError extends CapaccessError {}

const BY_CODE = {
  '40P01': [DeadlockError, 'deadlock'],
  40001: [SerializationError, 'serialization_failure'],
  '55P03': [LockTimeoutError, 'lock_timeout'],
  57014: [QueryCanceledError, 'canceled'],
  25006: [ReadOnlyError, 'read_only'],
  22023: [InvalidInputError, 'invalid_input'],
  22004: [InvalidInputError, 'null_input'],
  22003: [InvalidInputError, 'out_of_range'],
  22001: [InvalidInputError, 'too_long'],
};

// The server's error as one of ours.  Only errors the server sent (pg's
// DatabaseError, which carries a severity) are mapped; anything else (a
// broken connection, say, whose code may be EPIPE) is passed through.
function mapError(err) {
  if (!err || err instanceof CapaccessError || typeof err.severity !== 'string' ||
      typeof err.code !== 'string' || !/^[0-9A-Z]{5}$/.test(err.code)) {
    return err;
  }
  let [Class, reason] = BY_CODE[err.code] || [CapaccessError, 'error'];
  if (err.code === '55000' && /shared_preload_libraries/.test(err.message)) {
    [Class, reason] = [NotPreloadedError, 'not_preloaded'];
  }
  return new Class(err.message, { code: err.code, reason, cause: err });
}

function invalid(message) {
  return new InvalidInputError(message, { code: '22023', reason: 'invalid_input' });
}

// ---------------------------------------------------------- 64-bit values

// A bigint argument, as the decimal text that is sent: BigInt, a safe
// integer, or a string of decimal digits.  Never rounds.
function int64Text(name, value) {
  let v;
  if (typeof value === 'bigint') {
    v = value;
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw invalid(`${name} must be a BigInt, a safe integer or a string of decimal digits; ` +
        `${value} is not a safe integer and would be rounded`);
    }
    v = BigInt(value);
  } else if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) {
    v = BigInt(value);
  } else if (value === null) {
    // as the server says it (22004)
    throw new InvalidInputError(`${name} must not be null`, { code: '22004', reason: 'null_input' });
  } else {
    throw invalid(`${name} must be a BigInt, a safe integer or a string of decimal digits; got ${
      value === undefined ? 'undefined' : JSON.stringify(value)}`);
  }
  if (v < INT64_MIN || v > INT64_MAX) {
    throw invalid(`${name} is out of the range of bigint: ${v}`);
  }
  return v.toString();
}

function accessText(name, value) {
  if (typeof value !== 'string') {
    throw invalid(`${name} must be a string; got ${value === undefined ? 'undefined' : JSON.stringify(value)}`);
  }
  return value;
}

function big(text) {
  return text === null ? null : BigInt(text);
}

// This package's type parsing, per query: booleans as booleans, every other
// column as the server's text.  pg's global parsers are never touched.
const RAW_TYPES = {
  getTypeParser(oid) {
    return oid === 16 ? (v) => v === 't' : (v) => v;
  },
};

// A row of capaccess's functions, as the application sees it: bigint
// columns as BigInt, state_hash as a Number, names in camelCase.
const BIGINT_COLUMNS = {
  customer_id: 'customerId', used: 'used', cap: 'cap', remaining: 'remaining',
  clock: 'clock', seq: 'seq',
};

function fromRow(row) {
  const out = {};
  for (const [column, value] of Object.entries(row)) {
    if (column in BIGINT_COLUMNS) {
      out[BIGINT_COLUMNS[column]] = big(value);
    } else if (column === 'state_hash') {
      out.stateHash = value === null ? null : Number(value);
    } else {
      out[column] = value;
    }
  }
  return out;
}

// ---------------------------------------------------------- the state hash

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

// FNV-1a (32 bits) of the README's canonical encoding of a state:
// customer_id, clock, used and cap as 8 bytes big-endian two's complement,
// the byte length of access in UTF-8 as 4 bytes big-endian, then those
// bytes.  A fingerprint, not a cryptographic hash.
function stateHash({ customerId, clock, used, cap, access }) {
  let h = FNV_OFFSET_BASIS;
  const feed = (byte) => {
    h = Math.imul((h ^ byte) >>> 0, FNV_PRIME) >>> 0;
  };
  for (const [name, value] of [['customerId', customerId], ['clock', clock],
    ['used', used], ['cap', cap]]) {
    const u = BigInt.asUintN(64, BigInt(int64Text(name, value)));
    for (let shift = 56n; shift >= 0n; shift -= 8n) {
      feed(Number((u >> shift) & 0xffn));
    }
  }
  const bytes = Buffer.from(accessText('access', access), 'utf8');
  const n = bytes.length;
  feed((n >>> 24) & 0xff);
  feed((n >>> 16) & 0xff);
  feed((n >>> 8) & 0xff);
  feed(n & 0xff);
  for (const b of bytes) feed(b);
  return h >>> 0;
}

// ----------------------------------------------------------------- calls

function quoteIdent(name) {
  if (typeof name !== 'string' || name.length === 0) {
    throw invalid('schema must be a non-empty string');
  }
  return '"' + name.replace(/"/g, '""') + '"';
}

function isPool(db) {
  return db && typeof db.connect === 'function' && typeof db.totalCount === 'number';
}

const RETRY_CODES = new Set(['40P01', '40001']);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function checkKeys(what, obj, allowed) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw invalid(`${what} must be an object`);
  }
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw invalid(`${what} has an unknown key "${key}"; allowed: ${allowed.join(', ')}`);
    }
    if (obj[key] === undefined) {
      throw invalid(`${what}.${key} is undefined; leave the key out, or pass a value`);
    }
  }
}

function createCapaccess(db, options = {}) {
  if (!db || typeof db.query !== 'function') {
    throw new TypeError('createCapaccess needs a pg.Pool or a pg.Client');
  }
  const { schema = 'public', retry = false } = options;
  const s = quoteIdent(schema);
  const r = retry === true ? {} : retry;
  const retries = r ? (r.retries ?? 3) : 0;
  const minDelayMs = r ? (r.minDelayMs ?? 10) : 0;
  const maxDelayMs = r ? (r.maxDelayMs ?? 1000) : 0;
  if (!Number.isSafeInteger(retries) || retries < 0 || !(minDelayMs >= 0) ||
      !(maxDelayMs >= minDelayMs) || !Number.isFinite(maxDelayMs)) {
    throw new TypeError('retry needs retries >= 0 (an integer) and 0 <= minDelayMs <= maxDelayMs');
  }
  if (retry && !isPool(db)) {
    throw new TypeError('retry needs a pg.Pool: on a Client the call may be inside your ' +
      'transaction, which a deadlock or serialization failure aborts as a whole');
  }

  async function run(text, values) {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await db.query({ text, values, types: RAW_TYPES });
        return res.rows;
      } catch (err) {
        if (attempt < retries && RETRY_CODES.has(err && err.code)) {
          const cap = Math.min(maxDelayMs, minDelayMs * 2 ** attempt);
          await sleep(cap / 2 + Math.random() * (cap / 2));
          continue;
        }
        throw mapError(err);
      }
    }
  }

  // RAW_TYPES hands every non-boolean column over as the server's text
  const ROW = 'updated, reason, used, cap, access, clock, seq, state_hash';

  const api = {
    // The original data layer's contract.  query = { customerId }, data =
    // { consume?, cap?, access? }: an absent consume is 0, an absent (or
    // null) cap or access is left as it is, and data must name at least
    // one of them.
    async updateCustomerCapAndAccess(query, data) {
      checkKeys('query', query, ['customerId']);
      checkKeys('data', data, ['consume', 'cap', 'access']);
      if (!('customerId' in query)) throw invalid('query must have customerId');
      if (Object.keys(data).length === 0) {
        throw invalid('data names nothing to change; pass { consume: 0 } to advance only the clock');
      }
      const id = int64Text('query.customerId', query.customerId);
      const consume = 'consume' in data ? int64Text('data.consume', data.consume) : '0';
      const cap = data.cap == null ? null : int64Text('data.cap', data.cap);
      const access = data.access == null ? null : accessText('data.access', data.access);
      const rows = await run(`SELECT ${ROW} FROM ${s}.capaccess_update($1::bigint, $2::bigint, ` +
        '$3::bigint, $4::pg_catalog.text)', [id, consume, cap, access]);
      return fromRow(rows[0]);
    },

    // Add n (default 1) to used, if the cap allows; a negative n refunds.
    async consume(customerId, n = 1) {
      const rows = await run(`SELECT ${ROW} FROM ${s}.capaccess_consume($1::bigint, $2::bigint)`,
        [int64Text('customerId', customerId), int64Text('n', n)]);
      return fromRow(rows[0]);
    },

    // The committed state, without waiting for anyone; null if none.
    async peek(customerId) {
      const rows = await run('SELECT used, cap, remaining, access, clock, seq, state_hash ' +
        `FROM ${s}.capaccess_peek($1::bigint)`, [int64Text('customerId', customerId)]);
      return rows.length === 0 ? null : fromRow(rows[0]);
    },

    async register(customerId, cap, access = 'none') {
      const rows = await run('SELECT customer_id, cap, used, access, clock, seq, state_hash ' +
        `FROM ${s}.capaccess_register($1::bigint, $2::bigint, $3::pg_catalog.text)`,
      [int64Text('customerId', customerId), int64Text('cap', cap), accessText('access', access)]);
      return fromRow(rows[0]);
    },

    async unregister(customerId) {
      const rows = await run(`SELECT ${s}.capaccess_unregister($1::bigint) AS gone`,
        [int64Text('customerId', customerId)]);
      return rows[0].gone;
    },

    async reset(customerId, used = 0) {
      const rows = await run(`SELECT ${ROW} FROM ${s}.capaccess_reset($1::bigint, $2::bigint)`,
        [int64Text('customerId', customerId), int64Text('used', used)]);
      return fromRow(rows[0]);
    },

    // Every counter of capaccess_counters(), by name, as BigInt.
    async stats() {
      const rows = await run(`SELECT counter, value FROM ${s}.capaccess_counters()`, []);
      const out = {};
      for (const r of rows) out[r.counter] = BigInt(r.value);
      return out;
    },

    // Run fn(cap) inside one transaction on one connection of the pool: the
    // gates its calls take are held until it commits or rolls back.
    async transaction(fn) {
      if (!isPool(db)) {
        throw new TypeError('transaction() needs a pg.Pool; with a Client, run BEGIN and COMMIT yourself');
      }
      const client = await db.connect();
      let broken = false;
      try {
        await client.query('BEGIN').catch((err) => { throw mapError(err); });
        const result = await fn(createCapaccess(client, { schema }));
        const commit = await client.query('COMMIT').catch((err) => { throw mapError(err); });
        if (commit.command === 'ROLLBACK') {
          // an error inside fn, caught there, had aborted the transaction
          throw new CapaccessError('the transaction was rolled back, not committed: an error ' +
            'inside it aborted it', { code: '25P02', reason: 'rolled_back' });
        }
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          broken = true;
        }
        throw err;
      } finally {
        client.release(broken);
      }
    },
  };
  return api;
}

module.exports = {
  createCapaccess,
  stateHash,
  CapaccessError,
  DeadlockError,
  SerializationError,
  LockTimeoutError,
  QueryCanceledError,
  ReadOnlyError,
  NotPreloadedError,
  InvalidInputError,
};
