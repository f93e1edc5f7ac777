/**
 * Transaction: a handle on one transaction (depth 0) or savepoint (depth >= 1)
 * of a lease.
 *
 *   active ──commit()──▶ committed
 *          ──rollback()──▶ rolledBack
 *          ──dispose / GC / timeout / abort / lease released──▶ abandoned
 *          ──deadlock, lock wait timeout (with rollback), DDL's implicit commit──▶ endedByServer
 *
 * Only `active` sends anything. Every other state rejects at once with a typed
 * error, so a late statement never reaches the server.
 */
import type { ExecuteValues, FieldPacket, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import {
  CommitOutcomeUnknownError,
  RollbackFailedError,
  TransactionAbandonedError,
  TransactionClosedError,
  TransactionEndedByServerError,
} from '../errors';
import type { AbandonReason } from '../pool/events';
import type { PoolConnection } from '../pool/lease';
import type { QueryOutcome, Statement } from '../pool/session';
import { runTransaction, type TransactionOptions } from './run';
import { beginStatements, savepointName, type BeginOptions } from './sql';

export type TransactionState = 'active' | 'committed' | 'rolledBack' | 'abandoned' | 'endedByServer';

/** What the FinalizationRegistry keeps of a transaction: enough to abandon it, nothing that keeps it alive. */
interface Held {
  lease: PoolConnection;
  ownsLease: boolean;
  depth: number;
  stack: string | undefined;
  /** Cleared when the transaction ends, so a late GC does nothing. */
  live: boolean;
}

const lost = new FinalizationRegistry<Held>((held) => {
  if (held.live) abandonHeld(held, 'garbage-collected');
});

export class Transaction {
  private stateValue: TransactionState = 'active';
  /** Why it was abandoned: the error late calls reject with. */
  private abandonedBy: Error | undefined;
  private child: Transaction | undefined;
  /** An abandoned savepoint whose ROLLBACK TO failed: the whole transaction must not commit. */
  private poison: RollbackFailedError | undefined;
  private readonly held: Held;
  private readonly inFlight = new Set<Promise<unknown>>();

  /** @internal Use `pool.begin()`, `conn.begin()` or `tx.begin()`. */
  constructor(
    /** @internal */ readonly lease: PoolConnection,
    /** 0 for the transaction itself, n for the n-th nested savepoint. */
    readonly depth: number,
    private readonly ownsLease: boolean,
    private readonly parent: Transaction | undefined,
    stack: string | undefined,
  ) {
    this.held = { lease, ownsLease, depth, stack, live: true };
    lost.register(this, this.held, this.held);
  }

  /** @internal Begins a transaction on `lease` (BEGIN is guarded before it is written). */
  static async begin(lease: PoolConnection, options: BeginOptions | undefined, ownsLease: boolean, stack: string | undefined): Promise<Transaction> {
    const statements = beginStatements(options); // validated before any SQL is sent
    lease.armTransactionGuard();
    try {
      for (const sql of statements) await lease.query(sql);
    } catch (error) {
      // The guard makes the pool roll back whatever half of BEGIN got through.
      if (ownsLease) lease.abandon('released-in-transaction');
      else lease.queueRollback('ROLLBACK');
      throw error;
    }
    return new Transaction(lease, 0, ownsLease, undefined, stack);
  }

  /** `active`, `committed`, `rolledBack`, `abandoned` or `endedByServer`. */
  get state(): TransactionState {
    return this.stateValue;
  }

  /** The server's id for this transaction's connection. */
  get threadId(): number {
    return this.lease.threadId;
  }

  /** Runs a statement inside the transaction (text protocol). */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    return this.run('query', sql, values) as Promise<[T, FieldPacket[]]>;
  }

  /** Runs a prepared statement inside the transaction (binary protocol). */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.run('execute', sql, values) as Promise<[T, FieldPacket[]]>;
  }

  /** Opens a savepoint: a nested transaction whose rollback undoes only its own work. */
  async begin(): Promise<Transaction> {
    const closed = this.closedError('begin');
    if (closed) throw closed;
    const depth = this.depth + 1;
    await this.send('query', `SAVEPOINT ${savepointName(depth)}`, undefined);
    const child = new Transaction(this.lease, depth, false, this, this.held.stack);
    this.child = child;
    return child;
  }

  /** Runs `fn` in a savepoint: released if it resolves, rolled back to if it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options: Pick<TransactionOptions, 'timeoutMs' | 'signal' | 'onTimeout'> = {}): Promise<T> {
    return runTransaction(() => this.begin(), fn, { ...options, retries: 0 });
  }

  /**
   * Commits (or, for a savepoint, releases it). If COMMIT fails, a ROLLBACK is
   * tried and the commit error is thrown with `rollbackError` attached when
   * that fails too. If the connection dies during COMMIT the outcome is unknown:
   * `ERR_COMMIT_OUTCOME_UNKNOWN`.
   */
  async commit(): Promise<void> {
    if (this.stateValue === 'endedByServer') {
      this.releaseOwnedLease(); // nothing left to commit; the connection goes back
      throw new TransactionEndedByServerError('commit');
    }
    const closed = this.closedError('commit');
    if (closed) throw closed;
    if (this.poison) {
      await this.rollback().catch(() => undefined);
      throw this.poison;
    }
    if (this.depth > 0) {
      await this.send('query', `RELEASE SAVEPOINT ${savepointName(this.depth)}`, undefined);
      this.end('committed');
      return;
    }
    try {
      await this.send('query', 'COMMIT', undefined);
    } catch (error) {
      if ((error as QueryError).fatal) {
        this.end('rolledBack'); // closed either way; the handle must not be reused
        this.releaseOwnedLease();
        throw new CommitOutcomeUnknownError(error);
      }
      this.end('rolledBack');
      try {
        await this.lease.query('ROLLBACK');
      } catch (rollbackError) {
        attach(error, 'rollbackError', rollbackError);
      }
      this.releaseOwnedLease();
      throw error;
    }
    this.end('committed');
    this.releaseOwnedLease();
  }

  /** Rolls back (or, for a savepoint, rolls back to it). Errors are thrown. */
  async rollback(): Promise<void> {
    // After the server ended it, a rollback is what the caller wants anyway: allowed, and harmless.
    const closed = this.stateValue === 'endedByServer' ? undefined : this.closedError('rollback');
    if (closed) throw closed;
    const sql = this.depth > 0 ? `ROLLBACK TO SAVEPOINT ${savepointName(this.depth)}` : 'ROLLBACK';
    this.end('rolledBack');
    try {
      await this.lease.query(sql);
    } finally {
      this.releaseOwnedLease();
    }
  }

  /**
   * `using tx = await pool.begin()`: if still active at the end of the block,
   * abandons it: synchronous, never throws; the rollback runs in the background
   * before the connection serves anything else.
   */
  [Symbol.dispose](): void {
    if (this.stateValue === 'active') this.abandon('disposed');
    else if (this.stateValue === 'endedByServer' && this.ownsLease) this.lease.release();
  }

  /** `await using tx = await pool.begin()`: if still active, rolls back now and lets a rollback error surface. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.stateValue === 'active' || this.stateValue === 'endedByServer') await this.rollback();
  }

  /**
   * @internal Fences the transaction at once (later calls reject with `reason`)
   * and rolls it back in the background, after any statement in flight.
   */
  abandon(why: AbandonReason, reason?: Error): void {
    if (this.stateValue !== 'active') return;
    this.abandonedBy = reason ?? new TransactionAbandonedError('query', describe(why));
    this.end('abandoned');
    if (this.ownsLease) {
      this.lease.abandon(why, this.held.stack);
    } else if (this.depth > 0) {
      const root = this.root();
      this.lease.queueRollback(`ROLLBACK TO SAVEPOINT ${savepointName(this.depth)}`, (failure) => {
        root.poison = failure;
      });
    } else {
      this.lease.queueRollback('ROLLBACK');
    }
  }

  /** @internal True while a statement of this transaction waits for the server. */
  get hasInFlight(): boolean {
    return this.inFlight.size > 0;
  }

  private run(method: 'query' | 'execute', sql: Statement, values: unknown): Promise<QueryOutcome> {
    const closed = this.closedError(method);
    if (closed) return Promise.reject(closed);
    return this.send(method, sql, values);
  }

  /** Sends a statement and watches whether the server ended the transaction under it. */
  private send(method: 'query' | 'execute', sql: Statement, values: unknown): Promise<QueryOutcome> {
    const outcome = method === 'query' ? this.lease.query(sql, values as QueryValues) : this.lease.execute(sql, values as ExecuteValues);
    this.inFlight.add(outcome);
    const check = (): void => {
      this.inFlight.delete(outcome);
      if (this.stateValue === 'active' && !this.lease.inTransaction) this.root().endByServer();
    };
    outcome.then(check, check);
    return outcome;
  }

  private endByServer(): void {
    if (this.stateValue !== 'active') return;
    this.end('endedByServer');
  }

  private closedError(method: string): Error | undefined {
    switch (this.stateValue) {
      case 'active':
        if (this.lease.isReleased) {
          this.abandon('released-in-transaction');
          return new TransactionAbandonedError(method, 'left behind when its connection was released');
        }
        return undefined;
      case 'abandoned':
        return this.abandonedBy ?? new TransactionAbandonedError(method, 'abandoned');
      case 'endedByServer':
        return new TransactionEndedByServerError(method);
      default:
        return new TransactionClosedError(method, this.stateValue === 'committed' ? 'committed' : 'rolled back');
    }
  }

  /** Moves to a final state, with every nested savepoint. */
  private end(state: Exclude<TransactionState, 'active'>): void {
    this.stateValue = state;
    this.held.live = false;
    lost.unregister(this.held);
    const child = this.child;
    this.child = undefined;
    if (child && child.stateValue === 'active') child.end(state);
    if (this.parent && this.parent.child === this) this.parent.child = undefined;
  }

  private root(): Transaction {
    return this.parent ? this.parent.root() : this;
  }

  private releaseOwnedLease(): void {
    if (this.ownsLease) this.lease.release();
  }
}

function abandonHeld(held: Held, why: AbandonReason): void {
  if (held.ownsLease) held.lease.abandon(why, held.stack);
  else if (held.depth > 0) held.lease.queueRollback(`ROLLBACK TO SAVEPOINT ${savepointName(held.depth)}`);
  else held.lease.queueRollback('ROLLBACK');
}

function describe(why: AbandonReason): string {
  switch (why) {
    case 'disposed':
      return 'disposed while still active';
    case 'garbage-collected':
      return 'lost (garbage collected) while still active';
    case 'timeout':
      return 'timed out';
    case 'aborted':
      return 'aborted';
    default:
      return 'abandoned';
  }
}

/** Keeps a second error reachable from the first without replacing it. */
export function attach(target: unknown, key: string, value: unknown): void {
  if (target !== null && typeof target === 'object') {
    Object.defineProperty(target, key, { value, enumerable: false, configurable: true, writable: true });
  }
}
