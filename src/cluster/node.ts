/**
 * One node of a pool cluster: an id, a rollback-pool `Pool`, and its health.
 *
 * Two sets of rules, per node. mysql2's (`errorCount`, `_offlineUntil`), for
 * every node that is not cluster-aware, and for the failures of a
 * cluster-aware node that do not say it is down (access denied, an unknown
 * database): counted. And, for a cluster-aware node (a Galera node with
 * `clusterAware: 'auto'`, any node with `true`), what a cluster member does:
 * down or not synced is a state, not a count.
 *
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> online: cluster.add()
 *   online --> online: checkout failed, errors < removeNodeErrorCount (errors + 1) / succeeded (errors - 1)
 *   online --> offline: checkout failed, errors reach removeNodeErrorCount, restoreNodeTimeout > 0 ('offline')
 *   online --> removed: checkout failed, errors reach removeNodeErrorCount, restoreNodeTimeout = 0 ('remove')
 *   offline --> offline: checkout failed again ('offline', a new deadline)
 *   offline --> online: checkout succeeded ('online')
 *   online --> probing: cluster-aware, unavailable: refused, lost, 1047, not synced at connect ('offline', at once)
 *   offline --> probing: cluster-aware, unavailable
 *   probing --> probing: probe: still cannot serve (backoff doubles, capped)
 *   probing --> online: probe: can serve ('online')
 *   online --> removed: cluster.remove(pattern)
 *   offline --> removed: cluster.remove(pattern)
 *   probing --> removed: cluster.remove(pattern)
 *   removed --> [*]: its pool ended
 * ```
 *
 * `probing` is reported as `offline` (mysql2's state names); it differs in
 * the way back: an offline node of mysql2's rules is selectable again once
 * `restoreNodeTimeout` has passed and `online` at its first successful
 * checkout; a probing node is not selectable at all until its background
 * probe (probe.ts) finds it able to serve. A probing node is never removed for
 * being down: cluster members come back by design (IST, bootstrap).
 *
 * The node only says which transition happened; the cluster emits the event,
 * runs the probe and, for `removed`, ends the pool.
 */
import type { GaleraNodeState } from '../errors';
import type { Pool } from '../pool/pool';
import type { NodeHealth } from './health';

/** Where a node stands (see the diagram above). */
export type NodeState = 'online' | 'offline' | 'removed';

/** What a failed checkout did to the node. */
export type FailureOutcome = 'counted' | 'offline' | 'removed';

/** `true`: every node is watched as a cluster member; `'auto'`: Galera nodes are; `false`: none (mysql2's rules). */
export type ClusterAwareness = boolean | 'auto';

/** The health rules, from the cluster's options. */
export interface HealthRules {
  readonly removeNodeErrorCount: number;
  readonly restoreNodeTimeout: number;
  readonly clusterAware: ClusterAwareness;
}

/** mysql2 measures offline periods on a monotonic clock; so do we (wall-clock jumps do not restore nodes). */
function now(): number {
  return Math.floor(performance.now());
}

/** @internal A node of a cluster; the cluster owns it. */
export class ClusterNode {
  private current: NodeState = 'online';
  private errors = 0;
  /** Monotonic ms after which an offline node may be selected again (mysql2's rules). */
  private offlineUntil = 0;
  /** Cluster-aware and offline: only a probe brings it back. */
  private probingValue = false;
  /** True / false once a connection said whether the server runs Galera. */
  galera: boolean | undefined;
  /** Its Galera state, as last seen (a connect check or a probe). */
  lastState: GaleraNodeState | undefined;
  /** Why it is in its current state (the last transition's reason). */
  reason: string | undefined;
  /** Monotonic ms of the last transition (or of `add`). */
  changedAt = now();
  /** Counters for `cluster.stats()`. */
  readonly counts = { offline: 0, online: 0, failovers: 0, retries: 0 };

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

  /** Watched as a cluster member: `clusterAware: true`, or `'auto'` and the server runs Galera. */
  get aware(): boolean {
    return this.rules.clusterAware === true || (this.rules.clusterAware === 'auto' && this.galera === true);
  }

  /** Offline until a probe finds it able to serve. */
  get probing(): boolean {
    return this.probingValue;
  }

  /** May a namespace pick this node now: online, or offline (mysql2's rules) with its timeout passed. */
  get selectable(): boolean {
    if (this.current === 'online') return true;
    return this.current === 'offline' && !this.probingValue && this.offlineUntil <= now();
  }

  /** What a connect check or a probe saw. */
  noteHealth(health: NodeHealth): void {
    this.galera = health.galera;
    if (health.galera) this.lastState = health.state;
  }

  /** A checkout on this node failed (mysql2's `_increaseErrorCount`). */
  checkoutFailed(reason: string): FailureOutcome | undefined {
    if (this.current === 'removed' || this.probingValue) return undefined; // mysql2 would emit 'remove' a second time
    this.errors++;
    if (this.rules.removeNodeErrorCount > this.errors) return 'counted';
    if (this.rules.restoreNodeTimeout > 0) {
      this.offlineUntil = now() + this.rules.restoreNodeTimeout;
      this.transition('offline', reason);
      return 'offline';
    }
    this.transition('removed', reason);
    return 'removed';
  }

  /**
   * A cluster-aware node cannot serve (`reason` says why): offline at once,
   * until a probe says otherwise. Returns true when that is a change (the
   * cluster emits `offline` and starts the probe).
   */
  unavailable(reason: string): boolean {
    if (this.current === 'removed' || this.probingValue) return false;
    this.probingValue = true;
    this.transition('offline', reason);
    return true;
  }

  /** The probe found the node able to serve. Returns true when that brought it back online. */
  probeServed(reason: string): boolean {
    if (this.current === 'removed' || !this.probingValue) return false;
    this.probingValue = false;
    this.errors = 0;
    this.offlineUntil = 0;
    this.transition('online', reason);
    return true;
  }

  /**
   * A checkout on this node succeeded (mysql2's `_decreaseErrorCount`): one
   * error paid back (the count first brought within 1..removeNodeErrorCount,
   * as mysql2). Returns true when that brought the node back online (never
   * for a probing node: a checkout that started before it went offline proves
   * nothing about now).
   */
  checkoutSucceeded(): boolean {
    if (this.current === 'removed' || this.probingValue) return false;
    this.errors = Math.max(Math.min(this.errors, this.rules.removeNodeErrorCount), 1) - 1;
    if (this.current !== 'offline') return false;
    this.offlineUntil = 0;
    this.transition('online', 'a checkout succeeded');
    return true;
  }

  /** `cluster.remove()` took the node out (no event, as mysql2). */
  markRemoved(): void {
    this.probingValue = false;
    this.transition('removed', 'cluster.remove()');
  }

  private transition(to: NodeState, reason: string): void {
    this.current = to;
    this.reason = reason;
    this.changedAt = now();
    if (to === 'offline') this.counts.offline++;
    else if (to === 'online') this.counts.online++;
  }
}
