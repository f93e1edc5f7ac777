/**
 * rollback-pool: a drop-in replacement for mysql2's promise `Pool` in which a
 * transaction that its owner walks away from can never reach the next user of
 * the connection.
 *
 * @module rollback-pool
 */
import { Pool } from './pool/pool';
import type { PoolOptions } from './options';

/**
 * Creates a pool, as `mysql2/promise`'s `createPool`: the same options (plus
 * ours) or a `mysql://` or `mariadb://` URL. Throws `ERR_INVALID_OPTION` naming a bad option.
 *
 * ```ts
 * import { createPool } from 'rollback-pool';
 * const pool = createPool({ uri: 'mysql://root@127.0.0.1:3306/test', connectionLimit: 10 });
 * ```
 */
export function createPool(options: PoolOptions | string): Pool {
  return new Pool(options);
}

export { Pool, type PoolStats } from './pool/pool';
export { PoolConnection } from './pool/lease';
/** mysql2/promise's name for the class of what `createPool` returns: rollback-pool's `Pool`. */
export { Pool as PromisePool } from './pool/pool';
/** mysql2/promise's name for the class of a pooled connection: rollback-pool's `PoolConnection`. */
export { PoolConnection as PromisePoolConnection } from './pool/lease';
export {
  CallbackConnection,
  CallbackPool,
  type CallbackConnectionEventMap,
  type CallbackPoolEventMap,
  type PoolConfig,
  type StatementCallback,
} from './pool/callback';
// The rest of mysql2/promise's surface: lone connections (no pool) and mysql2's helpers.
export * from './mysql2/promise';
export { Transaction, type TransactionState } from './tx/transaction';
export type { InFlightPolicy, TransactionOptions } from './tx/run';
export type { BeginOptions, IsolationLevel } from './tx/sql';
export { ScopeHandle, type ScopeDecision, type ScopeOptions, type ScopeOutcome, type ScopeTransactionOptions } from './scope/scope';
export type { XaRecoveryReport } from './scope/xa';
export type { CleanupMode, PoolOptions, ResetOnRelease, RollbackPoolOwnOptions } from './options';
export type { DirtyReason } from './pool/session-state';
export type {
  AbandonEvent,
  AbandonReason,
  DestroyEvent,
  LeakEvent,
  PoolEventMap,
  ResetEvent,
  RollbackErrorEvent,
  RollbackEvent,
} from './pool/events';
export { createPoolCluster, PoolCluster, PoolNamespace, type ClusterAwareness, type NodePattern, type NodeState, type NodeTransition, type PoolClusterEventMap, type PoolClusterNodeStats, type PoolClusterNodeSummary, type PoolClusterOptions, type PoolClusterSelector, type ResolvedClusterOptions, type SelectorName, type StatementOptions } from './cluster/index';
export { CHANNEL_NAMES, type DiagnosticsMessages, type ReleaseOutcome } from './pool/diagnostics';
export * from './errors';
export * from './replica/index';
