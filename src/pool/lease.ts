/**
 * PoolConnection: one checkout of a session, with mysql2/promise's
 * PoolConnection surface. A lease is fenced: once released (or destroyed, or
 * the pool ended) every call rejects with a typed error and sends nothing to
 * the server. mysql2 lets a released connection keep querying; we do not.
 */
import type {
  Connection as RawConnection,
  ConnectionOptions,
  ExecuteValues,
  FieldPacket,
  QueryOptions,
  QueryResult,
  QueryValues,
} from 'mysql2';
import type { InspectOptions } from 'node:util';
import { LeaseReleasedError, PoolClosedError, RollbackFailedError } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import { CallbackConnection } from './callback';
import type { BeginOptions } from '../tx/sql';
import type { Transaction } from '../tx/transaction';
import type { TransactionOptions } from '../tx/run';
import type { AbandonReason } from './events';
import type { QueryOutcome, Session, StackHolder } from './session';

/** What a lease needs from its pool. */
export interface LeaseOwner {
  readonly closed: boolean;
  readonly captureStacks: boolean;
  /** Where the user called from, when mysql2's `trace` option is on (its default). */
  captureCaller(below: Function): StackHolder | undefined;
  releaseSession(session: Session, lease: PoolConnection, why?: AbandonReason, stack?: string): void;
  destroySession(session: Session, reason: string, lease?: PoolConnection): void;
  /** `lease.end()`: with `gracefulEnd`, the connection quits; else mysql2's deprecated alias of release(). */
  endLease(session: Session, lease: PoolConnection): Promise<void>;
  /** The pool option `gracefulEnd`. */
  readonly gracefulEnd: boolean;
  watchLease(lease: PoolConnection): void;
  reportRollbackError(session: Session, error: RollbackFailedError): void;
  beginOn(lease: PoolConnection, options: BeginOptions | undefined, ownsLease: boolean, stack: string | undefined, caller?: StackHolder): Promise<Transaction>;
  killQuery(session: Session): Promise<void>;
  reportAbandon(session: Session, why: AbandonReason, stack: string | undefined): void;
  runOn<T>(lease: PoolConnection, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions | undefined, caller?: StackHolder): Promise<T>;
}

/**
 * One checkout of a pooled connection, from `pool.getConnection()`. Fenced:
 * after `release()` every call rejects with `ERR_LEASE_RELEASED` and sends nothing.
 */
export class PoolConnection {
  private released = false;
  /** Where the lease was taken (only with `captureStacks`). */
  readonly takenAt: string | undefined;
  /** Timer of leak detection, if on. */
  leakTimer: NodeJS.Timeout | undefined;
  /**
   * @internal Covered against loss inside a transaction: registered with the
   * pool's safety net, or owned by a transaction handle that has its own.
   */
  watchedForLoss = false;

  /** @internal Leases are made by the pool: use `pool.getConnection()`. */
  constructor(
    private readonly owner: LeaseOwner,
    /** @internal */ readonly session: Session,
    takenAt: string | undefined,
  ) {
    this.takenAt = takenAt;
  }

  private callbackFace: CallbackConnection | undefined;

  /**
   * This lease with mysql2's callback API (`query(sql, values, cb)`, streams
   * with `query(sql).stream()`, `release()`), as on mysql2/promise's
   * PoolConnection. Fenced and tracked like the lease itself.
   */
  get connection(): CallbackConnection {
    this.callbackFace ??= new CallbackConnection(this);
    return this.callbackFace;
  }

  /** The server's id for this connection (`CONNECTION_ID()`). */
  get threadId(): number {
    return this.session.threadId;
  }

  /** The connection's mysql2 configuration. */
  get config(): ConnectionOptions {
    return this.session.raw.config;
  }

  /** True once `release()` or `destroy()` was called: every call now rejects. */
  get isReleased(): boolean {
    return this.released;
  }

  /** Runs a statement, as mysql2's `connection.query` (text protocol). */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    return this.run('query', sql, values, 'query', PoolConnection.prototype.query) as Promise<[T, FieldPacket[]]>;
  }

  /** Runs a prepared statement, as mysql2's `connection.execute` (binary protocol, cached). */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.run('execute', sql, values, 'execute', PoolConnection.prototype.execute) as Promise<[T, FieldPacket[]]>;
  }

  /**
   * `START TRANSACTION`. The connection counts as in a transaction from the
   * moment this is called, so a release before it completes still rolls back.
   */
  beginTransaction(): Promise<void> {
    const fenced = this.fence('beginTransaction');
    if (fenced) return fenced;
    this.session.armTransactionGuard();
    this.watchIfInTransaction();
    return this.session.run('query', 'START TRANSACTION', undefined).then(noValue);
  }

  /** `COMMIT`. */
  commit(): Promise<void> {
    return this.run('query', 'COMMIT', undefined, 'commit', PoolConnection.prototype.commit).then(noValue);
  }

  /** `ROLLBACK`. */
  rollback(): Promise<void> {
    return this.run('query', 'ROLLBACK', undefined, 'rollback', PoolConnection.prototype.rollback).then(noValue);
  }

  /**
   * Begins a transaction on this connection and returns its handle. The
   * connection stays yours after `commit()`/`rollback()`.
   */
  begin(options?: BeginOptions): Promise<Transaction> {
    const fenced = this.fence('begin');
    if (fenced) return fenced;
    const stack = this.owner.captureStacks ? new Error('transaction began here').stack : undefined;
    return this.owner.beginOn(this, options, false, stack, this.owner.captureCaller(PoolConnection.prototype.begin));
  }

  /** Runs `fn` in a transaction on this connection: commit if it resolves, rollback if it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const fenced = this.fence('transaction');
    if (fenced) return fenced;
    return this.owner.runOn(this, fn, options, this.owner.captureCaller(PoolConnection.prototype.transaction));
  }

  /** Round trip to the server (COM_PING). */
  ping(): Promise<void> {
    const fenced = this.fence('ping');
    if (fenced) return fenced;
    return this.session.ping();
  }

  /**
   * Gives the connection back to the pool. Synchronous and never throws. If a
   * transaction is open (by any means, even a raw `START TRANSACTION`), the
   * connection is flagged and rolled back before anyone else can use it.
   * A second call does nothing.
   */
  release(): void {
    if (this.released) return;
    this.markReleased();
    this.owner.releaseSession(this.session, this);
  }

  /** Closes the connection instead of returning it; the server rolls back what was open. */
  destroy(): void {
    if (this.released) return;
    this.markReleased();
    this.owner.destroySession(this.session, 'destroyed by user', this);
  }

  /**
   * mysql2's `conn.end()` on a pooled connection. With the pool option
   * `gracefulEnd`, closes this connection (statements already sent finish,
   * an open transaction is rolled back, then COM_QUIT; the pool opens a new
   * one when needed). Without it, as in mysql2, a deprecated alias of
   * `release()` (warned about once per pool).
   */
  end(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    return this.owner.endLease(this.session, this);
  }

  /** @internal mysql2's `connection.state` of the connection behind this lease (`'disconnected'` once it is gone). */
  get connectionState(): string {
    return this.session.connected ? String((this.session.raw as unknown as { state?: unknown }).state ?? 'authenticated') : 'disconnected';
  }

  /** @internal The pool option `gracefulEnd`: `end()` closes the connection rather than releasing it. */
  get gracefulEnd(): boolean {
    return this.owner.gracefulEnd;
  }

  /** Escapes a value for SQL, as mysql2 (no server round trip). */
  escape(value: unknown): string {
    return this.session.raw.escape(value);
  }

  /** Escapes an identifier, as mysql2. */
  escapeId(value: string | string[]): string {
    return this.session.raw.escapeId(value as string);
  }

  /** Formats SQL with values, as mysql2. */
  format(sql: string, values?: unknown): string {
    return this.session.raw.format(sql, values as never);
  }

  /** What `JSON.stringify(conn)` shows: never the connection options. */
  toJSON(): { threadId: number; released: boolean } {
    return { threadId: this.threadId, released: this.released };
  }

  /** What `console.log(conn)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('PoolConnection', this.toJSON(), options);
  }

  /** `using conn = await pool.getConnection()`: releases at the end of the block. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** `await using conn = await pool.getConnection()`: releases at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }

  /** @internal Counts the session as in a transaction before BEGIN is written. */
  armTransactionGuard(): void {
    this.session.armTransactionGuard();
  }

  /** @internal The server (or our API) says a transaction is open. */
  get inTransaction(): boolean {
    return this.session.inTransaction;
  }

  /** @internal Releases the lease as abandoned, for the given reason. Synchronous, never throws. */
  abandon(why: AbandonReason, stack?: string): void {
    if (this.released) return;
    this.markReleased();
    this.owner.releaseSession(this.session, this, why, stack);
  }

  /**
   * @internal Queues a ROLLBACK (or ROLLBACK TO SAVEPOINT) in the background on
   * a lease that stays in use: mysql2 runs commands in order, so it runs before
   * the lease's next statement. Synchronous, never throws. A failed top-level
   * ROLLBACK destroys the connection; `onFailure` hears about any failure.
   */
  queueRollback(sql: string, onFailure?: (error: RollbackFailedError) => void): void {
    if (this.released || this.owner.closed) return; // released: the pool's own cleanup takes over
    this.session.run('query', sql, undefined).catch((error: unknown) => {
      const failure = new RollbackFailedError('failed', error, sql === 'ROLLBACK');
      if (sql === 'ROLLBACK') {
        this.owner.reportRollbackError(this.session, failure);
        this.destroy();
      }
      onFailure?.(failure);
    });
  }

  /** @internal `KILL QUERY` this connection's running statement, over a separate connection. */
  killRunningQuery(): void {
    if (this.session.inFlight === 0) return;
    this.session.holdUntil(this.owner.killQuery(this.session));
  }

  /** @internal A statement is waiting for the server on this connection. */
  get hasInFlight(): boolean {
    return this.session.inFlight > 0;
  }

  /**
   * @internal The transaction handle currently open on this lease, if any.
   * Weak: a handle the user dropped must stay collectable (its finalizer is the safety net).
   */
  activeTransaction: WeakRef<Transaction> | undefined;

  /** @internal Reports a transaction abandoned while the lease stays in use. */
  reportAbandon(why: AbandonReason, stack: string | undefined): void {
    this.owner.reportAbandon(this.session, why, stack);
  }

  /** @internal The underlying mysql2 connection, for the pool's own use. */
  get rawConnection(): RawConnection {
    return this.session.raw;
  }

  /** `below`: the public method called, so that the captured stack starts at the caller's own line, as in mysql2. */
  private run(method: 'query' | 'execute', sql: string | QueryOptions, values: unknown, name: string, below: Function): Promise<QueryOutcome> {
    const fenced = this.fence(name);
    if (fenced) return fenced;
    if (typeof values === 'function') {
      throw new Error('Callback function is not available with promise clients.');
    }
    this.watchIfInTransaction(sql);
    return this.session.run(method, sql, values, this.owner.captureCaller(below));
  }

  /**
   * @internal A statement for a transaction handle, with the caller's stack
   * already captured at the handle's own public entry (or none: `trace`
   * off). `settled` runs as soon as the reply is observed, before the caller
   * resumes.
   */
  sendWith(
    method: 'query' | 'execute',
    sql: string | QueryOptions,
    values: unknown,
    caller: StackHolder | undefined,
    name: string = method,
    settled?: () => void,
  ): Promise<QueryOutcome> {
    const fenced = this.fence(name);
    if (fenced) return fenced;
    this.watchIfInTransaction(sql);
    return this.session.run(method, sql, values, caller, settled);
  }

  /** @internal The caller's stack, below `below` (undefined with `trace` off). */
  captureCaller(below: Function): StackHolder | undefined {
    return this.owner.captureCaller(below);
  }

  /** Fences the lease; its callback face (if one was made) stops listening to the connection. */
  private markReleased(): void {
    this.released = true;
    this.callbackFace?.detach();
  }

  /** The rejection for a call on a fenced lease, or undefined when the call may proceed. */
  private fence(method: string): Promise<never> | undefined {
    const error = this.fencedError(method);
    return error === undefined ? undefined : Promise.reject(error);
  }

  /**
   * @internal Checked before each statement: a lease that is (or, with this
   * statement, will be) inside a transaction goes under the pool's watch for
   * loss. "Will be": a raw BEGIN / START TRANSACTION / XA START, or any
   * statement with autocommit off; "is": a transaction an earlier statement
   * opened. Once watched, a boolean; before, a flag and one anchored regex.
   */
  watchIfInTransaction(sql?: string | QueryOptions): void {
    if (this.watchedForLoss) return;
    const session = this.session;
    if (!session.inTransaction && !session.autocommitOff && !(sql !== undefined && OPENS_TRANSACTION.test(typeof sql === 'string' ? sql : sql.sql))) {
      return;
    }
    this.watchedForLoss = true;
    this.owner.watchLease(this);
  }

  /** @internal The error a call on this lease gets now, or undefined when it may proceed. */
  fencedError(method: string): Error | undefined {
    if (this.released) return new LeaseReleasedError(method);
    if (this.owner.closed) return new PoolClosedError();
    return undefined;
  }
}

/** Statements that open a transaction explicitly. */
const OPENS_TRANSACTION = /^\s*(?:begin|start\s+transaction|xa\s+(?:start|begin))\b/i;

function noValue(): void {
  return undefined;
}
