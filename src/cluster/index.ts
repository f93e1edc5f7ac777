/**
 * `createPoolCluster`: mysql2's pool cluster, with a rollback-pool `Pool` on
 * every node. The promise face (`PoolCluster`, as mysql2/promise) and the
 * callback face (`CallbackPoolCluster`, as mysql2's core).
 */
import { CallbackPoolCluster } from './callback';
import { PoolCluster } from './cluster';
import type { PoolClusterOptions } from './options';

/**
 * Creates a pool cluster, as mysql2/promise's `createPoolCluster`: add nodes
 * with `cluster.add(id, options)`, pick them with `cluster.of(pattern, selector)`.
 * Throws `ERR_INVALID_OPTION` naming a bad option.
 *
 * ```ts
 * import { createPoolCluster } from 'rollback-pool';
 * const cluster = createPoolCluster({ defaultSelector: 'ORDER' });
 * cluster.add('primary', 'mysql://root@db1:3306/app');
 * cluster.add('replica1', 'mysql://root@db2:3306/app');
 * const [rows] = await cluster.of('replica*', 'RR').query('SELECT 1');
 * ```
 */
export function createPoolCluster(options?: PoolClusterOptions): PoolCluster {
  return new PoolCluster(options);
}

/** Creates a pool cluster with mysql2's callback API (`require('mysql2').createPoolCluster`); `promise()` gives the promise face. */
export function createCallbackPoolCluster(options?: PoolClusterOptions): CallbackPoolCluster {
  return new CallbackPoolCluster(options);
}

export { PoolCluster, type PoolClusterNodeStats, type PoolClusterNodeSummary } from './cluster';
export { PoolNamespace, type StatementOptions } from './namespace';
export { CallbackPoolCluster, CallbackPoolNamespace, type ClusterConnectionCallback } from './callback';
export type { NodeTransition, PoolClusterEventMap } from './events';
export type { ClusterAwareness, NodeState } from './node';
export type { PoolClusterOptions, PoolClusterSelector, ResolvedClusterOptions, SelectorName } from './options';
export type { NodePattern } from './selector';
