/**
 * PoolNamespace: the nodes of a cluster whose id matches one pattern, and the
 * way one of them is picked for each call (mysql2's `PoolNamespace`). Every
 * call picks a node and runs on that node's `Pool`, so whatever node serves
 * it, a transaction abandoned on the connection it got is rolled back by that
 * pool before the connection serves anyone else.
 *
 * Failover (mysql2's `getConnection` / `_getConnection`): when taking a
 * connection fails for a reason that lies with the node, the node's error
 * count goes up (which may take it offline or remove it; a cluster-aware
 * node that is down goes offline at once), and with `canRetry` the call
 * starts over on the nodes still online, after a `warn` event. Nothing the
 * caller sent runs twice unless the server proved it did not run or rolled
 * it back (`failure.ts`):
 *
 * - an autocommit `query`/`execute` refused with 1047 by a cluster-aware node
 *   (it never ran) goes to another node, like a refused checkout; with
 *   `retries`, one the server rolled back (1213) is sent again;
 * - `transaction(fn, { retries })` re-runs `fn`, on whatever node the selector
 *   picks among those online, after an error that proves nothing of the
 *   attempt committed; never after `ERR_COMMIT_OUTCOME_UNKNOWN`.
 *
 * Any other failure of the caller's statements or callback is thrown as it is.
 */
import type { InspectOptions } from 'node:util';
import type { ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { InvalidOptionError, PoolClosedError, PoolNoneOnlineError, PoolNotExistError, TwoPhaseUnsupportedError } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import type { PoolConnection } from '../pool/lease';
import type { Pool } from '../pool/pool';
import type { ScopeOptions } from '../scope/scope';
import type { TransactionOptions } from '../tx/run';
import type { BeginOptions } from '../tx/sql';
import type { Transaction } from '../tx/transaction';
import { provesNothingCommitted, retryDelayMs, statementNeverRan, statementRolledBack } from './failure';
import { CallbackPoolNamespace } from './callback';
import type { ClusterNode } from './node';
import type { SelectorName } from './options';
import { pinnedNode, runPinned } from './pin';
import { makeSelector, patternRegExp, type NodePattern, type Selector } from './selector';

/** Options of a cluster's (or a namespace's) `query` and `execute`: its third argument. */
export interface StatementOptions {
  /**
   * Send the statement again, up to this many times, after the server rolled
   * it back (1213: a deadlock, or a Galera certification conflict with a write
   * on another node): an autocommit statement that was rolled back left
   * nothing behind, so sending it again is safe. Never after an error that
   * leaves it uncertain (a lost connection: it may have run). Default 0.
   * A statement a cluster-aware node refused with 1047 goes to another node
   * whatever this says (it never ran), like a refused checkout.
   */
  retries?: number;
}

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
  /**
   * Taking a connection on `node` failed before the caller's code ran.
   * Returns true when the failure lies with the node (counted, or a
   * cluster-aware node taken offline): the call may go to another node.
   */
  checkoutFailed(node: ClusterNode, error: unknown): boolean;
  /**
   * The caller's statement or callback failed on `node`. Returns true when
   * the error says the node cannot serve (a cluster-aware node is offline now).
   */
  statementFailed(node: ClusterNode, error: unknown): boolean;
  nodeSucceeded(node: ClusterNode): void;
  /** For the node's stats: a call left it for another node, or ran again after failing on it. */
  counted(node: ClusterNode, what: 'failovers' | 'retries'): void;
  warn(error: Error): void;
}

/**
 * Starts the work on a node's pool. `checkedOut()` says the connection was
 * taken and the caller's own code is about to run: from then on a failure
 * is the caller's, not the node's.
 */
type Start<R> = (pool: Pool, checkedOut: () => void, node: ClusterNode) => Promise<R>;

const CALLBACK_NOT_AVAILABLE = 'Callback function is not available with promise clients.';

/**
 * The nodes of a cluster matching one pattern, with mysql2/promise's
 * namespace API (`query`, `execute`, `getConnection`) plus rollback-pool's
 * `begin`, `transaction` and `withScope`. Get one with `cluster.of(pattern, selector)`.
 */
export class PoolNamespace {
  /** @internal The callback face made for this namespace, if any. */
  callbackFace: CallbackPoolNamespace | undefined;

  /** This namespace with mysql2's callback API (mysql2/promise's `namespace.poolNamespace`). */
  get poolNamespace(): CallbackPoolNamespace {
    return this.callbackFace ?? new CallbackPoolNamespace(this);
  }

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
   * `options.retries`: see {@link StatementOptions}.
   */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues, options?: StatementOptions): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(CALLBACK_NOT_AVAILABLE);
    const pinned = this.pinned();
    if (pinned) return pinned.pool.query<T>(sql, values);
    return this.runStatement(this.query, (lease) => lease.query<T>(sql, values), options);
  }

  /** Runs one prepared statement (binary protocol) on a node of this namespace, as mysql2's namespace; `options` as `query`. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues, options?: StatementOptions): Promise<[T, FieldPacket[]]> {
    if (typeof values === 'function') throw new Error(CALLBACK_NOT_AVAILABLE);
    const pinned = this.pinned();
    if (pinned) return pinned.pool.execute<T>(sql, values);
    return this.runStatement(this.execute, (lease) => lease.execute<T>(sql, values), options);
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
   * applies until `fn` starts. With `retries`, the whole attempt runs again,
   * on whatever node the selector picks among those online (a node found
   * down is offline by then), after an error that proves nothing of it
   * committed: 1213 (a deadlock, a Galera certification conflict), 1205,
   * 1047, no connection to be had, or the connection lost before COMMIT was
   * sent; never after `ERR_COMMIT_OUTCOME_UNKNOWN`. `fn` may thus run more
   * than once: it should write only through `tx`.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const pinned = this.pinned();
    if (pinned) return pinned.pool.transaction(fn, options);
    const retries = options?.retries;
    // Invalid `retries` are left to the pool to refuse; valid ones are the cluster's to carry out, across nodes.
    if (retries === undefined || !Number.isInteger(retries) || retries < 1) return this.attempt(fn, options).result;
    return this.retrying(fn, { ...options, retries: 0 }, retries, options?.signal);
  }

  /**
   * `Pool.withScope()` on one node of this namespace, picked when the scope
   * opens: `fn` runs in that pool's request scope, and every call `fn` makes
   * through this cluster, on any namespace whose pattern covers that node,
   * goes to that node and takes part in the scope (calls through a namespace
   * that does not cover it are routed as usual, outside the scope). No
   * connection is taken when the scope opens, so there is no failover: a
   * call inside the scope fails with that node's error. A nested `withScope`
   * covering the node joins the open scope, as on a Pool. `twoPhase` on a
   * node known to run Galera rejects with `ERR_TWO_PHASE_UNSUPPORTED` before
   * `fn` runs.
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
    if (options?.twoPhase === true && node.galera === true) return Promise.reject(new TwoPhaseUnsupportedError());
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
   * with the node is counted on it (a cluster-aware node that is down goes
   * offline) and, with `canRetry` and a node still online, retried on a newly
   * picked node (which may be the same one, as in mysql2: with `ORDER` the
   * first node is tried until it goes offline or is removed).
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
    return start(node.pool, checkedOut, node).then(
      (result) => {
        checkedOut();
        return result;
      },
      (error: unknown) => {
        if (settled) throw error; // the caller's own code failed: the caller's business (see statementFailed)
        settled = true;
        if (this.host.closed) throw new PoolClosedError();
        if (stoppedByCaller?.()) throw error;
        // A node removed while this checkout was under way had its pool ended: try elsewhere, count nothing.
        const removed = node.state === 'removed';
        if (!removed && !this.host.checkoutFailed(node, error)) throw error;
        if (!this.host.canRetry || this.host.findNodeIds(this.pattern, false).length === 0) throw error;
        this.host.counted(node, 'failovers');
        this.host.warn(error as Error);
        return this.onNode(start, stoppedByCaller);
      },
    );
  }

  /** One attempt of `transaction()`: the handle `fn` got (if it started) and the node it ran on travel with the result. */
  private attempt<T>(fn: (tx: Transaction) => Promise<T>, options: TransactionOptions | undefined): { result: Promise<T>; tx(): Transaction | undefined; node(): ClusterNode | undefined } {
    let tx: Transaction | undefined;
    let ranOn: ClusterNode | undefined;
    const result = this.onNode(
      (pool, checkedOut, node) =>
        pool.transaction((began) => {
          tx = began;
          ranOn = node;
          checkedOut();
          return fn(began);
        }, options),
      // The caller's signal stopped it before `fn` ran: its reason is not the node's failure.
      () => options?.signal?.aborted === true,
    ).catch((error: unknown) => {
      if (ranOn !== undefined) this.host.statementFailed(ranOn, error); // 1047, a lost connection: the node is down
      throw error;
    });
    return { result, tx: () => tx, node: () => ranOn };
  }

  private async retrying<T>(fn: (tx: Transaction) => Promise<T>, options: TransactionOptions, retries: number, signal: AbortSignal | undefined): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const run = this.attempt(fn, options);
      try {
        return await run.result;
      } catch (error) {
        if (attempt >= retries || signal?.aborted === true || this.host.closed || !provesNothingCommitted(error, run.tx())) throw error;
        const node = run.node();
        if (node !== undefined) this.host.counted(node, 'retries');
        await sleep(retryDelayMs(attempt));
      }
    }
  }

  /**
   * A pool-level statement as mysql2's namespace runs it: take a connection
   * (with failover), run, give it back. A statement a cluster-aware node
   * refused (1047) goes to another node; one the server rolled back (1213)
   * is sent again while `retries` last.
   */
  private runStatement<R>(api: Function, run: (lease: PoolConnection) => Promise<R>, options: StatementOptions | undefined): Promise<R> {
    let retries: number;
    try {
      retries = statementRetries(options);
    } catch (error) {
      return Promise.reject(error);
    }
    // The statement runs after an asynchronous checkout: capture the caller's stack now, as mysql2/promise does.
    const caller = this.traced() ? captureCaller(api) : undefined;
    const ran = this.sendStatement(run, retries, 0);
    if (caller === undefined) return ran;
    return ran.catch((error: unknown) => {
      applyCallerStack(error, caller);
      throw error;
    });
  }

  private async sendStatement<R>(run: (lease: PoolConnection) => Promise<R>, retries: number, resent: number): Promise<R> {
    let ranOn: ClusterNode | undefined;
    const lease = await this.onNode((pool, _checkedOut, node) => {
      ranOn = node;
      return pool.getConnection();
    });
    const node = ranOn!;
    let failure: unknown;
    try {
      return await run(lease);
    } catch (error) {
      failure = error;
    } finally {
      lease.release();
    }
    const down = this.host.statementFailed(node, failure);
    if (down && statementNeverRan(failure) && this.host.canRetry && !this.host.closed && this.host.findNodeIds(this.pattern, false).length > 0) {
      // Refused before it ran, by a node now offline: as a refused checkout, it goes elsewhere.
      this.host.counted(node, 'failovers');
      this.host.warn(failure as Error);
      return this.sendStatement(run, retries, resent);
    }
    if (resent < retries && !this.host.closed && (statementRolledBack(failure) || statementNeverRan(failure))) {
      this.host.counted(node, 'retries');
      await sleep(retryDelayMs(resent));
      return this.sendStatement(run, retries, resent + 1);
    }
    throw failure;
  }

  /** mysql2's `namespace.trace`: true when a matching node has `trace` on (mysql2's default), or none matches. */
  private traced(): boolean {
    const ids = this.host.findNodeIds(this.pattern, true);
    if (ids.length === 0) return true;
    return ids.some((id) => this.host.getNode(id)?.pool.options.connectionConfig.trace === true);
  }
}

function statementRetries(options: StatementOptions | undefined): number {
  if (options === undefined) return 0;
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'an options object ({ retries })');
  for (const key of Object.keys(options)) {
    if (key !== 'retries') throw new InvalidOptionError(key, 'no such statement option (retries)');
  }
  const { retries = 0 } = options;
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0) throw new InvalidOptionError('retries', 'an integer >= 0');
  return retries;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
