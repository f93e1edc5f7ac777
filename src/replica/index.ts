/**
 * Read replicas: `createReplicaPool`, read/write splitting with
 * read-your-writes over one primary and its GTID replicas.
 */
import type { ReplicaPoolOptions } from './options';
import { ReplicaPool } from './replica-pool';

/**
 * Creates a pool over a primary and its replicas, with `createPool`'s API:
 * writes, transactions and anything not provably read-only on the primary;
 * autocommit reads and `readOnly: true` transactions on a healthy replica,
 * each after this pool's own last commit (`readYourWrites: 'pool'`). Throws
 * `ERR_INVALID_OPTION` naming a bad option.
 *
 * ```ts
 * import { createReplicaPool } from 'rollback-pool';
 * const pool = createReplicaPool({
 *   primary: 'mysql://app@db-primary:3306/shop',
 *   replicas: ['mysql://app@db-replica-1:3306/shop', 'mysql://app@db-replica-2:3306/shop'],
 * });
 * ```
 */
export function createReplicaPool(options: ReplicaPoolOptions): ReplicaPool {
  return new ReplicaPool(options);
}

export { ReplicaPool, type ReplicaPoolStats } from './replica-pool';
export { ReplicaHandle, type ReplicaHandleOptions } from './handle';
export type { ReplicaHealth, ReplicaState } from './member';
export type { ReplicaHealthEvent, ReplicaPoolEventMap, ReplicaPoolServer, FromServer } from './events';
export type { ReadYourWrites, ReplicaPoolOptions, ResolvedReplicaOptions } from './options';
export { readOnlyReason } from './statement';
