/**
 * PoolNamespace: the nodes of a cluster whose id matches one pattern, and the
 * way one of them is picked for each call (mysql2's `PoolNamespace`). Every
 * call picks a node and runs on that node's `Pool`, so whatever node serves
 * it, a transaction abandoned on the connection it got is rolled back by that
 * pool before the connection serves anyone else.
 *
 * Failover (mysql2's `getConnection` / `_getConnection`): when taking a
 * connection fails for a reason that lies with the node, the node's error
 * count goes up (which may take it offline or remove it), and with `canRetry`
 * the call starts over on the nodes still online, after a `warn` event. A
 * failure of the caller's own statements or callback is never counted and
 * never retried: only the checkout is, so nothing the caller sent can run twice.
 */
import type { InspectOptions } from 'node:util';
import type { ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { PoolClosedError, PoolNoneOnlineError, PoolNotExistError, RollbackPoolError } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import type { PoolConnection } from '../pool/lease';
import type { Pool } from '../pool/pool';
import type { ScopeOptions } from '../scope/scope';
import type { TransactionOptions } from '../tx/run';
import type { BeginOptions } from '../tx/sql';
import type { Transaction } from '../tx/transaction';
import type { ClusterNode } from './node';
import type { SelectorName } from './options';
import { pinnedNode, runPinned } from './pin';
import { makeSelector, patternRegExp, type NodePattern, type Selector } from './selector';

/** @internal What a namespace needs from its cluster. */
export interface NamespaceHost {
  readonly closed: boolean;
  readonly canRetry: boolean;
  /** True once any `withScope` ran on the cluster: until then no call looks for a pinned node. */
  readonly scoped: boolean;
  markScoped(): void;
  /** Ids of the nodes matching `pattern`, in the order they were added; only selectable ones unless `includeOffline`. */
  findNodeIds(pattern: NodePattern, includeOffline: boolean): readonly string[];
  getNode(id: string): ClusterNode | undefined;
  /** A checkout failed on `node` for a reason that lies with the node. */
  nodeFailed(node: ClusterNode): void;
  nodeSucceeded(node: ClusterNode): void;
  warn(error: Error): void;
}

/**
 * Starts the work on a node's pool. `checkedOut()` says the connection was
 * taken and the caller's own code is about to run: from then on a failure
 * is the caller's, not the node's.
 */
type Start<R> = (pool: Pool, checkedOut: () => void) => Promise<R>;

const CALLBACK_NOT_AVAILABLE = 'Callback function is not available with promise clients.';

/**
 * The nodes of a cluster matching one pattern, with mysql2/promise's
 * namespace API (`query`, `execute`, `getConnection`) plus rollback-pool's
 * `begin`, `transaction` and `withScope`. Get one with `cluster.of(pattern, selector)`.
 */
export class PoolNamespace {
  private readonly select: Selector;
  private readonly expression: RegExp;

  /** @internal Use `cluster.of()`. */
  constructor(
    private readonly host: NamespaceHost,
    /** The node id pattern: an exact id, a glob with `*`, or a RegExp. */
    readonly pattern: NodePattern,
    /** How a node is picked among the online ones matching `pattern`. */
    readonly selector: SelectorName,
  ) {
    this.select = makeSelector(selector);
    this.expression = patternRegExp(pattern);
  }

  /**
   * Takes a connection from a node of this namespace; give it back with
   * `release()`. Rejects with `POOL_NOEXIST` when no node matches,
   * `POOL_NONEONLINE` when all matching nodes are offline, or the last
   * node's error when every retry failed.
   */
  getConnection(): Promise<PoolConnection> {
    if (typeof arguments[0] === 'function') throw new Error(CALLBACK_NOT_AVAILABLE);
    const pinned = this.pinned();
    if (pinned) return pinned.pool.getConnection();
    return this.onNode((pool) => pool.getConnection());
  }

  /**
   * Runs one statement (text protocol) on a connection taken from a node of
   * this namespace, then gives the connection back, as mysql2's namespace.
   */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(CALLBACK_NOT_AVAILABLE);
    const pinned = this.pinned();
    if (pinned) return pinned.pool.query<T>(sql, values);
    return this.runStatement(this.query, (lease) => lease.query<T>(sql, values));
  }

  /** Runs one prepared statement (binary protocol) on a node of this namespace, as mysql2's namespace. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(CALLBACK_NOT_AVAILABLE);
    const pinned = this.pinned();
    if (pinned) return pinned.pool.execute<T>(sql, values);
    return this.runStatement(this.execute, (lease) => lease.execute<T>(sql, values));
  }

  /**
   * `Pool.begin()` on a node of this namespace: takes a connection and begins
   * a transaction on it; `commit()` or `rollback()` gives the connection back,
   * and so does abandoning the handle, after which that node's pool rolls it back.
   * A node that fails to give a connection (or to begin) is failed over like
   * `getConnection()`.
   */
  begin(options?: BeginOptions): Promise<Transaction> {
    const pinned = this.pinned();
    if (pinned) return pinned.pool.begin(options);
    return this.onNode((pool) => pool.begin(options));
  }

  /**
   * `Pool.transaction()` on a node of this namespace: runs `fn` in a
   * transaction, COMMIT if it resolves, ROLLBACK if it throws. Failover
   * applies until `fn` starts; once it has, an error is `fn`'s (or the
   * commit's) and is never retried on another node (`retries` re-runs `fn` on
   * the same node after a deadlock, as `Pool.transaction`).
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const pinned = this.pinned();
    if (pinned) return pinned.pool.transaction(fn, options);
    return this.onNode(
      (pool, checkedOut) =>
        pool.transaction((tx) => {
          checkedOut();
          return fn(tx);
        }, options),
      // The caller's signal stopped it before `fn` ran: its reason is not the node's failure.
      () => options?.signal?.aborted === true,
    );
  }

  /**
   * `Pool.withScope()` on one node of this namespace, picked when the scope
   * opens: `fn` runs in that pool's request scope, and every call `fn` makes
   * through this cluster, on any namespace whose pattern covers that node,
   * goes to that node and takes part in the scope (calls through a namespace
   * that does not cover it are routed as usual, outside the scope). No
   * connection is taken when the scope opens, so there is no failover: a
   * call inside the scope fails with that node's error. A nested `withScope`
   * covering the node joins the open scope, as on a Pool.
   */
  withScope<T>(fn: () => Promise<T>, options?: ScopeOptions): Promise<T> {
    const pinned = this.pinned();
    if (pinned) return pinned.pool.withScope(fn, options);
    let node: ClusterNode;
    try {
      node = this.pick();
    } catch (error) {
      return Promise.reject(error);
    }
    this.host.markScoped();
    return node.pool.withScope(() => runPinned(this.host, node, fn), options);
  }

  /** What `JSON.stringify(namespace)` shows. */
  toJSON(): { pattern: string; selector: SelectorName } {
    return { pattern: String(this.pattern), selector: this.selector };
  }

  /** What `console.log(namespace)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('PoolNamespace', this.toJSON(), options);
  }

  // ---- internals ----------------------------------------------------------------------

  /** The node of the current request scope, when this namespace covers it. */
  private pinned(): ClusterNode | undefined {
    if (!this.host.scoped) return undefined;
    const node = pinnedNode(this.host);
    return node !== undefined && node.id.match(this.expression) !== null ? node : undefined;
  }

  /** mysql2's `_getClusterNode` (one online node: no selector call, so round robin does not advance). */
  private pick(): ClusterNode {
    if (this.host.closed) throw new PoolClosedError();
    const ids = this.host.findNodeIds(this.pattern, false);
    if (ids.length === 0) {
      throw this.host.findNodeIds(this.pattern, true).length > 0 ? new PoolNoneOnlineError(this.pattern) : new PoolNotExistError(this.pattern);
    }
    const id = ids.length === 1 ? ids[0]! : this.select(ids);
    return this.host.getNode(id)!;
  }

  /**
   * Runs `start` on a picked node; a failure before `checkedOut()` that lies
   * with the node is counted on it and, with `canRetry` and a node still
   * online, retried on a newly picked node (which may be the same one, as in
   * mysql2: with `ORDER` the first node is tried until it goes offline or is removed).
   */
  private onNode<R>(start: Start<R>, stoppedByCaller?: () => boolean): Promise<R> {
    let node: ClusterNode;
    try {
      node = this.pick();
    } catch (error) {
      return Promise.reject(error);
    }
    let settled = false;
    const checkedOut = (): void => {
      if (settled) return;
      settled = true;
      this.host.nodeSucceeded(node);
    };
    return start(node.pool, checkedOut).then(
      (result) => {
        checkedOut();
        return result;
      },
      (error: unknown) => {
        if (settled) throw error; // the caller's own code failed: not the node's business
        settled = true;
        if (this.host.closed) throw new PoolClosedError();
        if (stoppedByCaller?.()) throw error;
        // A node removed while this checkout was under way had its pool ended: try elsewhere, count nothing.
        const removed = node.state === 'removed';
        if (!removed && !isNodeFailure(error)) throw error;
        if (!removed) this.host.nodeFailed(node);
        if (!this.host.canRetry || this.host.findNodeIds(this.pattern, false).length === 0) throw error;
        this.host.warn(error as Error);
        return this.onNode(start, stoppedByCaller);
      },
    );
  }

  /** A pool-level statement as mysql2's namespace runs it: take a connection (with failover), run, give it back. */
  private runStatement<R>(api: Function, run: (lease: PoolConnection) => Promise<R>): Promise<R> {
    // The statement runs after an asynchronous checkout: capture the caller's stack now, as mysql2/promise does.
    const caller = this.traced() ? captureCaller(api) : undefined;
    const ran = this.onNode((pool) => pool.getConnection()).then((lease) => run(lease).finally(() => lease.release()));
    if (caller === undefined) return ran;
    return ran.catch((error: unknown) => {
      applyCallerStack(error, caller);
      throw error;
    });
  }

  /** mysql2's `namespace.trace`: true when a matching node has `trace` on (mysql2's default), or none matches. */
  private traced(): boolean {
    const ids = this.host.findNodeIds(this.pattern, true);
    if (ids.length === 0) return true;
    return ids.some((id) => this.host.getNode(id)?.pool.options.connectionConfig.trace === true);
  }
}

/**
 * Does a failed checkout say something about the node? A connect error
 * (refused, unreachable, access denied, unknown database...), a connection
 * lost during BEGIN, or no connection within `acquireTimeoutMs` (a node that
 * does not answer): yes, as mysql2 counts every checkout error. A full pool
 * (`waitForConnections: false`, `queueLimit`) is busy, not sick; bad options,
 * a closed request scope: the caller's doing. Those are passed on as they are.
 */
function isNodeFailure(error: unknown): boolean {
  if (!(error instanceof RollbackPoolError)) return true;
  return error.code === 'ERR_ACQUIRE_TIMEOUT' || error.code === 'ERR_CONNECTION_LOST';
}

interface StackHolder {
  stack?: string;
}

function captureCaller(below: Function): StackHolder {
  const holder: StackHolder = {};
  Error.captureStackTrace(holder, below);
  return holder;
}

/** As mysql2/promise: the error keeps its identity and fields; its stack shows the caller's frames. */
function applyCallerStack(error: unknown, holder: StackHolder): void {
  if (!(error instanceof Error) || typeof holder.stack !== 'string') return;
  const lines = holder.stack.split('\n');
  lines[0] = `${error.name}: ${error.message}`;
  error.stack = lines.join('\n');
}
