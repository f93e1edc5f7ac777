/**
 * The pool cluster's events, typed: mysql2's four, with mysql2's arguments.
 */

/** Events of `PoolCluster` and `CallbackPoolCluster`. */
export interface PoolClusterEventMap {
  /**
   * A checkout failed on a node and is being tried again on another one
   * (`canRetry`); the argument is the error of the failed attempt.
   */
  warn: [error: Error];
  /** A node was removed for good after `removeNodeErrorCount` errors (not emitted by `cluster.remove()`, as mysql2). */
  remove: [nodeId: string];
  /** A node was taken offline for `restoreNodeTimeout` ms after `removeNodeErrorCount` errors. */
  offline: [nodeId: string];
  /** An offline node served a checkout again. */
  online: [nodeId: string];
}
