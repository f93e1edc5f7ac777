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
import { LeaseReleasedError, PoolClosedError } from '../errors';
import type { QueryOutcome, Session } from './session';

/** What a lease needs from its pool. */
export interface LeaseOwner {
  readonly closed: boolean;
  releaseSession(session: Session, lease: PoolConnection): void;
  destroySession(session: Session, reason: string): void;
}

export class PoolConnection {
  private released = false;
  /** Where the lease was taken (only with `captureStacks`). */
  readonly takenAt: string | undefined;
  /** Timer of leak detection, if on. */
  leakTimer: NodeJS.Timeout | undefined;

  /** @internal Leases are made by the pool: use `pool.getConnection()`. */
  constructor(
    private readonly owner: LeaseOwner,
    private readonly session: Session,
    takenAt: string | undefined,
  ) {
    this.takenAt = takenAt;
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
    return this.run('query', sql, values) as Promise<[T, FieldPacket[]]>;
  }

  /** Runs a prepared statement, as mysql2's `connection.execute` (binary protocol, cached). */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.run('execute', sql, values) as Promise<[T, FieldPacket[]]>;
  }

  /**
   * `START TRANSACTION`. The connection counts as in a transaction from the
   * moment this is called, so a release before it completes still rolls back.
   */
  beginTransaction(): Promise<void> {
    const fenced = this.fence('beginTransaction');
    if (fenced) return fenced;
    this.session.armTransactionGuard();
    return this.session.run('query', 'START TRANSACTION', undefined).then(noValue);
  }

  /** `COMMIT`. */
  commit(): Promise<void> {
    return this.run('query', 'COMMIT', undefined, 'commit').then(noValue);
  }

  /** `ROLLBACK`. */
  rollback(): Promise<void> {
    return this.run('query', 'ROLLBACK', undefined, 'rollback').then(noValue);
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
    this.released = true;
    this.owner.releaseSession(this.session, this);
  }

  /** Closes the connection instead of returning it; the server rolls back what was open. */
  destroy(): void {
    if (this.released) return;
    this.released = true;
    this.owner.destroySession(this.session, 'destroyed by user');
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

  /** `using conn = await pool.getConnection()`: releases at the end of the block. */
  [Symbol.dispose](): void {
    this.release();
  }

  /** `await using conn = await pool.getConnection()`: releases at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }

  /** @internal The underlying mysql2 connection, for the pool's own use. */
  get rawConnection(): RawConnection {
    return this.session.raw;
  }

  private run(method: 'query' | 'execute', sql: string | QueryOptions, values: unknown, name: string = method): Promise<QueryOutcome> {
    const fenced = this.fence(name);
    if (fenced) return fenced;
    if (typeof values === 'function') {
      throw new Error('Callback function is not available with promise clients.');
    }
    return this.session.run(method, sql, values);
  }

  /** The rejection for a call on a fenced lease, or undefined when the call may proceed. */
  private fence(method: string): Promise<never> | undefined {
    if (this.released) return Promise.reject(new LeaseReleasedError(method));
    if (this.owner.closed) return Promise.reject(new PoolClosedError());
    return undefined;
  }
}

function noValue(): void {
  return undefined;
}
