/**
 * Transaction: a handle on one transaction (depth 0) or savepoint (depth >= 1)
 * of a lease.
 *
 *   active ──commit()──▶ committed
 *          ──rollback()──▶ rolledBack
 *          ──dispose / GC / timeout / abort / lease released──▶ abandoned
 *          ──deadlock (on a statement or at COMMIT: Galera's certification failure), lock wait
 *            timeout (with rollback), DDL's implicit commit──▶ endedByServer
 *          ──connection lost during COMMIT, or COMMIT answered 1180──▶ outcomeUnknown
 *
 * Only `active` sends anything. Every other state rejects at once with a typed
 * error, so a late statement never reaches the server.
 */
import type { InspectOptions } from 'node:util';
import type { ExecuteValues, FieldPacket, QueryError, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { inspectAs, inspectSymbol } from '../inspect';
import {
  CommitOutcomeUnknownError,
  ConnectionLostError,
  InvalidOptionError,
  RollbackFailedError,
  TransactionAbandonedError,
  TransactionClosedError,
  TransactionEndedByServerError,
} from '../errors';
import type { AbandonReason } from '../pool/events';
import type { PoolConnection } from '../pool/lease';
import { gtidOfResult } from '../pool/gtid';
import { ER_LOCK_DEADLOCK, ER_NODE_NOT_READY, type QueryOutcome, type StackHolder, type Statement } from '../pool/session';
import { runTransaction, type TransactionOptions } from './run';
import { beginStatements, savepointName, type BeginOptions } from './sql';

/**
 * `outcomeUnknown`: the connection died during COMMIT, or COMMIT answered 1180
 * (ER_ERROR_DURING_COMMIT); the server may or may not have committed
 * (`ERR_COMMIT_OUTCOME_UNKNOWN`).
 */
export type TransactionState = 'active' | 'committed' | 'rolledBack' | 'abandoned' | 'endedByServer' | 'outcomeUnknown';

/** ER_ERROR_DURING_COMMIT: on Galera, a write set whose replication failed part way (it may have committed elsewhere). */
const ER_ERROR_DURING_COMMIT = 1180;

/** What `tx.transaction(fn, options)` (a savepoint) accepts. */
const SAVEPOINT_OPTION_KEYS = new Set(['timeoutMs', 'signal', 'onTimeout']);

/** What the FinalizationRegistry keeps of a transaction: enough to abandon it, nothing that keeps it alive. */
interface Held {
  lease: PoolConnection;
  ownsLease: boolean;
  /** The statement that undoes this transaction or savepoint. */
  rollbackSql: string;
  stack: string | undefined;
  /** Cleared when the transaction ends, so a late GC queues nothing. */
  live: boolean;
}

/**
 * The safety net for handles dropped without commit, rollback or dispose. It
 * keeps only the lease, never the handle. A handle that owns its lease stays
 * registered until that lease is given back, even after the transaction ended
 * (a deadlock's handle thrown away with its error must still return the
 * connection).
 */
const lost = new FinalizationRegistry<Held>((held) => {
  if (held.ownsLease) {
    held.lease.abandon('garbage-collected', held.stack);
  } else if (held.live && !held.lease.isReleased) {
    // (A released lease was already reported and rolled back by the pool: nothing left to do.)
    held.lease.reportAbandon('garbage-collected', held.stack);
    held.lease.queueRollback(held.rollbackSql);
  }
});

/**
 * A handle on one transaction or savepoint, from `pool.begin()`, `conn.begin()`
 * or `tx.begin()`: only an active handle sends anything.
 */
export class Transaction {
  private stateValue: TransactionState = 'active';
  /** Why it was abandoned: the error late calls reject with. */
  private abandonedBy: Error | undefined;
  /** Why it was abandoned, when no error was given: the error is made only if a late call needs it. */
  private abandonedWhy: AbandonReason | undefined;
  /** A COMMIT (or RELEASE SAVEPOINT) was sent and has not been answered yet. */
  private committing = false;
  private child: Transaction | undefined;
  /** An abandoned savepoint whose ROLLBACK TO failed: the whole transaction must not commit. */
  private poison: RollbackFailedError | undefined;
  private readonly held: Held;
  /** Savepoints opened under this root so far: names are `rp_<n>`, unique per transaction. */
  private savepoints = 0;
  /** This savepoint's name (undefined for the transaction itself). */
  private readonly savepoint: string | undefined;
  private committedGtid: string | undefined;

  /** @internal Use `pool.begin()`, `conn.begin()` or `tx.begin()`. */
  constructor(
    /** @internal */ readonly lease: PoolConnection,
    /** 0 for the transaction itself, n for a savepoint nested n deep. */
    readonly depth: number,
    private readonly ownsLease: boolean,
    private readonly parent: Transaction | undefined,
    stack: string | undefined,
    savepoint?: string,
    /** False for handles the callback runner holds to the end itself: they cannot be lost. */
    watched = true,
  ) {
    this.savepoint = savepoint;
    const rollbackSql = savepoint ? `ROLLBACK TO SAVEPOINT ${savepoint}` : 'ROLLBACK';
    this.held = { lease, ownsLease, rollbackSql, stack, live: true };
    if (watched) lost.register(this, this.held, this.held);
  }

  /**
   * @internal Begins a transaction on `lease`. The guard is armed before each
   * BEGIN statement is written, so a BEGIN that fails, times out or is
   * abandoned half way is still rolled back. A transaction still active on the
   * same lease is superseded: rolled back first, never implicitly committed by
   * the new START TRANSACTION.
   */
  static begin(
    lease: PoolConnection,
    options: BeginOptions | undefined,
    ownsLease: boolean,
    stack: string | undefined,
    watched = true,
    caller?: StackHolder,
  ): Promise<Transaction> {
    let statements: readonly string[];
    try {
      statements = beginStatements(options); // validated before any SQL is sent
    } catch (error) {
      return Promise.reject(error);
    }
    lease.activeTransaction?.deref()?.abandon('superseded');
    // A lease the handle owns is held by the handle (or the runner) to its end, and a lost handle is
    // caught by `lost` below: the pool's net for lost leases would only watch it a second time.
    if (ownsLease) lease.watchedForLoss = true;
    const begun = (): Transaction => {
      const tx = new Transaction(lease, 0, ownsLease, undefined, stack, undefined, watched);
      // A lease the handle owns is out of the user's hands: nothing else can begin on it.
      if (!ownsLease) lease.activeTransaction = new WeakRef(tx);
      return tx;
    };
    const failed = (sent: number, error: unknown): never => {
      // A node that refused BEGIN (1047) refuses ROLLBACK too, and nothing was opened: a lease of our
      // own is given back and closes quietly (Session.release), no ROLLBACK is queued on the caller's.
      const refused = (error as QueryError).errno === ER_NODE_NOT_READY;
      if (sent > 0 && !(refused && ownsLease)) {
        // SET TRANSACTION ISOLATION LEVEL went through but START did not: the level would
        // carry over to whatever runs next on this connection. Only closing it is certain.
        lease.destroy();
      } else if (ownsLease) {
        lease.abandon('released-in-transaction');
      } else if (!refused) {
        lease.queueRollback('ROLLBACK');
      }
      throw error;
    };
    if (statements.length === 1) {
      // The usual case, one START TRANSACTION: one promise, no async frame.
      lease.armTransactionGuard();
      return lease.sendWith('query', statements[0] as string, undefined, caller).then(begun, (error: unknown) => failed(0, error));
    }
    return (async () => {
      let sent = 0;
      try {
        for (const sql of statements) {
          lease.armTransactionGuard();
          await lease.sendWith('query', sql, undefined, caller);
          sent++;
        }
      } catch (error) {
        failed(sent, error);
      }
      return begun();
    })();
  }

  /** `active`, `committed`, `rolledBack`, `abandoned`, `endedByServer` or `outcomeUnknown`. */
  get state(): TransactionState {
    return this.stateValue;
  }

  /**
   * After `commit()`: the GTID the primary gave this commit (e.g. `'0-1-42'`),
   * when the pool has `trackGtid` (a replica pool's primary has). Undefined
   * before the commit, for a commit that wrote nothing (no GTID), for a
   * savepoint, and without `trackGtid`.
   */
  get gtid(): string | undefined {
    return this.committedGtid;
  }

  /** The server's id for this transaction's connection. */
  get threadId(): number {
    return this.lease.threadId;
  }

  /** Runs a statement inside the transaction (text protocol). */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    return this.run('query', sql, values, Transaction.prototype.query) as Promise<[T, FieldPacket[]]>;
  }

  /** Runs a prepared statement inside the transaction (binary protocol). */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.run('execute', sql, values, Transaction.prototype.execute) as Promise<[T, FieldPacket[]]>;
  }

  /** Opens a savepoint: a nested transaction whose rollback undoes only its own work. */
  begin(): Promise<Transaction> {
    return this.openSavepoint(this.lease.captureCaller(Transaction.prototype.begin));
  }

  private async openSavepoint(caller: StackHolder | undefined): Promise<Transaction> {
    const closed = this.closedError('begin');
    if (closed) throw closed;
    const root = this.root();
    const name = savepointName(++root.savepoints);
    await this.send('query', `SAVEPOINT ${name}`, undefined, false, caller);
    const child = new Transaction(this.lease, this.depth + 1, false, this, this.held.stack, name);
    this.child = child;
    return child;
  }

  /** Runs `fn` in a savepoint: released if it resolves, rolled back to if it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options: Pick<TransactionOptions, 'timeoutMs' | 'signal' | 'onTimeout'> = {}): Promise<T> {
    // A savepoint has no isolation level of its own and is not retried alone (a deadlock ends the whole transaction).
    for (const key of options !== null && typeof options === 'object' ? Object.keys(options) : []) {
      if (!SAVEPOINT_OPTION_KEYS.has(key)) {
        return Promise.reject(new InvalidOptionError(key, 'a savepoint option: timeoutMs, signal or onTimeout'));
      }
    }
    const root = this.root();
    // If stopped while SAVEPOINT is in flight: the rollback to it is queued at once, behind it.
    const stoppedEarly = (): void => {
      const name = savepointName(root.savepoints);
      this.lease.queueRollback(`ROLLBACK TO SAVEPOINT ${name}`, (failure) => {
        root.poison = failure;
      });
    };
    const caller = this.lease.captureCaller(Transaction.prototype.transaction);
    return runTransaction(() => this.openSavepoint(caller), fn, { ...(options ?? {}), retries: 0 }, stoppedEarly, caller);
  }

  /**
   * Commits (or, for a savepoint, releases it). If COMMIT fails, a ROLLBACK is
   * tried and the commit error is thrown with `rollbackError` attached when
   * that fails too. If the connection dies during COMMIT the outcome is unknown:
   * `ERR_COMMIT_OUTCOME_UNKNOWN`.
   */
  commit(): Promise<void> {
    return this.commitWith(this.lease.captureCaller(Transaction.prototype.commit));
  }

  /** @internal `commit()` with the caller's stack given (the runner's: the line that called `transaction()`). */
  async commitWith(caller: StackHolder | undefined): Promise<void> {
    if (this.stateValue === 'endedByServer') {
      this.releaseOwnedLease(); // nothing left to commit; the connection goes back
      throw new TransactionEndedByServerError('commit');
    }
    const closed = this.closedError('commit');
    if (closed) throw closed;
    if (this.poison) {
      await this.rollbackWith(caller).catch(() => undefined);
      throw this.poison;
    }
    // Until the server answers, the handle takes nothing else: a second commit() or a rollback()
    // would otherwise be sent after the COMMIT and report an outcome that is not the real one.
    this.committing = true;
    if (this.savepoint) {
      try {
        await this.send('query', `RELEASE SAVEPOINT ${this.savepoint}`, undefined, true, caller);
      } finally {
        this.committing = false;
      }
      this.end('committed');
      return;
    }
    try {
      const [result] = await this.send('query', 'COMMIT', undefined, true, caller);
      this.committedGtid = gtidOfResult(result);
    } catch (error) {
      this.committing = false;
      // A COMMIT the pool refused to send (the connection was already gone) certainly did not commit.
      const unsent = error instanceof ConnectionLostError && error.neverSent;
      const errno = (error as QueryError).errno;
      if (errno === ER_ERROR_DURING_COMMIT && !(error as QueryError).fatal) {
        // Galera answers 1180 when the node drops out of the primary component while the write set is
        // being replicated; the others may have committed it. Never guess; and close the connection, as
        // after a lost COMMIT (its state is as unknown as the outcome; the server rolls back what is left).
        this.end('outcomeUnknown');
        this.lease.session.destroy('COMMIT failed with 1180 (ER_ERROR_DURING_COMMIT): outcome unknown');
        this.releaseOwnedLease();
        throw new CommitOutcomeUnknownError(error);
      }
      if ((error as QueryError).fatal && !unsent) {
        this.end('outcomeUnknown'); // never guess; the handle must not be reused either way
        this.releaseOwnedLease();
        throw new CommitOutcomeUnknownError(error);
      }
      if (errno === ER_LOCK_DEADLOCK) {
        // The server rolled the whole transaction back (a deadlock, or a Galera certification failure):
        // the same end as a deadlock on a statement, and no ROLLBACK to send.
        this.end('endedByServer');
        this.releaseOwnedLease();
        throw error;
      }
      this.end('rolledBack'); // a refused COMMIT leaves it open on a live connection: undo it; a dead one was rolled back
      // (1047: the node refuses ROLLBACK too; the session closes at release and the server rolls back.)
      if (!unsent && errno !== ER_NODE_NOT_READY) {
        try {
          await this.lease.sendWith('query', 'ROLLBACK', undefined, caller);
        } catch (rollbackError) {
          attach(error, 'rollbackError', rollbackError);
        }
      }
      this.releaseOwnedLease();
      throw error;
    }
    this.committing = false;
    this.end('committed');
    this.releaseOwnedLease();
  }

  /** Rolls back (or, for a savepoint, rolls back to it). Errors are thrown. */
  rollback(): Promise<void> {
    return this.rollbackWith(this.lease.captureCaller(Transaction.prototype.rollback));
  }

  /** @internal `rollback()` with the caller's stack given (the runner's: the line that called `transaction()`). */
  async rollbackWith(caller: StackHolder | undefined): Promise<void> {
    // After the server ended it, a rollback is what the caller wants anyway: allowed, and harmless.
    const closed = this.stateValue === 'endedByServer' ? undefined : this.closedError('rollback');
    if (closed) throw closed;
    const sql = this.held.rollbackSql;
    this.end('rolledBack');
    try {
      await this.lease.sendWith('query', sql, undefined, caller);
    } finally {
      this.releaseOwnedLease();
    }
  }

  /** What `JSON.stringify(tx)` shows: never the connection options. */
  toJSON(): { state: TransactionState; threadId: number; savepoint: string | undefined } {
    return { state: this.stateValue, threadId: this.lease.threadId, savepoint: this.savepoint };
  }

  /** What `console.log(tx)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('Transaction', this.toJSON(), options);
  }

  /**
   * `using tx = await pool.begin()`: if still active at the end of the block,
   * abandons it: synchronous, never throws; the rollback runs in the background
   * before the connection serves anything else.
   */
  [Symbol.dispose](): void {
    if (this.stateValue === 'active' && !this.committing) this.abandon('disposed');
    else if (this.stateValue === 'endedByServer' && this.ownsLease) this.lease.release();
  }

  /** `await using tx = await pool.begin()`: if still active, rolls back now and lets a rollback error surface. */
  async [Symbol.asyncDispose](): Promise<void> {
    if ((this.stateValue === 'active' && !this.committing) || this.stateValue === 'endedByServer') await this.rollback();
  }

  /**
   * @internal Fences the transaction at once (later calls reject with `reason`)
   * and rolls it back in the background, after any statement in flight.
   */
  abandon(why: AbandonReason, reason?: Error, rollbackQueued = false): void {
    if (this.stateValue !== 'active') return;
    // An Error (and its stack) costs more than the rest of an abandon: made lazily, for a late call only.
    this.abandonedBy = reason;
    this.abandonedWhy = why;
    this.end('abandoned');
    if (this.ownsLease) {
      this.lease.abandon(why, this.held.stack);
      return;
    }
    if (!this.savepoint) this.lease.reportAbandon(why, this.held.stack);
    if (rollbackQueued) return;
    const root = this.root();
    this.lease.queueRollback(this.held.rollbackSql, (failure) => {
      if (this.savepoint) root.poison = failure;
    });
  }

  /** @internal True while a statement waits for the server on this transaction's connection. */
  get hasInFlight(): boolean {
    return this.lease.hasInFlight;
  }

  /** `below`: the public method called, so that the captured stack starts at the caller's line. */
  private run(method: 'query' | 'execute', sql: Statement, values: unknown, below: Function): Promise<QueryOutcome> {
    const closed = this.closedError(method);
    if (closed) return Promise.reject(closed);
    if (typeof values === 'function') {
      throw new Error('Callback function is not available with promise clients.');
    }
    return this.send(method, sql, values, false, this.lease.captureCaller(below));
  }

  /**
   * Sends a statement and watches whether the server ended the transaction
   * under it (`ending`: COMMIT / RELEASE SAVEPOINT, which end it on purpose).
   * The check runs as soon as the reply is observed, before the caller resumes.
   */
  private send(method: 'query' | 'execute', sql: Statement, values: unknown, ending: boolean, caller: StackHolder | undefined): Promise<QueryOutcome> {
    return this.lease.sendWith(method, sql, values, caller, method, ending ? undefined : this.checkEnded);
  }

  /** After each statement: did the server end the transaction under it (deadlock, DDL's implicit commit)? */
  private readonly checkEnded = (): void => {
    if (this.stateValue === 'active' && !this.lease.inTransaction) this.root().endByServer();
  };

  private endByServer(): void {
    if (this.stateValue !== 'active') return;
    this.end('endedByServer');
  }

  private closedError(method: string): Error | undefined {
    switch (this.stateValue) {
      case 'active':
        if (this.lease.isReleased) {
          // The pool already counted the abandon and runs the rollback: only fence the handle.
          this.abandonedBy = new TransactionAbandonedError(method, 'left behind when its connection was released');
          this.end('abandoned');
          return this.abandonedBy;
        }
        return this.committing ? new TransactionClosedError(method, 'being committed') : undefined;
      case 'abandoned':
        if (this.abandonedBy === undefined && this.abandonedWhy !== undefined) {
          this.abandonedBy = new TransactionAbandonedError('query', describe(this.abandonedWhy));
        }
        return this.abandonedBy ?? new TransactionAbandonedError(method, 'abandoned');
      case 'endedByServer':
        return new TransactionEndedByServerError(method);
      case 'outcomeUnknown':
        return new TransactionClosedError(method, 'over (its COMMIT outcome is unknown)');
      default:
        return new TransactionClosedError(method, this.stateValue === 'committed' ? 'committed' : 'rolled back');
    }
  }

  /** Moves to a final state, with every nested savepoint. */
  private end(state: Exclude<TransactionState, 'active'>): void {
    this.stateValue = state;
    this.held.live = false;
    if (!this.ownsLease || this.lease.isReleased) lost.unregister(this.held);
    if (this.lease.activeTransaction?.deref() === this) this.lease.activeTransaction = undefined;
    const child = this.child;
    this.child = undefined;
    if (child && child.stateValue === 'active') child.end(state);
    if (this.parent && this.parent.child === this) this.parent.child = undefined;
  }

  private root(): Transaction {
    return this.parent ? this.parent.root() : this;
  }

  private releaseOwnedLease(): void {
    if (!this.ownsLease) return;
    this.lease.release();
    lost.unregister(this.held);
  }
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
    case 'superseded':
      return 'superseded by a new transaction on the same connection';
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
