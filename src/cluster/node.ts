/**
 * One node of a pool cluster: an id, a rollback-pool `Pool`, and the health
 * bookkeeping mysql2's cluster keeps per node (`errorCount`, `_offlineUntil`).
 *
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> online: cluster.add()
 *   online --> online: checkout failed, errors < removeNodeErrorCount (errors + 1) / succeeded (errors - 1)
 *   online --> offline: checkout failed, errors reach removeNodeErrorCount, restoreNodeTimeout > 0 ('offline')
 *   online --> removed: checkout failed, errors reach removeNodeErrorCount, restoreNodeTimeout = 0 ('remove')
 *   offline --> offline: checkout failed again ('offline', a new deadline)
 *   offline --> online: checkout succeeded ('online')
 *   online --> removed: cluster.remove(pattern)
 *   offline --> removed: cluster.remove(pattern)
 *   removed --> [*]: its pool ended
 * ```
 *
 * An offline node is not selectable until `restoreNodeTimeout` has passed;
 * after that it is selectable again but stays `offline` until a checkout on
 * it succeeds (that is when mysql2 emits `online`): a node that is still down
 * goes straight back offline at its first failure. A checkout started before
 * a transition may settle after it; its result still counts (as in mysql2),
 * except on a removed node, which has no state left to change.
 *
 * The node only says which transition happened; the cluster emits the event
 * and, for `removed`, ends the pool.
 */
import type { Pool } from '../pool/pool';

/** Where a node stands (see the diagram above). */
export type NodeState = 'online' | 'offline' | 'removed';

/** What a failed checkout did to the node. */
export type FailureOutcome = 'counted' | 'offline' | 'removed';

/** The health rules, from the cluster's options. */
export interface HealthRules {
  readonly removeNodeErrorCount: number;
  readonly restoreNodeTimeout: number;
}

/** mysql2 measures offline periods on a monotonic clock; so do we (wall-clock jumps do not restore nodes). */
function now(): number {
  return Math.floor(performance.now());
}

/** @internal A node of a cluster; the cluster owns it. */
export class ClusterNode {
  private current: NodeState = 'online';
  private errors = 0;
  /** Monotonic ms after which an offline node may be selected again. */
  private offlineUntil = 0;

  constructor(
    /** The node's id (as given to `add`, or `CLUSTER::n`). */
    readonly id: string,
    /** The node's pool: every checkout on this node goes through it. */
    readonly pool: Pool,
    private readonly rules: HealthRules,
  ) {}

  /** Where the node stands. */
  get state(): NodeState {
    return this.current;
  }

  /** Failed checkouts not yet paid back by successful ones (mysql2's `errorCount`). */
  get errorCount(): number {
    return this.errors;
  }

  /** May a namespace pick this node now: online, or offline with its timeout passed. */
  get selectable(): boolean {
    if (this.current === 'online') return true;
    return this.current === 'offline' && this.offlineUntil <= now();
  }

  /** A checkout on this node failed (mysql2's `_increaseErrorCount`). */
  checkoutFailed(): FailureOutcome | undefined {
    if (this.current === 'removed') return undefined; // mysql2 would emit 'remove' a second time
    this.errors++;
    if (this.rules.removeNodeErrorCount > this.errors) return 'counted';
    if (this.rules.restoreNodeTimeout > 0) {
      this.current = 'offline';
      this.offlineUntil = now() + this.rules.restoreNodeTimeout;
      return 'offline';
    }
    this.current = 'removed';
    return 'removed';
  }

  /**
   * A checkout on this node succeeded (mysql2's `_decreaseErrorCount`): one
   * error paid back (the count first brought within 1..removeNodeErrorCount,
   * as mysql2). Returns true when that brought the node back online.
   */
  checkoutSucceeded(): boolean {
    if (this.current === 'removed') return false;
    this.errors = Math.max(Math.min(this.errors, this.rules.removeNodeErrorCount), 1) - 1;
    if (this.current !== 'offline') return false;
    this.current = 'online';
    this.offlineUntil = 0;
    return true;
  }

  /** `cluster.remove()` took the node out (no event, as mysql2). */
  markRemoved(): void {
    this.current = 'removed';
  }
}
