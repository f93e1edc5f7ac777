/**
 * mysql2's callback API of the pool cluster (`require('mysql2').createPoolCluster`),
 * over the promise cluster. Every callback is called from `process.nextTick`,
 * outside any promise chain: a callback that throws is an uncaught exception,
 * as with mysql2, never an unhandled rejection that would hide it.
 */
import { EventEmitter } from 'node:events';
import type { InspectOptions } from 'node:util';
import type { ExecuteValues, FieldPacket, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { InvalidOptionError } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import type { PoolOptions } from '../options';
import type { CallbackConnection, StatementCallback } from '../pool/callback';
import { PoolCluster } from './cluster';
import type { PoolClusterEventMap } from './events';
import type { PoolNamespace } from './namespace';
import type { PoolClusterOptions, PoolClusterSelector, ResolvedClusterOptions } from './options';
import type { NodePattern } from './selector';

/** The callback of `getConnection`: an error, or the connection (mysql2's callback API on a lease). */
export type ClusterConnectionCallback = (err: Error | null, connection: CallbackConnection) => void;

/**
 * The nodes of a callback cluster matching one pattern, with mysql2's
 * callback namespace API. Get one with `cluster.of(pattern, selector)`.
 */
export class CallbackPoolNamespace {
  /** @internal Use `cluster.of()`, or `namespace.poolNamespace`. */
  constructor(private readonly namespace: PoolNamespace) {
    namespace.callbackFace ??= this;
  }

  /** The promise namespace underneath (same nodes, same selector, same round-robin turn). */
  promise(): PoolNamespace {
    return this.namespace;
  }

  /** Takes a connection from a node of this namespace: `callback(null, connection)`; give it back with `connection.release()`. */
  getConnection(callback: ClusterConnectionCallback): void {
    const cb = requireCallback(callback);
    this.namespace.getConnection().then(
      (lease) => process.nextTick(cb, null, lease.connection),
      (error: Error) => process.nextTick(cb, error), // as mysql2: no connection with an error
    );
  }

  /** Runs one statement on a node of this namespace, then gives the connection back (as mysql2's namespace). */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback: StatementCallback<T>): void;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback: StatementCallback<T>): void;
  query(sql: string | QueryOptions, values: QueryValues | StatementCallback, callback?: StatementCallback): void {
    const [vals, cb] = typeof values === 'function' ? [undefined, values] : [values, requireCallback(callback)];
    deliver(this.namespace.query(sql, vals), cb);
  }

  /** Runs one prepared statement on a node of this namespace, then gives the connection back. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback: StatementCallback<T>): void;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: ExecuteValues, callback: StatementCallback<T>): void;
  execute(sql: string | QueryOptions, values: ExecuteValues | StatementCallback, callback?: StatementCallback): void {
    const [vals, cb] = typeof values === 'function' ? [undefined, values] : [values, requireCallback(callback)];
    deliver(this.namespace.execute(sql, vals), cb);
  }

  /** What `console.log(namespace)` shows. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('CallbackPoolNamespace', this.namespace.toJSON(), options);
  }
}

/**
 * A pool cluster with mysql2's callback API (`createCallbackPoolCluster`):
 * `add`, `remove`, `of`, `getConnection(pattern?, selector?, cb)`,
 * `end(cb?)`, mysql2's events. `promise()` is the same cluster with the
 * promise API. Events: {@link PoolClusterEventMap}.
 */
export class CallbackPoolCluster extends EventEmitter<PoolClusterEventMap> {
  private readonly cluster: PoolCluster;
  private readonly namespaces = new WeakMap<PoolNamespace, CallbackPoolNamespace>();

  /** @internal Use `createCallbackPoolCluster()`, or `cluster.poolCluster` for the face of a promise cluster. */
  constructor(options?: PoolClusterOptions, cluster?: PoolCluster) {
    super();
    this.cluster = cluster ?? new PoolCluster(options);
    this.cluster.callbackFace ??= this;
    // Forwarded as they happen. A listener here that throws throws inside the promise cluster's
    // emit, which rethrows it on the next tick (an uncaught exception) after finishing its bookkeeping.
    this.cluster.on('warn', (error) => super.emit('warn', error));
    this.cluster.on('remove', (id, transition) => super.emit('remove', id, transition));
    this.cluster.on('offline', (id, transition) => super.emit('offline', id, transition));
    this.cluster.on('online', (id, transition) => super.emit('online', id, transition));
  }

  /**
   * As on mysql2, whose promise cluster listens on the callback one: the
   * cluster's events emitted here reach the promise cluster's listeners
   * (and, through it, this face's).
   */
  override emit<K extends keyof PoolClusterEventMap>(event: K, ...args: PoolClusterEventMap[K]): boolean {
    return (this.cluster.emit as (event: K, ...args: PoolClusterEventMap[K]) => boolean)(event, ...args);
  }

  /** The validated options, defaults filled in. */
  get config(): ResolvedClusterOptions {
    return this.cluster.config;
  }

  /** True once `end()` was called. */
  get closed(): boolean {
    return this.cluster.closed;
  }

  /** This cluster with the promise API (the same nodes, events and state). */
  promise(): PoolCluster {
    return this.cluster;
  }

  /** Adds a node (see `PoolCluster.add`). Returns its id. */
  add(config: PoolOptions): string;
  add(id: string, config: PoolOptions | string): string;
  add(idOrConfig: string | PoolOptions, config?: PoolOptions | string): string {
    return typeof idOrConfig === 'string' ? this.cluster.add(idOrConfig, config as PoolOptions | string) : this.cluster.add(idOrConfig);
  }

  /** Removes the nodes matching `pattern` and ends their pools (see `PoolCluster.remove`). */
  remove(pattern: NodePattern): void {
    this.cluster.remove(pattern);
  }

  /** The namespace of the nodes matching `pattern` (see `PoolCluster.of`). Throws `ERR_INVALID_OPTION` for an unknown selector. */
  of(pattern?: NodePattern, selector?: PoolClusterSelector): CallbackPoolNamespace {
    const namespace = this.cluster.of(pattern, selector);
    let face = this.namespaces.get(namespace);
    if (face === undefined) {
      face = new CallbackPoolNamespace(namespace);
      this.namespaces.set(namespace, face);
    }
    return face;
  }

  /**
   * Takes a connection from a node matching `pattern` (default: any), picked
   * by `selector`: `callback(null, connection)`, or `callback(err)` with
   * `POOL_NOEXIST`, `POOL_NONEONLINE` or the last node's error.
   */
  getConnection(callback: ClusterConnectionCallback): void;
  getConnection(pattern: NodePattern, callback: ClusterConnectionCallback): void;
  getConnection(pattern: NodePattern, selector: PoolClusterSelector, callback: ClusterConnectionCallback): void;
  getConnection(
    pattern: NodePattern | ClusterConnectionCallback,
    selector?: PoolClusterSelector | ClusterConnectionCallback,
    callback?: ClusterConnectionCallback,
  ): void {
    if (typeof pattern === 'function') {
      this.of().getConnection(pattern);
    } else if (typeof selector === 'function') {
      this.of(pattern).getConnection(selector);
    } else {
      this.of(pattern, selector).getConnection(requireCallback(callback));
    }
  }

  /**
   * Ends every node's pool; `callback()` once they are closed, or
   * `callback(err)`. Without a callback an error is thrown (uncaught), as mysql2.
   */
  end(callback?: (err?: Error) => void): void {
    this.cluster.end().then(
      () => (callback ? process.nextTick(callback) : undefined),
      (error: Error) =>
        process.nextTick(() => {
          if (!callback) throw error;
          callback(error);
        }),
    );
  }

  /** `using cluster = createCallbackPoolCluster()`: starts `end()` at the end of the block, as mysql2. */
  [Symbol.dispose](): void {
    if (!this.cluster.closed) this.end();
  }

  /** `await using cluster = createCallbackPoolCluster()`: ends it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.cluster.end();
  }

  /** What `JSON.stringify(cluster)` shows: the promise cluster's summary, never a password. */
  toJSON(): ReturnType<PoolCluster['toJSON']> {
    return this.cluster.toJSON();
  }

  /** What `console.log(cluster)` shows. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('CallbackPoolCluster', this.cluster.toJSON(), options);
  }
}

function requireCallback<C extends Function>(callback: C | undefined): C {
  if (typeof callback !== 'function') throw new InvalidOptionError('callback', 'a callback function');
  return callback;
}

/** A statement's promise to mysql2's callback convention (`cb(err)` alone on failure), off the promise chain. */
function deliver(result: Promise<[QueryResult, FieldPacket[]]>, callback: StatementCallback): void {
  result.then(
    ([rows, fields]) => process.nextTick(callback, null, rows, fields),
    (error: QueryError) => process.nextTick(callback as (err: QueryError) => void, error),
  );
}
