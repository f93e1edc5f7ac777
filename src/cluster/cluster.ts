/**
 * PoolCluster: mysql2's `createPoolCluster` on rollback-pool pools. It keeps
 * the nodes (each a `Pool`, built with `new Pool(config)` and used through
 * its public API, plus one internal hook: the connect check of a
 * cluster-aware node, `health.ts`), finds the nodes a pattern matches,
 * applies the health rules of `node.ts` to what namespaces report (`failure.ts`
 * says what an error means), runs the background probes of offline
 * cluster-aware nodes (`probe.ts`), and emits mysql2's events. Picking a node,
 * failing over and retrying is the namespace's job (`namespace.ts`).
 *
 * The cluster itself has two states: open, then closed by `end()` (every
 * call rejects with `ERR_POOL_CLOSED` and nothing is counted; mysql2 would
 * count the closed pools' errors and remove its nodes one by one).
 */
import { EventEmitter } from 'node:events';
import type { InspectOptions } from 'node:util';
import type { Connection as RawConnection, ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { ClusterNodeExistsError, InvalidOptionError, PoolClosedError, RollbackPoolError, type GaleraNodeState } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import type { PoolOptions } from '../options';
import type { PoolConnection } from '../pool/lease';
import { Pool, type PoolStats } from '../pool/pool';
import type { ScopeOptions } from '../scope/scope';
import type { TransactionOptions } from '../tx/run';
import type { BeginOptions } from '../tx/sql';
import type { Transaction } from '../tx/transaction';
import type { NodeTransition, PoolClusterEventMap } from './events';
import { connectionLost, unavailability } from './failure';
import { canServe, notReady, queryHealth, type NodeHealth } from './health';
import { CallbackPoolCluster } from './callback';
import { PoolNamespace, type NamespaceHost, type StatementOptions } from './namespace';
import { ClusterNode, type NodeState } from './node';
import { checkNow, Probe, type ProbeOutcome } from './probe';
import { resolveClusterOptions, selectorName, type PoolClusterOptions, type PoolClusterSelector, type ResolvedClusterOptions } from './options';
import { checkPattern, patternKey, patternRegExp, type NodePattern } from './selector';

/** One node as `cluster.toJSON()` and `console.log(cluster)` show it: never its connection options' secrets. */
export interface PoolClusterNodeSummary {
  /** The node's id. */
  id: string;
  /** `online`, or `offline` until a checkout succeeds on it again. */
  state: NodeState;
  /** Failed checkouts not yet paid back by successful ones. */
  errorCount: number;
  /** Why it is in its state (its last transition), if it ever changed. */
  reason: string | undefined;
  /** The node pool's own summary: where it connects (host, port, user, database), whether it is closed, its stats. */
  pool: { connection: { host?: string; port?: number; user?: string; database?: string }; closed: boolean; stats: PoolStats };
}

/** One node in `cluster.stats()`. */
export interface PoolClusterNodeStats {
  /** `online`, `offline` or (for a node removed meanwhile) `removed`. */
  readonly state: NodeState;
  /** Watched as a cluster member (see `clusterAware`). */
  readonly clusterAware: boolean;
  /** Whether the server runs Galera, once a connection told (undefined before). */
  readonly galera: boolean | undefined;
  /** Offline until its background probe finds it able to serve (cluster-aware nodes). */
  readonly probing: boolean;
  /** Why it is in its state: the reason of its last transition (undefined if it never changed). */
  readonly reason: string | undefined;
  /** Milliseconds since that transition (or since the node was added). */
  readonly sinceMs: number;
  /** Failed checkouts not yet paid back (mysql2's count). */
  readonly errorCount: number;
  /** Times it went offline since it was added. */
  readonly offlineCount: number;
  /** Times it came back online since it was added. */
  readonly onlineCount: number;
  /** Calls that failed on it and went to another node instead (failover). */
  readonly failovers: number;
  /** Transactions re-run, and statements sent again, after failing on it (`retries`). */
  readonly retries: number;
  /** Background probes run. */
  readonly probes: number;
  /** Its Galera state as last seen (a connect check or a probe). */
  readonly lastState: GaleraNodeState | undefined;
  /** The node pool's own stats. */
  readonly pool: PoolStats;
}

/** Longest wait between two probes of a cluster-aware node when `restoreNodeTimeout` is 0. */
const DEFAULT_PROBE_CAP_MS = 1_000;

const CALLBACK_NOT_AVAILABLE = 'Callback function is not available with promise clients.';

/**
 * A set of pools, one per node, with mysql2/promise's `PoolCluster` API (make
 * one with `createPoolCluster`). Each node is a rollback-pool `Pool`: a
 * transaction abandoned on a connection from any node is rolled back before
 * that connection serves anyone else. Events: {@link PoolClusterEventMap}.
 */
export class PoolCluster extends EventEmitter<PoolClusterEventMap> implements NamespaceHost {
  /** The validated options, defaults filled in. */
  readonly config: ResolvedClusterOptions;
  /** Every node still in the cluster, by id. */
  private readonly nodes = new Map<string, ClusterNode>();
  /** Their ids in the order they were added (the order `ORDER` and `RR` follow, as mysql2's `_serviceableNodeIds`). */
  private serviceable: string[] = [];
  /** Ids matching each pattern seen, offline ones included; cleared whenever a node comes or goes. */
  private readonly findCache = new Map<string, readonly string[]>();
  private readonly namespaces = new Map<string, PoolNamespace>();
  private lastId = 0;
  private ending: Promise<void> | undefined;
  /** `end()` of pools whose node was removed, still under way: the cluster's `end()` waits for them too. */
  private readonly retiring = new Set<Promise<void>>();
  private everScoped = false;
  /** Background probes of offline cluster-aware nodes (at most one per node). */
  private readonly probes = new Map<ClusterNode, Probe>();
  /** Nodes being checked after a lost connection (`verify`), with the check: `end()` waits for them. */
  private readonly verifying = new Map<ClusterNode, Promise<void>>();

  /** @internal Use `createPoolCluster()`. */
  constructor(options?: PoolClusterOptions) {
    super();
    this.config = resolveClusterOptions(options);
  }

  /** @internal The callback face made for this cluster, if any (one per cluster). */
  callbackFace: CallbackPoolCluster | undefined;

  /**
   * This cluster with mysql2's callback API (mysql2/promise's
   * `poolCluster.poolCluster`): the same nodes, events and state.
   */
  get poolCluster(): CallbackPoolCluster {
    return this.callbackFace ?? new CallbackPoolCluster(undefined, this);
  }

  /** True once `end()` was called. */
  get closed(): boolean {
    return this.ending !== undefined;
  }

  /**
   * Adds a node: a new `Pool` with these options (mysql2's `PoolOptions` plus
   * ours, or a `mysql://` URL). Without an id the node is named `CLUSTER::1`,
   * `CLUSTER::2`... as in mysql2. Returns the node's id. Throws
   * `ERR_CLUSTER_NODE_EXISTS` for an id already in the cluster,
   * `ERR_INVALID_OPTION` for bad options, `ERR_POOL_CLOSED` after `end()`.
   */
  add(config: PoolOptions): string;
  add(id: string, config: PoolOptions | string): string;
  add(idOrConfig: string | PoolOptions, config?: PoolOptions | string): string {
    if (this.closed) throw new PoolClosedError();
    let id: string;
    let options: PoolOptions | string;
    if (typeof idOrConfig === 'string') {
      if (config === undefined) throw new InvalidOptionError('config', 'pool options or a mysql:// URL after the node id');
      id = idOrConfig;
      options = config;
    } else if (idOrConfig !== null && typeof idOrConfig === 'object') {
      id = this.nextId();
      options = idOrConfig;
    } else {
      throw new InvalidOptionError('id', 'a node id (string) or pool options');
    }
    // Checked before the pool is made: a refused node must leave nothing behind.
    if (this.nodes.has(id)) throw new ClusterNodeExistsError(id);
    const pool = new Pool(options);
    const node = new ClusterNode(id, pool, this.config);
    // Set before the pool's first connect (pools connect lazily): every connection of the node is checked.
    if (this.config.clusterAware !== false) pool.connectCheck = (raw) => this.checkConnection(node, raw);
    this.nodes.set(id, node);
    this.serviceable.push(id);
    this.findCache.clear();
    return id;
  }

  /**
   * Removes every node whose id matches `pattern` (offline ones included) and
   * ends their pools: leases still out from them are fenced and their
   * connections closed, so the server rolls back what they had open. Emits
   * nothing (as mysql2: `remove` is for nodes removed after errors).
   */
  remove(pattern: NodePattern): void {
    const checked = checkPattern(pattern, undefined);
    for (const id of this.findNodeIds(checked, true)) {
      const node = this.nodes.get(id);
      if (node === undefined) continue;
      node.markRemoved();
      this.removeNode(node);
    }
  }

  /**
   * The namespace of the nodes matching `pattern` (default `'*'`: all),
   * picking one with `selector` (default: the cluster's `defaultSelector`).
   * The same pattern and selector give the same namespace (so round robin
   * carries on). Throws `ERR_INVALID_OPTION` for an unknown selector.
   */
  of(pattern?: NodePattern, selector?: PoolClusterSelector): PoolNamespace {
    const checked = checkPattern(pattern, '*');
    const name = selector === undefined || (selector as string) === '' ? this.config.defaultSelector : selectorName(selector, 'selector');
    const key = `${patternKey(checked)}\u0000${name}`;
    let namespace = this.namespaces.get(key);
    if (namespace === undefined) {
      namespace = new PoolNamespace(this, checked, name);
      this.namespaces.set(key, namespace);
    }
    return namespace;
  }

  /**
   * Takes a connection from a node matching `pattern` (default: any), picked
   * by `selector`; give it back with `release()`. With `canRetry`, a node
   * that fails to give one is counted and another one tried. Rejects with
   * `POOL_NOEXIST`, `POOL_NONEONLINE`, the last node's error, or
   * `ERR_INVALID_OPTION` for an unknown selector.
   */
  getConnection(pattern?: NodePattern, selector?: PoolClusterSelector): Promise<PoolConnection> {
    if (typeof pattern === 'function' || typeof selector === 'function') throw new Error(CALLBACK_NOT_AVAILABLE);
    let namespace: PoolNamespace;
    try {
      namespace = this.of(pattern, selector);
    } catch (error) {
      return Promise.reject(error);
    }
    return namespace.getConnection();
  }

  /** `of().query()`: one statement on any node (mysql2/promise's cluster declares it, and rejects with a TypeError); `options.retries` as there. */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues, options?: StatementOptions): Promise<[T, FieldPacket[]]> {
    return this.of().query<T>(sql, values, options);
  }

  /** `of().execute()`: one prepared statement on any node; `options.retries` as `query`. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues, options?: StatementOptions): Promise<[T, FieldPacket[]]> {
    return this.of().execute<T>(sql, values, options);
  }

  /** `of().begin()`: `Pool.begin()` on a node picked by the default selector (see `PoolNamespace.begin`). */
  begin(options?: BeginOptions): Promise<Transaction> {
    return this.of().begin(options);
  }

  /** `of().transaction()`: `Pool.transaction()` on a node picked by the default selector (see `PoolNamespace.transaction`). */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.of().transaction(fn, options);
  }

  /** `of().withScope()`: `Pool.withScope()` on one node (see `PoolNamespace.withScope`). */
  withScope<T>(fn: () => Promise<T>, options?: ScopeOptions): Promise<T> {
    return this.of().withScope(fn, options);
  }

  /**
   * Ends every node's pool (and waits for those of nodes removed earlier).
   * From now on every call rejects with `ERR_POOL_CLOSED`. A second call
   * returns the same promise.
   */
  end(): Promise<void> {
    if (this.ending) return this.ending;
    for (const probe of this.probes.values()) probe.stop();
    this.probes.clear();
    const ends = [...this.nodes.values()].map((node) => node.pool.end());
    // A check under way holds a connection of its own (bounded by connectTimeout and the check's timeout).
    this.ending = Promise.all([...ends, ...this.retiring, ...this.verifying.values()]).then(noValue);
    return this.ending;
  }

  /** `await using cluster = createPoolCluster()`: ends it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  /**
   * Per node, by id: its state and why, whether it is cluster-aware (and
   * Galera), its last known Galera state, counters of transitions, failovers,
   * retries and probes, and its pool's stats.
   */
  stats(): Record<string, PoolClusterNodeStats> {
    const at = performance.now();
    const result: Record<string, PoolClusterNodeStats> = {};
    for (const id of this.serviceable) {
      const node = this.nodes.get(id)!;
      result[id] = {
        state: node.state,
        clusterAware: node.aware,
        galera: node.galera,
        probing: node.probing,
        reason: node.reason,
        sinceMs: Math.max(0, Math.round(at - node.changedAt)),
        errorCount: node.errorCount,
        offlineCount: node.counts.offline,
        onlineCount: node.counts.online,
        failovers: node.counts.failovers,
        retries: node.counts.retries,
        probes: this.probes.get(node)?.count ?? 0,
        lastState: node.lastState,
        pool: node.pool.stats(),
      };
    }
    return result;
  }

  /** What `JSON.stringify(cluster)` shows: its options and nodes, never a password. */
  toJSON(): { closed: boolean; config: ResolvedClusterOptions; nodes: PoolClusterNodeSummary[] } {
    const nodes = this.serviceable.map((id) => {
      const node = this.nodes.get(id)!;
      return { id, state: node.state, errorCount: node.errorCount, reason: node.reason, pool: node.pool.toJSON() };
    });
    return { closed: this.closed, config: this.config, nodes };
  }

  /** What `console.log(cluster)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('PoolCluster', this.toJSON(), options);
  }

  // ---- NamespaceHost ------------------------------------------------------------------

  /** @internal */
  get canRetry(): boolean {
    return this.config.canRetry;
  }

  /** @internal */
  get scoped(): boolean {
    return this.everScoped;
  }

  /** @internal */
  markScoped(): void {
    this.everScoped = true;
  }

  /** @internal mysql2's `_findNodeIds`: the match is cached per pattern, the online filter applied each time. */
  findNodeIds(pattern: NodePattern, includeOffline: boolean): readonly string[] {
    const key = patternKey(pattern);
    let ids = this.findCache.get(key);
    if (ids === undefined) {
      const expression = patternRegExp(pattern);
      ids = this.serviceable.filter((id) => id.match(expression) !== null);
      this.findCache.set(key, ids);
    }
    if (includeOffline) return ids;
    return ids.filter((id) => this.nodes.get(id)?.selectable === true);
  }

  /** @internal */
  getNode(id: string): ClusterNode | undefined {
    return this.nodes.get(id);
  }

  /** @internal A checkout failed on `node` before the caller's code ran (see `NamespaceHost`). */
  checkoutFailed(node: ClusterNode, error: unknown): boolean {
    if (this.takenDown(node, error)) return true;
    if (connectionLost(error)) this.verify(node);
    if (!isNodeFailure(error)) return false;
    // mysql2's `_increaseErrorCount`.
    const outcome = node.checkoutFailed(describeError(error));
    const transition = (): NodeTransition => ({ reason: `${node.errorCount} failed checkout(s) (removeNodeErrorCount ${this.config.removeNodeErrorCount}), the last: ${describeError(error)}`, error });
    if (outcome === 'offline') {
      this.notify('offline', node.id, transition());
    } else if (outcome === 'removed') {
      this.removeNode(node);
      this.notify('remove', node.id, transition());
    }
    return true;
  }

  /** @internal The caller's statement or callback failed on `node` (see `NamespaceHost`). */
  statementFailed(node: ClusterNode, error: unknown): boolean {
    if (this.takenDown(node, error)) return true;
    if (connectionLost(error)) this.verify(node);
    return node.probing;
  }

  /** @internal mysql2's `_decreaseErrorCount`. */
  nodeSucceeded(node: ClusterNode): void {
    if (node.checkoutSucceeded()) this.notify('online', node.id, { reason: node.reason ?? 'a checkout succeeded' });
  }

  /** @internal A call left `node` for another one (failover), or ran again (retries). */
  counted(node: ClusterNode, what: 'failovers' | 'retries'): void {
    node.counts[what]++;
  }

  /** @internal */
  warn(error: Error): void {
    this.notify('warn', error);
  }

  // ---- internals ----------------------------------------------------------------------

  /** mysql2's `CLUSTER::n`, skipping an id someone chose by hand (mysql2 would silently drop the new node). */
  private nextId(): string {
    let id: string;
    do id = `CLUSTER::${++this.lastId}`;
    while (this.nodes.has(id));
    return id;
  }

  /**
   * A cluster-aware node whose error says it cannot serve: offline at once,
   * and probed until it can. Returns true when the node is (now) probing.
   */
  private takenDown(node: ClusterNode, error: unknown): boolean {
    if (!node.aware || node.state === 'removed' || this.closed) return false;
    const reason = unavailability(error);
    if (reason === undefined) return false;
    if (node.unavailable(reason)) {
      const galera = error instanceof RollbackPoolError && error.code === 'ERR_NODE_NOT_READY' ? node.lastState : undefined;
      this.notify('offline', node.id, { reason, error, ...(galera ? { galera } : {}) });
      this.probe(node);
    }
    return true;
  }

  /**
   * A connection of a cluster-aware node was lost: one `KILL`, or the node
   * died? Checked at once on a connection of its own (one check at a time per
   * node): a node that refuses it, or cannot serve, goes offline now rather
   * than at the next call that happens to pick it.
   */
  private verify(node: ClusterNode): void {
    if (!node.aware || node.probing || node.state === 'removed' || this.closed || this.verifying.has(node)) return;
    const check = checkNow(node.pool).then((outcome) => {
      this.verifying.delete(node);
      if (outcome.health !== undefined) node.noteHealth(outcome.health);
      if (outcome.serving || this.closed) return;
      this.takenDown(node, outcome.error ?? (outcome.health !== undefined ? notReady(outcome.health) : undefined));
    });
    this.verifying.set(node, check);
  }

  /** Starts (or keeps) the background probe of an offline cluster-aware node. */
  private probe(node: ClusterNode): void {
    let probe = this.probes.get(node);
    if (probe === undefined) {
      const cap = this.config.restoreNodeTimeout > 0 ? this.config.restoreNodeTimeout : DEFAULT_PROBE_CAP_MS;
      probe = new Probe(node.pool, cap, (outcome) => this.probed(node, outcome));
      this.probes.set(node, probe);
    }
    probe.start();
  }

  private probed(node: ClusterNode, outcome: ProbeOutcome): void {
    if (outcome.health !== undefined) node.noteHealth(outcome.health);
    if (!outcome.serving || this.closed) return;
    if (node.probeServed(outcome.reason)) {
      this.notify('online', node.id, { reason: outcome.reason, ...(node.lastState && node.galera ? { galera: node.lastState } : {}) });
    }
  }

  /**
   * The connect check of every new connection of a node (unless
   * `clusterAware: false`): on Galera, refuses a connection to a node that
   * cannot serve (`ERR_NODE_NOT_READY`). A server without Galera, once known,
   * is not asked again.
   */
  private async checkConnection(node: ClusterNode, raw: RawConnection): Promise<void> {
    if (node.galera === false) return;
    let health: NodeHealth;
    try {
      health = await queryHealth(raw);
    } catch (error) {
      // A server (or a proxy in front of it) that refuses the statement itself is no Galera node: never
      // refuse its connections for that. A lost connection is a failed connect, as any.
      if ((error as { fatal?: boolean }).fatal === true || typeof (error as { sqlState?: unknown }).sqlState !== 'string') throw error;
      node.galera = false;
      return;
    }
    node.noteHealth(health);
    if (!canServe(health)) throw notReady(health);
  }

  private removeNode(node: ClusterNode): void {
    if (!this.nodes.delete(node.id)) return;
    this.probes.get(node)?.stop();
    this.probes.delete(node);
    this.serviceable = this.serviceable.filter((id) => id !== node.id);
    this.findCache.clear();
    const retired = node.pool.end().then(noValue, noValue);
    this.retiring.add(retired);
    void retired.then(() => this.retiring.delete(retired));
  }

  /**
   * Emits without letting a throwing listener interrupt the cluster's
   * bookkeeping (a node half removed, a retry not made): the listener's error
   * is rethrown on the next tick, as an uncaught exception, like the pool's own events.
   */
  private notify<K extends keyof PoolClusterEventMap>(event: K, ...args: PoolClusterEventMap[K]): void {
    if (this.listenerCount(event) === 0) return;
    try {
      (this.emit as (event: K, ...args: PoolClusterEventMap[K]) => boolean)(event, ...args);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }
}

function noValue(): void {
  return undefined;
}

/**
 * Does a failed checkout say something about the node (mysql2's rules)? A
 * connect error (refused, unreachable, access denied, unknown database...),
 * a connection lost during BEGIN, or no connection within `acquireTimeoutMs`
 * (a node that does not answer): yes, as mysql2 counts every checkout error.
 * A full pool (`waitForConnections: false`, `queueLimit`) is busy, not sick;
 * bad options, a closed request scope: the caller's doing.
 */
function isNodeFailure(error: unknown): boolean {
  if (!(error instanceof RollbackPoolError)) return true;
  return error.code === 'ERR_ACQUIRE_TIMEOUT' || error.code === 'ERR_CONNECTION_LOST' || error.code === 'ERR_NODE_NOT_READY';
}

function describeError(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return typeof e?.code === 'string' && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}
