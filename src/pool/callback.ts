/**
 * mysql2's callback API on top of the pool, for the libraries that take a
 * callback-style mysql2 pool or reach for a lease's callback connection:
 * Kysely's `MysqlDialect` (`pool.pool`), knex, Drizzle's streaming iterator
 * (`lease.connection`), and `rollback-pool/mysql2` (a stand-in for
 * `require('mysql2')`). mysql2/promise exposes the same two faces under the
 * same names.
 *
 * Nothing here is a side door: every statement goes through the lease's fence
 * (a released lease sends nothing) and the session's tracking (its status
 * flags are read, so a transaction left open is still rolled back before the
 * connection serves anyone else), in callback and in stream mode alike.
 *
 * As in mysql2, `query()` and `execute()` return mysql2's command object (an
 * emitter of `fields`, `result`, `error`, `end`, with `.stream()`), and the
 * callbacks given to the faces are called outside any promise chain and
 * outside mysql2's packet handling: a callback that throws is an uncaught
 * exception, never an unhandled rejection nor a broken connection.
 */
import * as mysql2 from 'mysql2';
import type { Connection as RawConnection, ConnectionOptions, ExecuteValues, FieldPacket, Query, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import type { InspectOptions } from 'node:util';
import { ConnectionLostError, PoolClosedError } from '../errors';
import { inspectAs, inspectSymbol } from '../inspect';
import { checkPromiseOption } from '../options';
import { currentScope } from '../scope/scope';
import { FaceEvents } from './face-events';
import type { PoolConnection } from './lease';
import type { Pool } from './pool';
import { poolConfigOf, type PoolConfig } from './pool-config';
import type { Callback } from './session';

export type { PoolConfig } from './pool-config';

/** mysql2's callback signature for statements. */
export type StatementCallback<T extends QueryResult = QueryResult> = (err: QueryError | null, result: T, fields: FieldPacket[]) => void;

/** The events of `pool.pool`: mysql2's pool events, with mysql2's own connection object (as the promise pool's). */
export interface CallbackPoolEventMap {
  /** A new connection was made. */
  connection: [connection: RawConnection];
  /** A connection was checked out. */
  acquire: [connection: RawConnection];
  /** A clean connection went back to the pool. */
  release: [connection: RawConnection];
  /** A checkout had to wait. */
  enqueue: [];
}

/** The events of `lease.connection`, as on mysql2's pooled connections. */
export interface CallbackConnectionEventMap {
  /**
   * The connection was lost while leased (socket error, server KILL or
   * restart, a failed pending ROLLBACK): `ERR_CONNECTION_LOST`, `fatal: true`,
   * mysql2's reason as `cause`. Not emitted when `pool.end()` closes it.
   */
  error: [error: Error];
  /** The connection closed while leased (after `error`, or at `pool.end()`). */
  end: [];
  /** mysql2's warnings about the connection (e.g. packets out of order). */
  warn: [warning: Error];
}

/** mysql2's words (lib/pool_connection.js), for code that matches them. */
const END_IS_RELEASE =
  'Calling conn.end() to release a pooled connection is deprecated. In next version calling conn.end() will be restored to default conn.end() behavior. Use conn.release() instead.';

const POOL_EVENTS: ReadonlySet<string> = new Set(['connection', 'acquire', 'release', 'enqueue']);

/** mysql2 destroys a pooled connection instead of releasing it after these (read-only server, failover). */
const READ_ONLY_ERRNOS: ReadonlySet<number> = new Set([1290, 1792, 1836]);

/**
 * `pool.pool`: the pool with mysql2's callback API (`getConnection(cb)`,
 * `query(sql, values, cb)`, `execute`, `end(cb)`, the pool events, `config`).
 * Inside a request scope it takes part in the scope like the promise API.
 */
export class CallbackPool extends FaceEvents<CallbackPoolEventMap> {
  private poolConfig: PoolConfig | undefined;
  /** Listeners on the promise pool that pass its events on, one per event while this face has listeners for it. */
  private readonly forwarders = new Map<string, (...args: unknown[]) => void>();

  /** @internal */
  constructor(private readonly promisePool: Pool) {
    super();
  }

  /**
   * The pool's settings in mysql2's PoolConfig shape, read-only. As in
   * mysql2, `config.connectionConfig.password` holds the password; it is
   * never shown by `util.inspect` or `JSON.stringify`.
   */
  get config(): PoolConfig {
    this.poolConfig ??= poolConfigOf(this.promisePool.options, this);
    return this.poolConfig;
  }

  /**
   * The promise face of this pool: the rollback-pool `Pool` itself (as
   * mysql2's `pool.promise()`). Its promises are native: passing another
   * Promise class throws `ERR_INVALID_OPTION`.
   */
  promise(promiseImpl?: PromiseConstructor): Pool {
    checkPromiseOption(promiseImpl);
    return this.promisePool;
  }

  /** Takes a connection: `cb(null, connection)`; give it back with `connection.release()`. */
  getConnection(callback: (err: Error | null, connection: CallbackConnection) => void): void {
    this.promisePool.getConnection().then(
      (lease) => process.nextTick(callback, null, lease.connection),
      (error: Error) => process.nextTick(callback as (err: Error) => void, error), // as mysql2: no connection with an error
    );
  }

  /** Gives a connection back (same as `connection.release()`). */
  releaseConnection(connection: CallbackConnection): void {
    if (connection instanceof CallbackConnection) connection.release();
  }

  /**
   * Runs one statement on a connection taken for it, which goes back to the
   * pool when the statement ends (inside a request scope: on the scope's
   * shared connection). With a callback, as mysql2's `pool.query`; without
   * one, stream it (`.stream()` or its `result` events). Returns mysql2's
   * `Query` command either way.
   */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback?: StatementCallback<T>): Query;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback?: StatementCallback<T>): Query;
  query(sql: string | QueryOptions, values?: QueryValues | StatementCallback, callback?: StatementCallback): Query {
    const [vals, cb] = splitArguments(values, callback);
    const outcome = new StatementOutcome(cb);
    const command = createQuery(sql, vals, outcome.callback, this.promisePool.options.connectionConfig);
    if (cb === undefined) command.once('error', outcome.failed);
    this.statementConnection().then(
      ({ lease, owned }) => {
        // Sent first, so that the session's own `end` handling (the statement leaves flight) runs before the release.
        lease.connection.send(command, true);
        if (owned) command.once('end', () => outcome.finish(lease));
      },
      (error: Error) => failCommand(command, error),
    );
    return command;
  }

  /**
   * Runs one prepared statement on a connection taken for it (as `query`).
   * Returns a mysql2 command that relays the events of the Execute command
   * once it runs (`fields`, `result`, `error`, `end`; `.stream()`).
   */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback?: StatementCallback<T>): Query;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: ExecuteValues, callback?: StatementCallback<T>): Query;
  execute(sql: string | QueryOptions, values?: ExecuteValues | StatementCallback, callback?: StatementCallback): Query {
    const [vals, cb] = splitArguments(values, callback);
    const outcome = new StatementOutcome(cb);
    // What the caller gets now: the Execute command itself is made by mysql2 on the connection, once there is one.
    const handle = createQuery(sql, vals as QueryValues, outcome.callback, this.promisePool.options.connectionConfig);
    this.statementConnection().then(
      ({ lease, owned }) => {
        let command: Query;
        try {
          command = lease.connection.sendExecute(sql, vals, outcome.callback, true);
        } catch (error) {
          // mysql2 refused it before sending anything (e.g. an undefined bind value).
          if (owned) lease.release();
          failCommand(handle, error as Error);
          return;
        }
        if (cb === undefined) command.once('error', outcome.failed);
        relay(command, handle, lease.session.raw);
        if (owned) command.once('end', () => outcome.finish(lease));
      },
      (error: Error) => failCommand(handle, error),
    );
    return handle;
  }

  /** Ends the pool (see `pool.end()`); the callback gets an error only if ending failed. */
  end(callback?: (err?: Error) => void): void {
    this.promisePool.end().then(
      () => callback && process.nextTick(callback),
      (error: Error) => callback && process.nextTick(callback, error),
    );
  }

  escape(value: unknown): string {
    return this.promisePool.escape(value);
  }

  escapeId(value: string | string[]): string {
    return this.promisePool.escapeId(value);
  }

  format(sql: string, values?: unknown): string {
    return this.promisePool.format(sql, values);
  }

  /** `using pool = createPool(...)` (rollback-pool/mysql2): ends the pool, as mysql2's pool does. */
  [Symbol.dispose](): void {
    if (!this.promisePool.closed) this.end();
  }

  /** `await using pool = createPool(...)` (rollback-pool/mysql2): ends the pool and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.promisePool.end();
  }

  /** What `JSON.stringify(pool.pool)` shows: the promise pool's summary, never the password. */
  toJSON(): ReturnType<Pool['toJSON']> {
    return this.promisePool.toJSON();
  }

  /** What `console.log(pool.pool)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('CallbackPool', this.toJSON(), options);
  }

  /**
   * As on mysql2/promise, whose promise pool registers its listeners on this
   * one: emitting one of mysql2's pool events (`connection`, `acquire`,
   * `release`, `enqueue`) here reaches the promise pool's listeners too (and,
   * through it, this face's). Other events stay on this face.
   */
  override emit<K extends keyof CallbackPoolEventMap & string>(event: K, ...args: CallbackPoolEventMap[K]): boolean {
    if (!POOL_EVENTS.has(event)) return super.emit(event, ...args);
    const listened = this.promisePool.listenerCount(event as 'acquire') > 0;
    (this.promisePool.emit as (event: string, ...args: unknown[]) => boolean)(event, ...args);
    return listened;
  }

  /** @internal Passes the promise pool's event on while this face has listeners for it. */
  protected listenersChanged(event: keyof CallbackPoolEventMap): void {
    if (!POOL_EVENTS.has(event)) return;
    const source = this.promisePool as unknown as NodeJS.EventEmitter;
    const forwarder = this.forwarders.get(event);
    if (this.listenerCount(event) > 0) {
      if (forwarder !== undefined) return;
      const forward = (...args: unknown[]): void => {
        (FaceEvents.prototype.emit as (this: unknown, event: string, ...args: unknown[]) => boolean).call(this, event, ...args);
        if (this.listenerCount(event) === 0) this.listenersChanged(event); // the last `once` listener ran
      };
      this.forwarders.set(event, forward);
      source.on(event, forward);
    } else if (forwarder !== undefined) {
      this.forwarders.delete(event);
      source.removeListener(event, forwarder);
    }
  }

  /** A connection for one statement: the request scope's shared one (the scope keeps it), or one of its own. */
  private statementConnection(): Promise<{ lease: PoolConnection; owned: boolean }> {
    const scope = currentScope(this.promisePool);
    if (scope) return scope.sharedConnection().then((lease) => ({ lease, owned: false }));
    return this.promisePool.getConnection().then((lease) => ({ lease, owned: true }));
  }
}

/**
 * `lease.connection`: one lease with mysql2's callback API and events. Fenced
 * like the lease: once it is released, statements fail with
 * `ERR_LEASE_RELEASED` (through the callback, or the command's `error` event)
 * and nothing is sent.
 */
export class CallbackConnection extends FaceEvents<CallbackConnectionEventMap> {
  /** Streamed statements (and the pool face's) still running: failed if the connection is lost under them. */
  private pending: Set<Query> | undefined;
  private lostHook: ((cause: unknown) => void) | undefined;
  private warnForwarder: ((warning: Error) => void) | undefined;

  /** @internal */
  constructor(private readonly lease: PoolConnection) {
    super();
  }

  /** The server's id for this connection. */
  /**
   * mysql2's `connection.state`: `'authenticated'` while the connection is up
   * (also after `release()`: the connection lives on in the pool),
   * `'disconnected'` once it was destroyed or lost.
   */
  get state(): string {
    return this.lease.connectionState;
  }

  get threadId(): number {
    return this.lease.threadId;
  }

  /** The connection's mysql2 configuration (as on mysql2's connections). */
  get config(): ConnectionOptions {
    return this.lease.config;
  }

  /**
   * The promise face of this connection: the lease itself (as mysql2's
   * `connection.promise()`). Passing a Promise class other than the native
   * one throws `ERR_INVALID_OPTION`.
   */
  promise(promiseImpl?: PromiseConstructor): PoolConnection {
    checkPromiseOption(promiseImpl);
    return this.lease;
  }

  /**
   * Runs a statement. With a callback, as mysql2's `connection.query`; without
   * one, stream it (`.stream()`, `result` events). Returns mysql2's `Query`.
   */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback?: StatementCallback<T>): Query;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback?: StatementCallback<T>): Query;
  query(sql: string | QueryOptions, values?: QueryValues | StatementCallback, callback?: StatementCallback): Query {
    const [vals, cb] = splitArguments(values, callback);
    const command = createQuery(sql, vals, cb && outsideMysql2(cb), this.lease.session.raw.config);
    this.send(command, false);
    return command;
  }

  /**
   * Runs a prepared statement, as mysql2's `connection.execute`: with a
   * callback, or streamed without one. Returns mysql2's Execute command (an
   * emitter: `.on('result')`, `.stream()`, `.setMaxListeners()`). Throws, as
   * mysql2, on bind values it refuses (`undefined`, functions).
   */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback?: StatementCallback<T>): Query;
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: ExecuteValues, callback?: StatementCallback<T>): Query;
  execute(sql: string | QueryOptions, values?: ExecuteValues | StatementCallback, callback?: StatementCallback): Query {
    const [vals, cb] = splitArguments(values, callback);
    return this.sendExecute(sql, vals, cb && outsideMysql2(cb), false);
  }

  /** A pooled connection is already connected: calls back at once (Kysely's connection type declares it). */
  connect(callback?: (err: Error | null) => void): void {
    const error = this.lease.fencedError('connect');
    if (callback) process.nextTick(callback, error ?? null);
  }

  beginTransaction(callback?: (err: Error | null) => void): void {
    settle(this.lease.beginTransaction(), callback);
  }

  commit(callback?: (err: Error | null) => void): void {
    settle(this.lease.commit(), callback);
  }

  rollback(callback?: (err: Error | null) => void): void {
    settle(this.lease.rollback(), callback);
  }

  ping(callback?: (err: Error | null) => void): void {
    settle(this.lease.ping(), callback);
  }

  /** Gives the connection back to the pool (see `PoolConnection.release`). */
  release(): void {
    this.lease.release();
  }

  /**
   * As mysql2's pooled connections: gives the connection back to the pool
   * (Drizzle's iterator ends its connection this way), without mysql2's
   * deprecation warning; with the pool option `gracefulEnd`, closes it
   * instead (see `PoolConnection.end`).
   */
  end(callback?: (err: Error | null) => void): void {
    if (this.lease.gracefulEnd) {
      void this.lease.end().then(() => callback && process.nextTick(callback, null));
      return;
    }
    // mysql2's deprecation notice, as a `warn` event (only built when someone listens; no console output).
    if (this.listenerCount('warn') > 0) this.emit('warn', new Error(END_IS_RELEASE));
    this.lease.release();
    if (callback) process.nextTick(callback, null);
  }

  /** Closes the connection instead of returning it (see `PoolConnection.destroy`). */
  destroy(): void {
    this.lease.destroy();
  }

  escape(value: unknown): string {
    return this.lease.escape(value);
  }

  escapeId(value: string | string[]): string {
    return this.lease.escapeId(value);
  }

  format(sql: string, values?: unknown): string {
    return this.lease.format(sql, values);
  }

  /** `using conn = ...`: releases the connection, as mysql2's pooled connections. */
  [Symbol.dispose](): void {
    this.lease.release();
  }

  /** `await using conn = ...`: releases the connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.lease.release();
  }

  /** What `JSON.stringify(conn)` shows: never the connection options. */
  toJSON(): { threadId: number; released: boolean } {
    return this.lease.toJSON();
  }

  /** What `console.log(conn)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('CallbackConnection', this.toJSON(), options);
  }

  /**
   * @internal Sends a Query command through the lease's fence and the
   * session's tracking; a callback-mode command's callback is wrapped so the
   * session reads its result first. `untilEnd`: the caller waits for the
   * command's `end` (the pool face releases there), which is then emitted
   * even if the connection is lost under it.
   */
  send(command: Query, untilEnd: boolean): void {
    const session = this.lease.session;
    const fenced = this.lease.fencedError('query') ?? session.lostError();
    if (fenced) {
      failCommand(command, fenced);
      return;
    }
    this.lease.watchIfInTransaction(command.sql);
    const internals = command as unknown as { onResult?: Callback };
    const streaming = internals.onResult === undefined;
    if (internals.onResult !== undefined) internals.onResult = session.trackCallback(internals.onResult);
    session.sendQuery(command, streaming);
    if (streaming || untilEnd) this.pend(command);
  }

  /** @internal `execute` through the fence and the session's tracking; returns mysql2's Execute command. */
  sendExecute(sql: string | QueryOptions, values: ExecuteValues | undefined, callback: Callback | undefined, untilEnd: boolean): Query {
    const session = this.lease.session;
    const fenced = this.lease.fencedError('execute') ?? session.lostError();
    if (fenced) {
      const command = createQuery(sql, values as QueryValues, callback, session.raw.config);
      failCommand(command, fenced);
      return command;
    }
    this.lease.watchIfInTransaction(sql);
    const raw = session.raw as unknown as { execute(...args: unknown[]): Query };
    const tracked = callback && session.trackCallback(callback);
    const text = typeof sql === 'string' ? sql : sql.sql;
    const command = session.sendBuilt(text, tracked === undefined, () => (tracked ? raw.execute(sql, values, tracked) : raw.execute(sql, values)));
    if (tracked === undefined || untilEnd) this.pend(command);
    return command;
  }

  /** @internal The lease ended: stop listening to its connection (a statement still pending keeps the loss hook until it ends). */
  detach(): void {
    if (this.warnForwarder !== undefined) {
      this.lease.session.raw.removeListener('warn', this.warnForwarder);
      this.warnForwarder = undefined;
    }
    if (!this.pending?.size) this.stopWatchingLoss();
  }

  /** @internal Subscribes to what feeds `event` while it has listeners and the lease is held. */
  protected listenersChanged(event: keyof CallbackConnectionEventMap): void {
    if (this.lease.isReleased) return;
    if (event === 'warn') {
      const raw = this.lease.session.raw;
      if (this.listenerCount('warn') > 0 && this.warnForwarder === undefined) {
        this.warnForwarder = (warning) => this.emit('warn', warning);
        raw.on('warn', this.warnForwarder);
      } else if (this.listenerCount('warn') === 0 && this.warnForwarder !== undefined) {
        raw.removeListener('warn', this.warnForwarder);
        this.warnForwarder = undefined;
      }
    } else if (this.listenerCount(event) > 0) {
      this.watchLoss();
    }
  }

  private pend(command: Query): void {
    const pending = (this.pending ??= new Set());
    pending.add(command);
    this.watchLoss();
    command.once('end', () => {
      pending.delete(command);
      if (pending.size === 0 && this.lease.isReleased) this.stopWatchingLoss();
    });
  }

  private watchLoss(): void {
    this.lostHook ??= (cause) => this.connectionLost(cause);
    this.lease.session.onLost = this.lostHook;
  }

  private stopWatchingLoss(): void {
    const session = this.lease.session;
    if (this.lostHook !== undefined && session.onLost === this.lostHook) session.onLost = undefined;
  }

  /**
   * The session became unusable. Called inside the session's bookkeeping (and
   * often inside mysql2's packet handling): everything visible happens on the
   * next tick, where a throwing listener is a plain uncaught exception.
   */
  private connectionLost(cause: unknown): void {
    const leased = !this.lease.isReleased;
    const closedByPool = leased && this.lease.fencedError('end') instanceof PoolClosedError;
    const pending = this.pending === undefined ? [] : [...this.pending];
    process.nextTick(() => {
      const error = new ConnectionLostError(cause);
      for (const command of pending) failPending(command, error);
      if (!leased) return;
      if (!closedByPool && this.listenerCount('error') > 0) this.emit('error', error);
      if (this.listenerCount('end') > 0) this.emit('end');
    });
  }
}

/**
 * The end of a pool-face statement: the caller's callback (outside mysql2,
 * with the error recorded), then the connection back to the pool, or
 * destroyed after a read-only error, as mysql2's pool does.
 */
class StatementOutcome {
  private error: unknown;
  readonly callback: Callback | undefined;
  readonly failed = (error: unknown): void => {
    this.error = error;
  };

  constructor(callback: StatementCallback | undefined) {
    if (callback === undefined) return;
    const deliver = outsideMysql2(callback);
    let called = false;
    this.callback = (err, rows, fields) => {
      if (called) return;
      called = true;
      this.error = err;
      deliver(err, rows, fields);
    };
  }

  finish(lease: PoolConnection): void {
    const errno = (this.error as { errno?: unknown } | undefined)?.errno;
    if (typeof errno === 'number' && READ_ONLY_ERRNOS.has(errno)) lease.destroy();
    else lease.release();
  }
}

function splitArguments<V>(values: V | StatementCallback | undefined, callback: StatementCallback | undefined): [V | undefined, StatementCallback | undefined] {
  return typeof values === 'function' ? [undefined, values as StatementCallback] : [values, callback];
}

/** mysql2's own Query command (its `createQuery` reads `rowsAsArray` and `infileStreamFactory` from `config`). */
function createQuery(sql: string | QueryOptions, values: QueryValues | undefined, callback: Callback | undefined, config: object): Query {
  const create = mysql2.Connection.createQuery as unknown as (sql: unknown, values: unknown, cb: unknown, config: object) => Query;
  return create(sql, values, callback, config);
}

/**
 * mysql2 calls a successful statement's callback on a tick of its own, but a
 * failed one's from inside its packet handling, where a throw is taken for a
 * protocol error (the connection is closed and the throw is lost): the
 * failures are delivered on the next tick too.
 */
function outsideMysql2(callback: StatementCallback): Callback {
  return (err, rows, fields) => {
    if (err) process.nextTick(callback as (err: QueryError) => void, err);
    else (callback as Callback)(null, rows, fields);
  };
}

/** Fails a command that was never sent, the way mysql2 reports errors: callback, or `error`; then `end`. */
function failCommand(command: Query, error: Error): void {
  const internals = command as unknown as { onResult?: (err: Error) => void };
  process.nextTick(() => {
    try {
      if (internals.onResult) internals.onResult(error);
      else command.emit('error', error);
    } finally {
      command.emit('end');
    }
  });
}

/**
 * A command running when its connection was lost: mysql2 never ends it, tells
 * a streamed one nothing, and may never call a callback-mode one back either
 * (once its `end` lets the pool destroy the connection, mysql2 sees a close it
 * asked for). Only streamed commands and the pool face's (whose callbacks are
 * called at most once, see StatementOutcome) are pending: they get the error,
 * then `end`.
 */
function failPending(command: Query, error: Error): void {
  const internals = command as unknown as { onResult?: (err: Error) => void };
  try {
    if (internals.onResult !== undefined) internals.onResult(error);
    else if (command.listenerCount('error') > 0) command.emit('error', error);
  } finally {
    command.emit('end');
  }
}

/** Passes the events of the Execute command `from` on to the command the caller holds (and its stream). */
function relay(from: Query, to: Query, raw: RawConnection): void {
  (to as unknown as { _connection: RawConnection })._connection = raw; // the stream pauses and resumes the socket, as mysql2's
  from.on('fields', (fields: unknown, index: unknown) => to.emit('fields', fields, index));
  from.on('result', (row: unknown, index: unknown) => to.emit('result', row, index));
  from.on('error', (error: unknown) => {
    if (to.listenerCount('error') > 0) to.emit('error', error);
  });
  from.once('end', () => to.emit('end'));
}

function settle(promise: Promise<void>, callback: ((err: Error | null) => void) | undefined): void {
  promise.then(
    () => callback && process.nextTick(callback, null),
    (error: Error) => callback && process.nextTick(callback, error),
  );
}
