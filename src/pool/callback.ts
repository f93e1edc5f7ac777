/**
 * mysql2's callback API on top of the pool, for the libraries that take a
 * callback-style mysql2 pool or reach for a lease's callback connection:
 * Kysely's `MysqlDialect` (`pool.pool`), knex, Drizzle's streaming iterator
 * (`lease.connection`). mysql2/promise exposes the same two faces under the
 * same names.
 *
 * Nothing here is a side door: every statement goes through the lease's fence
 * (a released lease sends nothing) and the session's tracking (its status
 * flags are read, so a transaction left open is still rolled back before the
 * connection serves anyone else), in callback and in stream mode alike.
 */
import * as mysql2 from 'mysql2';
import type { ConnectionOptions, ExecuteValues, FieldPacket, Query, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import type { PoolConnection } from './lease';
import type { Callback, Session } from './session';

/** mysql2's callback signature for statements. */
export type StatementCallback<T extends QueryResult = QueryResult> = (err: QueryError | null, result: T, fields: FieldPacket[]) => void;

/** What the faces need from the promise side. */
interface PromisePool {
  getConnection(): Promise<PoolConnection>;
  query(sql: string | QueryOptions, values?: QueryValues): Promise<[QueryResult, FieldPacket[]]>;
  execute(sql: string | QueryOptions, values?: ExecuteValues): Promise<[QueryResult, FieldPacket[]]>;
  end(): Promise<void>;
  escape(value: unknown): string;
  escapeId(value: string | string[]): string;
  format(sql: string, values?: unknown): string;
  readonly closed: boolean;
  readonly options: { readonly connectionConfig: object };
}

/**
 * `pool.pool`: the pool with mysql2's callback API (`getConnection(cb)`,
 * `query(sql, values, cb)`, `end(cb)`). Inside a request scope it takes part
 * in the scope like the promise API.
 */
export class CallbackPool {
  /** @internal */
  constructor(private readonly promisePool: PromisePool) {}

  /** Takes a connection: `cb(null, connection)`; give it back with `connection.release()`. */
  getConnection(callback: (err: Error | null, connection: CallbackConnection) => void): void {
    this.promisePool.getConnection().then(
      (lease) => callback(null, lease.connection),
      (error: Error) => callback(error, undefined as never), // as mysql2: no connection with an error
    );
  }

  /**
   * Runs one statement on any free connection. With a callback, as
   * `pool.query`; without one, returns mysql2's `Query` to stream from
   * (`.stream()` or its `result` events), run on a connection taken for it.
   */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback?: StatementCallback<T>): Query;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback?: StatementCallback<T>): Query;
  query(sql: string | QueryOptions, values?: QueryValues | StatementCallback, callback?: StatementCallback): Query {
    const [vals, cb] = typeof values === 'function' ? [undefined, values] : [values, callback];
    const command = createQuery(sql, vals, undefined, this.promisePool.options.connectionConfig);
    if (cb !== undefined) {
      this.promisePool.query(sql, vals).then(([rows, fields]) => cb(null, rows, fields), (error: QueryError) => failWith(cb, error));
      return command; // not sent: the promise pool ran the statement (it may use its fast path)
    }
    this.promisePool.getConnection().then(
      (lease) => {
        // Sent first, so that the session's own `end` handling (the statement leaves flight) runs before the release.
        lease.connection.send(command, true);
        command.once('end', () => lease.release());
      },
      (error: Error) => failCommand(command, error),
    );
    return command;
  }

  /** Runs one prepared statement on any free connection (callback mode only). */
  execute(sql: string | QueryOptions, values?: ExecuteValues | StatementCallback, callback?: StatementCallback): void {
    const [vals, cb] = typeof values === 'function' ? [undefined, values] : [values, callback];
    this.promisePool.execute(sql, vals).then(
      ([rows, fields]) => cb?.(null, rows, fields),
      (error: QueryError) => cb && failWith(cb, error),
    );
  }

  /** Ends the pool (see `pool.end()`); the callback gets an error only if ending failed. */
  end(callback?: (err?: Error) => void): void {
    this.promisePool.end().then(
      () => callback?.(),
      (error: Error) => callback?.(error),
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
}

/**
 * `lease.connection`: one lease with mysql2's callback API. Fenced like the
 * lease: once it is released, statements fail with `ERR_LEASE_RELEASED`
 * (through the callback, or the stream's `error` event) and nothing is sent.
 */
export class CallbackConnection {
  /** @internal */
  constructor(private readonly lease: PoolConnection) {}

  /** The server's id for this connection. */
  get threadId(): number {
    return this.lease.threadId;
  }

  /** The connection's mysql2 configuration (as on mysql2's connections). */
  get config(): ConnectionOptions {
    return this.lease.config;
  }

  /**
   * Runs a statement. With a callback, as mysql2's `connection.query`; without
   * one, returns the `Query` to stream from (`.stream()`, `result` events).
   */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, callback?: StatementCallback<T>): Query;
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values: QueryValues, callback?: StatementCallback<T>): Query;
  query(sql: string | QueryOptions, values?: QueryValues | StatementCallback, callback?: StatementCallback): Query {
    const [vals, cb] = typeof values === 'function' ? [undefined, values] : [values, callback];
    const session = this.lease.session;
    const wrapped = cb === undefined ? undefined : session.trackCallback(cb as Callback);
    const command = createQuery(sql, vals, wrapped, session.raw.config);
    this.send(command, cb === undefined);
    return command;
  }

  /** Runs a prepared statement (callback mode). */
  execute(sql: string | QueryOptions, values?: ExecuteValues | StatementCallback, callback?: StatementCallback): void {
    const [vals, cb] = typeof values === 'function' ? [undefined, values] : [values, callback];
    this.lease.execute(sql, vals).then(
      ([rows, fields]) => cb?.(null, rows, fields),
      (error: QueryError) => cb && failWith(cb, error),
    );
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
   * Gives the connection back to the pool, as mysql2's pooled connections do
   * (Drizzle's iterator ends its connection this way); without mysql2's
   * deprecation warning.
   */
  end(callback?: (err: Error | null) => void): void {
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

  /** @internal Sends a command through the lease's fence and the session's tracking. */
  send(command: Query, streaming: boolean): void {
    const fenced = this.lease.fencedError('query') ?? this.lease.session.lostError();
    if (fenced) {
      failCommand(command, fenced);
      return;
    }
    this.lease.watchIfInTransaction(command.sql);
    (this.lease.session as Session).sendQuery(command, streaming);
  }
}

/** mysql2's own Query command (its `createQuery` reads `rowsAsArray` and `infileStreamFactory` from `config`). */
function createQuery(sql: string | QueryOptions, values: QueryValues | undefined, callback: Callback | undefined, config: object): Query {
  const create = mysql2.Connection.createQuery as unknown as (sql: unknown, values: unknown, cb: unknown, config: object) => Query;
  return create(sql, values, callback, config);
}

/** Fails a command that was never sent, the way mysql2 reports errors: callback, or `error` then `end`. */
function failCommand(command: Query, error: Error): void {
  const internals = command as unknown as { onResult?: (err: Error) => void };
  process.nextTick(() => {
    if (internals.onResult) internals.onResult(error);
    else command.emit('error', error);
    command.emit('end');
  });
}

/** mysql2 calls a failed statement's callback with the error alone. */
function failWith(callback: StatementCallback, error: QueryError): void {
  (callback as (err: QueryError) => void)(error);
}

function settle(promise: Promise<void>, callback: ((err: Error | null) => void) | undefined): void {
  promise.then(
    () => callback?.(null),
    (error: Error) => callback?.(error),
  );
}
