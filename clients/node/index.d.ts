// Types of the capaccess Node.js client.

/** A bigint argument: BigInt, a safe integer, or a string of decimal digits. */
export type Int64Input = bigint | number | string;

/** What a pg.Pool or pg.Client offers that this package uses. */
export interface Queryable {
  query(config: { text: string; values?: unknown[]; types?: unknown }): Promise<{ rows: any[] }>;
}

export interface RetryOptions {
  /** attempts after the first; default 3 */
  retries?: number;
  /** first backoff, in milliseconds, doubled each time; default 10 */
  minDelayMs?: number;
  /** longest backoff; default 1000 */
  maxDelayMs?: number;
}

export interface CapaccessOptions {
  /** the schema the extension was created in; default "public" */
  schema?: string;
  /** retry deadlocks (40P01) and serialization failures (40001); Pool only; off by default */
  retry?: boolean | RetryOptions;
}

/** The answer of an update, consume or reset.  A refusal is a result, not an error. */
export interface CapaccessResult {
  updated: boolean;
  /** null when updated; else "cap_exceeded", "below_zero" or "not_found" */
  reason: string | null;
  /** null (as every field below) when the customer was not found */
  used: bigint | null;
  cap: bigint | null;
  access: string | null;
  clock: bigint | null;
  seq: bigint | null;
  stateHash: number | null;
}

export interface CapaccessPeek {
  used: bigint;
  cap: bigint;
  remaining: bigint;
  access: string;
  clock: bigint;
  seq: bigint | null;
  stateHash: number;
}

export interface CapaccessCustomer {
  customerId: bigint;
  cap: bigint;
  used: bigint;
  access: string;
  clock: bigint;
  seq: bigint | null;
  stateHash: number;
}

export interface Capaccess {
  updateCustomerCapAndAccess(
    query: { customerId: Int64Input },
    data: { consume?: Int64Input; cap?: Int64Input | null; access?: string | null },
  ): Promise<CapaccessResult>;
  consume(customerId: Int64Input, n?: Int64Input): Promise<CapaccessResult>;
  peek(customerId: Int64Input): Promise<CapaccessPeek | null>;
  register(customerId: Int64Input, cap: Int64Input, access?: string): Promise<CapaccessCustomer>;
  unregister(customerId: Int64Input): Promise<boolean>;
  reset(customerId: Int64Input, used?: Int64Input): Promise<CapaccessResult>;
  /** capaccess_counters(), by name */
  stats(): Promise<Record<string, bigint>>;
  /** fn's calls run in one transaction of one pooled connection (Pool only) */
  transaction<T>(fn: (cap: Capaccess) => Promise<T>): Promise<T>;
}

export function createCapaccess(db: Queryable, options?: CapaccessOptions): Capaccess;

/** FNV-1a 32 of the canonical encoding of a state (a fingerprint, not cryptography). */
export function stateHash(state: {
  customerId: Int64Input;
  clock: Int64Input;
  used: Int64Input;
  cap: Int64Input;
  access: string;
}): number;

export class CapaccessError extends Error {
  /** the SQLSTATE, e.g. "40P01"; "22023" for input refused before sending */
  code: string | null;
  /** a short name: "deadlock", "lock_timeout", "canceled", "read_only", ... */
  reason: string;
  /** the error pg raised, when the server sent one */
  cause?: unknown;
}
export class DeadlockError extends CapaccessError {}
export class SerializationError extends CapaccessError {}
export class LockTimeoutError extends CapaccessError {}
export class QueryCanceledError extends CapaccessError {}
export class ReadOnlyError extends CapaccessError {}
export class NotPreloadedError extends CapaccessError {}
export class InvalidInputError extends CapaccessError {}
