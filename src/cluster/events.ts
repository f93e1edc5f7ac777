/**
 * The pool cluster's events, typed: mysql2's four, with mysql2's arguments
 * first (a listener written for mysql2 keeps working), then why.
 */
import type { GaleraNodeState } from '../errors';

/** Why a node changed state: the second argument of `offline`, `online` and `remove`. */
export interface NodeTransition {
  /**
   * What happened, in words: `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:3307`,
   * `1047 WSREP has not yet prepared node for application use`, `probe: Synced, Primary`,
   * `5 failed checkouts (removeNodeErrorCount)`...
   */
  readonly reason: string;
  /** The error that caused it, when one did (never carries a password). */
  readonly error?: unknown;
  /** The node's Galera state, when the check that decided saw it. */
  readonly galera?: GaleraNodeState;
}

/** Events of `PoolCluster` and `CallbackPoolCluster`. */
export interface PoolClusterEventMap {
  /**
   * A call failed on a node and is being tried again on another one
   * (`canRetry`); the argument is the error of the failed attempt.
   */
  warn: [error: Error];
  /** A node was removed for good after `removeNodeErrorCount` errors (not emitted by `cluster.remove()`, as mysql2). */
  remove: [nodeId: string, transition: NodeTransition];
  /**
   * A node was taken offline: after `removeNodeErrorCount` errors for
   * `restoreNodeTimeout` ms (mysql2's rules), or at once, until a probe finds
   * it able to serve, when a cluster-aware node is down or not synced.
   */
  offline: [nodeId: string, transition: NodeTransition];
  /** An offline node is back: it served a checkout again (mysql2's rules), or its probe found it able to serve. */
  online: [nodeId: string, transition: NodeTransition];
}
