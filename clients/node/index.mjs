// ESM entry: the same module as index.js.
import capaccess from './index.js';

export const {
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
} = capaccess;
export default capaccess;
