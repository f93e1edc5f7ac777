/**
 * Pool: the mysql2/promise `Pool` facade. It owns the sessions, decides what
 * happens to a session when its lease ends (back to idle, flagged for a
 * rollback, or destroyed), emits events and keeps the counters.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import type { InspectOptions } from 'node:util';
import * as mysql2 from 'mysql2';
import type { Connection as RawConnection, ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues } from 'mysql2';
import { PoolClosedError, type RollbackFailedError } from '../errors';
import { describeConnection, inspectAs, inspectSymbol } from '../inspect';
import { resolveOptions, type PoolOptions, type ResolvedOptions } from '../options';
import { runTransaction, type TransactionOptions } from '../tx/run';
import { beginStatements, checkBeginKeys, type BeginOptions } from '../tx/sql';
import { Transaction } from '../tx/transaction';
import * as mysql2Promise from 'mysql2/promise';
import {
  currentScope,
  openScope,
  runInScope,
  type ScopeHandle,
  type ScopeHost,
  type ScopeOptions,
  type ScopeTransactionOptions,
} from '../scope/scope';
import { recoverPrepared, type XaRecoveryReport } from '../scope/xa';
import type { AbandonReason, PoolEventMap } from './events';
import { CallbackPool } from './callback';
import { GtidPosition } from './gtid';
import { refuseUnlessReadOnly } from '../replica/statement';
import { channels, publish, type DiagnosticsMessages } from './diagnostics';
import { PoolConnection, type LeaseOwner } from './lease';
import { ResourcePool, type Waiter } from './resource-pool';
import { runAll, Session, type QueryOutcome, type SessionHooks, type StackHolder, type Statement } from './session';
import { TRACK_STATE_CHANGES, watchStateChanges } from './session-state';

/** A snapshot of the pool, from `pool.stats()`. */
export interface PoolStats {
  /** Open connections: idle, leased or pending rollback (not counting broken ones about to be dropped). */
  total: number;
  /** Clean connections ready to be leased. */
  idle: number;
  /** Connections held by a lease or running a pool-level query. */
  leased: number;
  /** Acquirers waiting for a connection. */
  waiting: number;
  /** Connections released inside a transaction whose ROLLBACK has not finished yet. */
  pendingRollback: number;
  /** Since creation: transactions abandoned (released without commit or rollback). */
  abandoned: number;
  /** Since creation: pending ROLLBACKs that succeeded. */
  rolledBack: number;
  /** Since creation: pending ROLLBACKs that failed or timed out (their connection was destroyed). */
  rollbackFailures: number;
  /** Since creation: connections destroyed, for any reason. */
  destroyed: number;
  /** Since creation: sessions reset before their next lease (`resetOnRelease`). */
  resets: number;
}

/**
 * The safety net for leases dropped inside a transaction without `release()`
 * (lost by their owner: a library that keeps a connection for a transaction
 * nobody finishes, a forgotten lease). When one is garbage collected its
 * session is given back as abandoned (reason `garbage-collected`): rolled
 * back, its locks freed, and the slot is not lost. It holds the session,
 * never the lease.
 */
const lostLeases = new FinalizationRegistry<{ pool: Pool; session: Session; generation: number; takenAt: string | undefined }>(
  ({ pool, session, generation, takenAt }) => pool.reclaimLostLease(session, generation, takenAt),
);

/** How long a polite COM_QUIT may take before the socket is destroyed. */
const CLOSE_TIMEOUT_MS = 1_000;

/**
 * Errors that say the server will not take writes any more (mysql2's list,
 * from go-sql-driver): 1290 ER_OPTION_PREVENTS_STATEMENT (`--read-only`, Aurora
 * during a failover), 1792 ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, 1836
 * ER_READ_ONLY_MODE. A `pool.query` that gets one destroys its connection, as
 * mysql2's does: the next one connects afresh, maybe to the new writer.
 */
const READ_ONLY_ERRNOS = new Set([1290, 1792, 1836]);

/** mysql2's TracingChannel for pool checkouts (mysql2 lib/tracing.js), published by ours too. */
const poolConnectChannel = tracingChannel<object, PoolConnectContext>('mysql2:pool:connect');

/** The context of a `mysql2:pool:connect` trace, as mysql2 builds it. */
interface PoolConnectContext {
  database: string;
  serverAddress: string;
  serverPort: number | undefined;
}

/**
 * A pool with mysql2/promise's `Pool` API (make one with `createPool`). A
 * connection released inside a transaction is rolled back before anyone else
 * gets it. Events: {@link PoolEventMap}.
 */
export class Pool extends EventEmitter<PoolEventMap> implements LeaseOwner, SessionHooks, ScopeHost {
  /** The validated options, defaults filled in. */
  readonly options: ResolvedOptions;
  private readonly resources: ResourcePool<Session>;
  /** Every live session. */
  private readonly sessions = new Set<Session>();
  /** Sessions taken out of the resource pool and not given back yet (leased or being flushed). */
  private readonly out = new Set<Session>();
  private readonly counters = { abandoned: 0, rolledBack: 0, rollbackFailures: 0, destroyed: 0, resets: 0 };
  /** Run on every new connection: tracking turned on for 'whenDirty', trackGtid / refuseWrites settings, then initSql (after a reset: `afterReset`). */
  private readonly baseline: readonly string[];
  private ending: Promise<void> | undefined;
  /** Set by the first `withScope`: until then the hot path does not even look for a scope. */
  private scoped = false;
  /** Aborters of connects in progress. */
  private readonly connecting = new Set<() => void>();
  /** The commits seen on this pool's connections (option `trackGtid`), per replication domain the latest. */
  private readonly gtids = new GtidPosition();
  /**
   * @internal Run on every new connection after its baseline, before the pool
   * uses it: a rejection refuses the connection (its acquirer gets that
   * error). Set by the pool cluster right after it creates a node's pool, to
   * refuse connections to a Galera node that cannot serve (src/cluster/health.ts).
   */
  connectCheck: ((connection: RawConnection) => Promise<void>) | undefined;

  /** @internal Use `createPool()`. */
  constructor(options: PoolOptions | string) {
    super();
    this.options = resolveOptions(options);
    this.baseline = [
      ...(this.options.resetOnRelease === 'whenDirty' ? [TRACK_STATE_CHANGES] : []),
      ...connectSettings(this.options),
      ...this.options.initSql,
    ];
    if (this.options.legacyKeys.length > 0) {
      process.emitWarning(`rollback-pool: options mysql2 accepts but does not implement: ${this.options.legacyKeys.join('; ')}.`, {
        code: 'ROLLBACK_POOL_LEGACY_OPTION',
      });
    }
    const { connectionLimit, acquireTimeoutMs, waitForConnections, queueLimit, maxIdle, idleTimeout } = this.options;
    this.resources = new ResourcePool<Session>(
      {
        create: () => this.connect(),
        destroy: (session, evicted) => this.disposeSession(session, evicted),
        isUsable: (session) => session.usable,
        checkout: (session) => this.checkout(session),
      },
      {
        max: connectionLimit,
        acquireTimeoutMs,
        waitForConnections,
        queueLimit,
        maxIdle,
        idleTimeoutMs: idleTimeout,
        onEnqueue: () => {
          if (this.listenerCount('enqueue') > 0) this.notify('enqueue');
        },
      },
    );
  }

  /**
   * mysql2/promise's `pool.Promise`: the class of the promises this pool
   * returns. Always the native `Promise` (the `Promise` option accepts only
   * that; any other class is `ERR_INVALID_OPTION`).
   */
  get Promise(): PromiseConstructor {
    return Promise;
  }

  /** True once `end()` was called. */
  get closed(): boolean {
    return this.resources.isClosed;
  }

  /**
   * With the option `trackGtid`: the GTID of the last commit this pool's
   * connections made (`commit()`, `pool.transaction()`, autocommit writes
   * through `query`/`execute` or a lease), e.g. `'0-1-42'`; with several
   * replication domains, the latest of each (`'0-1-42,1-1-7'`). Undefined
   * before the first commit, and always without `trackGtid`. Carry it to
   * another process and wait for it on a replica (`replicaPool.replica({ after })`).
   */
  get lastGtid(): string | undefined {
    return this.gtids.value;
  }

  /**
   * Runs `fn` in a request scope: every connection taken inside it
   * (`getConnection`, `begin`, `query`, `execute`) runs in a transaction owned
   * by the scope, and when `fn` settles, `decide` (default: commit if it
   * resolved, roll back if it threw) commits or rolls back all of them before
   * they go back to the pool. A nested `withScope` joins the outer one.
   */
  withScope<T>(fn: () => Promise<T>, options?: ScopeOptions): Promise<T> {
    this.scoped = true;
    return runInScope(this, fn, options);
  }

  /**
   * Opens a request scope by hand, for framework adapters: `handle.run(fn)`
   * enters it, `handle.finish('commit' | 'rollback')` decides. Prefer
   * `withScope` when the work fits in one function.
   */
  openScope(options?: ScopeTransactionOptions): ScopeHandle {
    this.scoped = true;
    return openScope(this, options);
  }

  /**
   * Finishes the XA branches of two-phase scopes that a crash (of this
   * process, another one, or the server) left prepared: commits those whose
   * commit decision was recorded, rolls back the others. Run it at startup,
   * and after a `ScopeCommitError` with `leftPrepared` branches. Other
   * applications' XA transactions are not touched. On MySQL 8 the user needs
   * the `XA_RECOVER_ADMIN` privilege.
   */
  recoverXa(): Promise<XaRecoveryReport> {
    if (this.closed) return Promise.reject(new PoolClosedError());
    return recoverPrepared(this);
  }

  /** @internal */
  acquireForScope(): Promise<PoolConnection> {
    return this.takeConnection();
  }

  /** @internal A connection of its own, outside the pool (which the scope's branches may exhaust). */
  openSideConnection(): Promise<mysql2Promise.Connection> {
    return mysql2Promise.createConnection({ ...this.options.connection });
  }

  /** @internal */
  get xaLogTable(): string {
    return this.options.xaLogTable;
  }

  /** @internal */
  get leaseOwner(): LeaseOwner {
    return this;
  }

  private callbackFace: CallbackPool | undefined;

  /**
   * This pool with mysql2's callback API (`getConnection(cb)`, `query(sql,
   * values, cb)`, `end(cb)`), as on mysql2/promise's Pool: for libraries that
   * take a callback pool, such as Kysely's `MysqlDialect({ pool: pool.pool })`.
   * Every connection it hands out is fenced and tracked like the promise API's.
   */
  get pool(): CallbackPool {
    this.callbackFace ??= new CallbackPool(this);
    return this.callbackFace;
  }

  /** Takes a connection for several statements; give it back with `release()`. */
  getConnection(): Promise<PoolConnection> {
    if (typeof arguments[0] === 'function') {
      // mysql2's promise pool would ignore it and the callback would never run; the callback API is `pool.pool`.
      throw new Error('Callback function is not available with promise clients.');
    }
    if (this.scoped) {
      const scope = currentScope(this);
      if (scope) return scope.getConnection();
    }
    return this.takeConnection();
  }

  private takeConnection(): Promise<PoolConnection> {
    const takenAt = this.options.captureStacks ? captureStack('lease taken here') : undefined;
    if (poolConnectChannel.hasSubscribers || channels.acquire.hasSubscribers) {
      return this.tracedAcquire().then((session) => this.lease(session, takenAt));
    }
    // Hot path: an idle session is checked out at once (one promise); otherwise one waiter object in the queue.
    const idle = this.resources.isClosed ? undefined : this.resources.takeIdle();
    if (idle === undefined) {
      return new Promise<PoolConnection>((resolve, reject) => this.resources.request(new LeaseWaiter(this, takenAt, resolve, reject)));
    }
    const ready = this.checkout(idle);
    if (ready instanceof Session) return Promise.resolve(this.lease(ready, takenAt));
    return ready.then((session) => this.lease(session, takenAt));
  }

  /** @internal A new lease on a session just checked out. */
  lease(session: Session, takenAt: string | undefined): PoolConnection {
    const lease = new PoolConnection(this, session, takenAt);
    if (this.options.leakDetectionMs > 0) this.watchForLeak(lease);
    return lease;
  }

  /**
   * @internal A lease just entered a transaction: from now on, losing it (garbage
   * collected without `release()`) gives its session back as abandoned. Only
   * leases in a transaction are watched: registering every checkout would cost
   * every clean lease, and a lost clean lease holds no lock (`leakDetectionMs`
   * reports it).
   */
  watchLease(lease: PoolConnection): void {
    const { session } = lease;
    lostLeases.register(lease, { pool: this, session, generation: session.generation, takenAt: lease.takenAt }, lease);
  }

  /** @internal A lease was garbage collected without being released: give its session back (abandoned). */
  reclaimLostLease(session: Session, generation: number, takenAt: string | undefined): void {
    if (session.generation !== generation || !this.out.has(session) || session.state !== 'leased') return;
    this.releaseSession(session, undefined, 'garbage-collected', takenAt);
  }

  /**
   * Checks out a connection and begins a transaction on it. `commit()` or
   * `rollback()` gives the connection back; so does abandoning the handle
   * (`using`, or losing it), after which the pool rolls it back.
   */
  begin(options?: BeginOptions): Promise<Transaction> {
    try {
      checkBeginKeys(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.openTransaction(options, true, this.captureCaller(Pool.prototype.begin));
  }

  /**
   * `watched`: guarded by the FinalizationRegistry (handles the user holds; not the runner's own).
   * `caller`: the stack of the user's call (`pool.begin()`, `pool.transaction()`), given to the BEGIN.
   */
  private openTransaction(options: BeginOptions | undefined, watched: boolean, caller: StackHolder | undefined): Promise<Transaction> {
    try {
      beginStatements(options); // bad options fail before a connection is taken
    } catch (error) {
      return Promise.reject(error);
    }
    const stack = this.options.captureStacks ? captureStack('transaction began here') : undefined;
    return this.getConnection().then((lease) => Transaction.begin(lease, options, true, stack, watched, caller));
  }

  /**
   * Runs `fn` in a transaction on a connection of its own: COMMIT if it
   * resolves, ROLLBACK if it throws (the callback's error is what you get,
   * with `rollbackError` attached if the rollback failed too). Options:
   * isolation level, read only, `timeoutMs`, `signal`, `onTimeout`, `retries`.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    // One stack for the statements the runner sends itself (BEGIN, COMMIT, ROLLBACK): the line that called transaction().
    const caller = this.captureCaller(Pool.prototype.transaction);
    return runTransaction(() => this.openTransaction(options, false, caller), fn, options, undefined, caller);
  }

  /** Gives a connection back (same as `connection.release()`). */
  releaseConnection(connection: PoolConnection): void {
    if (connection instanceof PoolConnection) connection.release();
  }

  /** Runs one statement on any free connection (text protocol), as mysql2. */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    return this.runOnce('query', sql, values, Pool.prototype.query) as Promise<[T, FieldPacket[]]>;
  }

  /** Runs one prepared statement on any free connection (binary protocol), as mysql2. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    return this.runOnce('execute', sql, values, Pool.prototype.execute) as Promise<[T, FieldPacket[]]>;
  }

  /** Escapes a value for SQL, with the pool's settings, as mysql2. */
  escape(value: unknown): string {
    const config = this.options.connectionConfig;
    return mysql2.escape(value as never, config.stringifyObjects, config.timezone as never);
  }

  /** Escapes an identifier, as mysql2. */
  escapeId(value: string | string[]): string {
    return mysql2.escapeId(value as never, false);
  }

  /** Formats SQL with values, with the pool's settings, as mysql2. */
  format(sql: string, values?: unknown): string {
    const config = this.options.connectionConfig;
    return mysql2.format(sql, values as never, config.stringifyObjects, config.timezone as never);
  }

  /** Counts of connections by state, and counters since the pool was created. */
  stats(): PoolStats {
    let idle = 0;
    let leased = 0;
    let pendingRollback = 0;
    for (const session of this.sessions) {
      if (session.state === 'idle') idle++;
      else if (session.state === 'leased') leased++;
      else if (session.state === 'pendingRollback') pendingRollback++;
    }
    return {
      total: idle + leased + pendingRollback, // a dead session waiting to be dropped is not open
      idle,
      leased,
      waiting: this.resources.counts().waiting,
      pendingRollback,
      ...this.counters,
    };
  }

  /**
   * Closes the pool, gracefully. At once: new checkouts and waiting acquirers
   * reject with `ERR_POOL_CLOSED`, and leases still out are fenced (their next
   * call rejects). Statements already sent finish, for up to `endTimeoutMs`;
   * then they are killed on the server. A connection still inside a
   * transaction is rolled back (ROLLBACK answered: its locks are free when
   * `end()` resolves), then every connection quits. Never rejects.
   */
  end(): Promise<void> {
    if (this.ending) return this.ending;
    const { endTimeoutMs, rollbackTimeoutMs } = this.options;
    const ended = this.resources.end(endTimeoutMs + rollbackTimeoutMs + CLOSE_TIMEOUT_MS);
    for (const abort of [...this.connecting]) abort();
    const retiring = [...this.out].map((session) => this.retire(session));
    this.out.clear(); // retire() owns them now: a late release() or flush finds nothing to give back
    this.ending = Promise.all([ended, ...retiring]).then(() =>
      Promise.all([...this.sessions].map((session) => session.close(CLOSE_TIMEOUT_MS))).then(noValue),
    );
    return this.ending;
  }

  /**
   * end() for a session still out (a lease, a pool.query, a background
   * ROLLBACK): its statements finish (bounded), whatever it left open is
   * rolled back, then it is disposed of.
   */
  private retire(session: Session): Promise<void> {
    return session
      .drained(this.options.endTimeoutMs)
      .then((drained) => {
        if (drained) return session.rollbackBeforeClose().then(noValue);
        this.stopAndDestroy(session, 'pool closed with a statement still running');
        return undefined;
      })
      .then(() => this.resources.destroy(session));
  }

  /** What `JSON.stringify(pool)` shows: where it connects and its stats, never the password. */
  toJSON(): { connection: ReturnType<typeof describeConnection>; closed: boolean; stats: PoolStats } {
    return { connection: describeConnection(this.options.connection), closed: this.closed, stats: this.stats() };
  }

  /** What `console.log(pool)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('Pool', this.toJSON(), options);
  }

  /** `await using pool = createPool(...)`: ends the pool at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  // ---- LeaseOwner: the end of a lease ------------------------------------------------

  /** @internal */
  captureCaller(below: Function): StackHolder | undefined {
    if (!this.options.connectionConfig.trace) return undefined;
    const holder: StackHolder = {};
    Error.captureStackTrace(holder, below);
    return holder;
  }

  /** @internal */
  get captureStacks(): boolean {
    return this.options.captureStacks;
  }

  /** @internal */
  beginOn(lease: PoolConnection, options: BeginOptions | undefined, ownsLease: boolean, stack: string | undefined, caller?: StackHolder): Promise<Transaction> {
    try {
      checkBeginKeys(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return Transaction.begin(lease, options, ownsLease, stack, true, caller);
  }

  /** @internal */
  runOn<T>(lease: PoolConnection, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions | undefined, caller?: StackHolder): Promise<T> {
    const stack = this.options.captureStacks ? captureStack('transaction began here') : undefined;
    // Stopped while BEGIN is in flight: the ROLLBACK is queued at once, ahead of the caller's next statement.
    const stoppedEarly = (): void => lease.queueRollback('ROLLBACK');
    return runTransaction(() => Transaction.begin(lease, options, false, stack, false, caller), fn, options, stoppedEarly, caller);
  }

  /** @internal */
  reportRollbackError(session: Session, error: RollbackFailedError): void {
    this.onRollbackError(session, error);
  }

  /**
   * @internal Interrupts the statement running on `session` with `KILL QUERY`,
   * over a fresh connection (the pool may be exhausted). Resolves once the KILL
   * was answered. If it fails or takes too long, the session is destroyed
   * instead: the statement must not run on unattended.
   */
  killQuery(session: Session): Promise<void> {
    return this.killOnServer(session, 'QUERY').then((error) => {
      if (error !== undefined) session.destroy('KILL QUERY failed', error);
    });
  }

  /**
   * `KILL QUERY` or `KILL CONNECTION` of a session's thread, over a connection
   * of its own. Resolves (never rejects) once the server answered: with
   * undefined, or with why it could not be done within `rollbackTimeoutMs`.
   */
  private killOnServer(session: Session, what: 'QUERY' | 'CONNECTION'): Promise<unknown> {
    return new Promise<unknown>((resolve) => {
      const killer: RawConnection = mysql2.createConnection({ ...this.options.connection });
      const done = (error: unknown): void => {
        clearTimeout(timer);
        killer.destroy();
        resolve(error ?? undefined);
      };
      const timer = setTimeout(() => done(new Error(`KILL ${what} took too long`)), this.options.rollbackTimeoutMs);
      killer.on('error', () => undefined);
      killer.query(`KILL ${what} ${Number(session.threadId)}`, (error: unknown) => done(error));
    });
  }

  /** @internal A transaction on a lease that stays in use was abandoned (its ROLLBACK is queued). */
  reportAbandon(session: Session, why: AbandonReason, stack: string | undefined): void {
    this.counters.abandoned++;
    this.report('abandon', { threadId: session.threadId, reason: why, stack });
  }

  /** @internal A lease ended: decide the session's fate. Synchronous, never throws. */
  releaseSession(session: Session, lease?: PoolConnection, why: AbandonReason = 'released-in-transaction', stack?: string): void {
    if (lease?.watchedForLoss) lostLeases.unregister(lease);
    if (lease?.leakTimer) clearTimeout(lease.leakTimer);
    const outcome = session.release();
    if (channels.release.hasSubscribers) {
      publish('release', { pool: this, threadId: session.threadId, heldMs: performance.now() - session.checkedOutAt, outcome });
    }
    switch (outcome) {
      case 'clean':
        if (this.needsReset(session)) {
          // Held out of the pool until the reset is done, like a pending ROLLBACK: nobody inherits the state.
          void this.resetSession(session).then((ok) => this.giveBack(session, ok ? 'release' : 'destroy'));
        } else {
          this.giveBack(session, 'release');
        }
        return;
      case 'broken':
        this.giveBack(session, 'destroy');
        return;
      case 'pendingRollback':
        this.counters.abandoned++;
        if (this.options.cleanup === 'release') {
          // Hold the session out of the pool until its ROLLBACK is done: nobody can get it dirty.
          void session
            .flush()
            .then((ok) => (ok && this.needsReset(session) ? this.resetSession(session) : ok))
            .then((ok) => this.giveBack(session, ok ? 'release' : 'destroy'));
        } else {
          // Lazy mode: back to the pool flagged; the next checkout runs the ROLLBACK first.
          this.giveBack(session, 'release');
        }
        this.report('abandon', { threadId: session.threadId, reason: why, stack: stack ?? lease?.takenAt });
        return;
    }
  }

  /** @internal */
  destroySession(session: Session, reason: string, lease?: PoolConnection): void {
    if (lease?.watchedForLoss) lostLeases.unregister(lease);
    if (!this.out.has(session)) return;
    this.stopAndDestroy(session, reason);
    this.giveBack(session, 'destroy');
  }

  /** @internal */
  get gracefulEnd(): boolean {
    return this.options.gracefulEnd;
  }

  /** @internal */
  endLease(session: Session, lease: PoolConnection): Promise<void> {
    if (!this.options.gracefulEnd) {
      if (!this.warnedEndIsRelease) {
        this.warnedEndIsRelease = true;
        process.emitWarning('rollback-pool: conn.end() on a pooled connection releases it (as in mysql2, deprecated); use release(), or the gracefulEnd option to close it.', {
          code: 'ROLLBACK_POOL_END_IS_RELEASE',
        });
      }
      this.releaseSession(session, lease);
      return Promise.resolve();
    }
    if (lease.watchedForLoss) lostLeases.unregister(lease);
    if (lease.leakTimer) clearTimeout(lease.leakTimer);
    if (!this.out.delete(session)) return Promise.resolve();
    return this.retire(session);
  }

  private warnedEndIsRelease = false;

  /**
   * Destroys a session. A statement still in flight is stopped on the server
   * first (`KILL CONNECTION` over a side connection): closing our socket alone
   * would not stop it, and an autocommit write would still commit after its
   * caller was told the connection was lost. Until the KILL is answered (or
   * `rollbackTimeoutMs` passes) the session is fenced and keeps its slot.
   */
  private stopAndDestroy(session: Session, reason: string): void {
    if (session.inFlight === 0 || !session.connected) {
      session.destroy(reason);
      return;
    }
    session.destroyAfter(this.killOnServer(session, 'CONNECTION'), reason);
  }

  // ---- SessionHooks: what sessions report ---------------------------------------------

  /** @internal */
  onRollback(session: Session, durationMs: number): void {
    this.counters.rolledBack++;
    this.report('rollback', { threadId: session.threadId, durationMs });
  }

  /** @internal */
  onRollbackError(session: Session, error: RollbackFailedError): void {
    this.counters.rollbackFailures++;
    this.report('rollbackError', { threadId: session.threadId, error });
  }

  /** @internal */
  onGtid(_session: Session, gtid: string): void {
    this.gtids.note(gtid);
  }

  /** @internal */
  onBroken(session: Session, reason: string, error?: unknown): void {
    this.counters.destroyed++;
    this.report('destroy', { threadId: session.threadId, reason, error });
  }

  // ---- internals ----------------------------------------------------------------------

  /** `resetOnRelease: true`: always; `'whenDirty'`: when this lease left session state behind. */
  private needsReset(session: Session): boolean {
    const mode = this.options.resetOnRelease;
    return mode === true || (mode === 'whenDirty' && session.stateDirty !== undefined);
  }

  /**
   * What brings a reset session back to the state of a new connection of this
   * pool. COM_RESET_CONNECTION keeps the default database (selected again if
   * it may have changed) and sets sql_mode to the server's global value,
   * losing what the handshake added (mysql2 asks for IGNORE_SPACE); tracking
   * is off again. One SET for all three, then `initSql`.
   */
  private afterReset(session: Session): string[] {
    const statements: string[] = [];
    const database = this.options.connection.database;
    if (database !== undefined && (this.options.resetOnRelease === true || session.schemaChanged)) {
      statements.push(`USE ${mysql2.escapeId(database)}`);
    }
    const settings: string[] = [];
    if (session.connectSqlMode !== undefined) settings.push(`sql_mode = ${mysql2.escape(session.connectSqlMode)}`);
    if (session.tracksState) settings.push('session_track_state_change = ON');
    if (settings.length > 0) statements.push(`SET SESSION ${settings.join(', ')}`);
    statements.push(...connectSettings(this.options), ...this.options.initSql);
    return statements;
  }

  /** COM_RESET_CONNECTION, then the baseline; `reset` event. Resolves false when the session was destroyed. */
  private resetSession(session: Session): Promise<boolean> {
    const reason = session.stateDirty ?? 'resetOnRelease';
    const startedAt = performance.now();
    return session.reset(this.afterReset(session)).then((ok) => {
      if (ok) {
        this.counters.resets++;
        this.report('reset', { threadId: session.threadId, reason, durationMs: performance.now() - startedAt });
      }
      return ok;
    });
  }

  private notify<K extends keyof PoolEventMap>(event: K, ...args: PoolEventMap[K]): void {
    if (this.listenerCount(event) > 0) emitSafely(this, event, args);
  }

  /** mysql2's per-checkout events (`acquire`, `release`, `enqueue`): without a listener, not even the arguments array of `notify`. */
  private notifyConnection(event: 'acquire' | 'release', connection: RawConnection): void {
    if (this.listenerCount(event) > 0) emitSafely(this, event, [connection]);
  }

  /** Emits a pool event and publishes it on its diagnostics channel. */
  private report<K extends 'abandon' | 'rollback' | 'rollbackError' | 'destroy' | 'leak' | 'reset'>(kind: K, event: PoolEventMap[K][0]): void {
    this.notify(kind, ...([event] as PoolEventMap[K]));
    if (channels[kind].hasSubscribers) publish(kind, { ...event, pool: this } as DiagnosticsMessages[K]);
  }

  /** `below`: the public method called (`query` / `execute`): the captured stack starts at the caller's line, as in mysql2. */
  private runOnce(method: 'query' | 'execute', sql: string | QueryOptions, values: unknown, below: Function): Promise<QueryOutcome> {
    if (typeof values === 'function') {
      throw new Error('Callback function is not available with promise clients.');
    }
    if (this.scoped) {
      const scope = currentScope(this);
      if (scope) {
        return scope.sharedConnection().then((lease) => (method === 'query' ? lease.query(sql, values as QueryValues) : lease.execute(sql, values as ExecuteValues)));
      }
    }
    const caller = this.captureCaller(below);
    if (!this.resources.isClosed && !poolConnectChannel.hasSubscribers) {
      // Fast path: a clean idle session is checked out and used synchronously (no promise hop).
      const idle = this.resources.takeIdle();
      if (idle !== undefined) {
        const ready = this.checkout(idle);
        if (ready instanceof Session) {
          if (channels.acquire.hasSubscribers) publish('acquire', { pool: this, threadId: ready.threadId, waitMs: 0 });
          return ready.run(method, sql, values, caller, this.releaseAfterRun);
        }
        return ready.then((session) => session.run(method, sql, values, caller, this.releaseAfterRun));
      }
      if (!channels.acquire.hasSubscribers) {
        // It waits: one object in the queue and the caller's promise; the statement is sent the moment a session is handed over.
        return new Promise<QueryOutcome>((resolve, reject) =>
          this.resources.request(new StatementWaiter(this.releaseAfterRun, method, sql, values, caller, resolve, reject)),
        );
      }
    }
    return this.tracedAcquire().then((session) => session.run(method, sql, values, caller, this.releaseAfterRun));
  }

  /** pool.query / pool.execute: the session goes back as soon as its reply is in (destroyed after a read-only error). */
  private readonly releaseAfterRun = (session: Session, error?: { errno?: number }): void => {
    if (error !== undefined && READ_ONLY_ERRNOS.has(error.errno as number) && this.out.has(session)) {
      this.stopAndDestroy(session, `read-only error ${error.errno as number}: the server no longer takes writes`);
      this.giveBack(session, 'destroy');
      return;
    }
    this.releaseSession(session);
  };

  /** `acquireSession`, published on mysql2's `mysql2:pool:connect` TracingChannel when someone listens. */
  private tracedAcquire(): Promise<Session> {
    if (!poolConnectChannel.hasSubscribers) return this.acquireSession();
    return poolConnectChannel.tracePromise(() => this.acquireSession(), this.traceContext());
  }

  private traceContext(): PoolConnectContext {
    const { socketPath, host, port, database } = this.options.connection;
    if (socketPath) return { database: database ?? '', serverAddress: socketPath, serverPort: undefined };
    return { database: database ?? '', serverAddress: host ?? 'localhost', serverPort: Number(port ?? 3306) };
  }

  /** A session that is clean and checked out: pending ROLLBACKs are run first, failures replaced. */
  private acquireSession(): Promise<Session> {
    if (!channels.acquire.hasSubscribers) return this.resources.acquire();
    const requestedAt = performance.now();
    return this.resources.acquire().then((session) => {
      publish('acquire', { pool: this, threadId: session.threadId, waitMs: performance.now() - requestedAt });
      return session;
    });
  }

  /** Called by the resource pool on every session it hands out: a pending ROLLBACK runs first. */
  private checkout(session: Session): Session | Promise<Session> {
    this.out.add(session);
    if (session.state === 'pendingRollback') {
      // Lazy mode (or a pool-level flag left by a crash of the background flush): roll back first.
      return session.flush().then((flushed) => (flushed && this.needsReset(session) ? this.resetSession(session) : flushed)).then((ok) => {
        if (ok) return this.checkout(session);
        this.giveBack(session, 'destroy');
        return this.acquireSession(); // someone else's failed rollback is never our error
      });
    }
    if (session.state !== 'idle') {
      this.giveBack(session, 'destroy');
      return this.acquireSession();
    }
    session.checkout();
    this.notifyConnection('acquire', session.raw);
    return session;
  }

  /** Hands a session back to the resource pool, as clean/flagged or to be destroyed. */
  private giveBack(session: Session, how: 'release' | 'destroy'): void {
    if (!this.out.delete(session)) return;
    if (how === 'release' && session.usable && !this.resources.isClosed) {
      if (session.state !== 'idle') {
        this.resources.release(session); // flagged (lazy cleanup): no 'release' event, as before
      } else if (this.resources.hasWaiters) {
        // Handed straight to the oldest waiter (checked out in the same call): 'release' comes before its 'acquire'.
        this.notifyConnection('release', session.raw);
        this.resources.release(session);
      } else {
        this.resources.release(session);
        this.notifyConnection('release', session.raw);
      }
    } else {
      this.resources.destroy(session);
    }
  }

  private connect(): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      if (this.closed) {
        reject(new PoolClosedError());
        return;
      }
      const raw: RawConnection = mysql2.createConnection({ ...this.options.connection });
      // end() cuts connects still in progress (a black-holed server would hold them for connectTimeout).
      const abort = (): void => {
        this.connecting.delete(abort);
        raw.destroy();
        (raw as unknown as { stream?: { destroy(): void } }).stream?.destroy();
        reject(new PoolClosedError());
      };
      this.connecting.add(abort);
      // Until the handshake settles, errors arrive through the connect callback; keep the emitter quiet.
      const swallow = (): void => undefined;
      raw.on('error', swallow);
      raw.connect((error) => {
        raw.removeListener('error', swallow);
        if (!this.connecting.delete(abort)) return; // aborted by end()
        if (error) {
          raw.destroy();
          reject(error);
          return;
        }
        const session = new Session(raw, this, this.options.rollbackTimeoutMs);
        session.tracksState = this.options.resetOnRelease === 'whenDirty';
        session.tracksGtid = this.options.trackGtid;
        if (this.options.refuseWrites) session.guard = refuseUnlessReadOnly;
        const failed = (err: unknown): void => {
          raw.destroy();
          reject(err ?? new PoolClosedError());
        };
        // The baseline (tracking on, trackGtid / refuseWrites settings, initSql) first: it is never counted as dirt.
        runAll(raw, this.baseline, (baselineError) => {
          if (baselineError) return failed(baselineError);
          // Read once per connection: it decides whether a lock wait timeout ends the transaction.
          raw.query('SELECT @@innodb_rollback_on_timeout AS r, @@session.sql_mode AS m', (err: unknown, rows: unknown) => {
            // Informational: a server that refuses it (a proxy, a node in read-only failover answering
            // every statement with 1290) or answers without rows gets the defaults; only a lost link fails the connect.
            if (this.closed || (err && (err as { fatal?: boolean }).fatal)) return failed(err);
            const settings = !err && Array.isArray(rows) ? (rows[0] as { r?: unknown; m?: unknown } | undefined) : undefined;
            session.rollbackOnTimeout = Number(settings?.r) === 1;
            if (typeof settings?.m === 'string') session.connectSqlMode = settings.m;
            const accept = (): void => {
              if (this.closed) return failed(undefined);
              this.sessions.add(session);
              this.announce(session);
              resolve(session);
            };
            if (this.connectCheck === undefined) return accept();
            this.connectCheck(raw).then(accept, failed);
          });
        });
      });
    });
  }

  /** mysql2's `connection` event. With 'whenDirty', a listener that changes session state is told to use initSql instead. */
  private announce(session: Session): void {
    if (!session.tracksState || this.warnedListenerState || this.listenerCount('connection') === 0) {
      this.notify('connection', session.raw);
      return;
    }
    watchStateChanges(session.raw, () => this.notify('connection', session.raw), () => {
      if (this.warnedListenerState) return;
      this.warnedListenerState = true;
      process.emitWarning(
        "rollback-pool: a 'connection' listener changed session state while resetOnRelease is 'whenDirty': that change is lost at the connection's first reset. Put it in the initSql option instead.",
        { code: 'ROLLBACK_POOL_CONNECTION_STATE' },
      );
    });
  }

  private warnedListenerState = false;

  private disposeSession(session: Session, evicted: boolean): Promise<void> {
    this.sessions.delete(session);
    this.out.delete(session);
    if (evicted) return session.close(CLOSE_TIMEOUT_MS, 'idle timeout', this.options.gracefulEnd);
    // A lazily flagged session goes through its ROLLBACK first: locks are free once it is gone.
    const rolledBack = session.state === 'pendingRollback' ? session.flush() : Promise.resolve(true);
    return rolledBack.then(() => session.close(CLOSE_TIMEOUT_MS));
  }

  private watchForLeak(lease: PoolConnection): void {
    const takenAt = performance.now();
    const limit = this.options.leakDetectionMs;
    const check = (): void => {
      if (lease.isReleased || this.closed) return; // end() took every connection back: nothing is held any more
      const heldMs = performance.now() - takenAt;
      if (heldMs < limit) {
        // Node's timers run off a loop clock cached at the start of the iteration: up to a millisecond early.
        lease.leakTimer = setTimeout(check, Math.ceil(limit - heldMs));
        lease.leakTimer.unref();
        return;
      }
      this.report('leak', { threadId: lease.threadId, heldMs, stack: lease.takenAt });
    };
    lease.leakTimer = setTimeout(check, limit);
    lease.leakTimer.unref();
  }
}

/** A `getConnection()` waiting for a session: resolves with its lease the moment one is handed over. */
class LeaseWaiter implements Waiter<Session> {
  deadline = 0;
  next: Waiter<Session> | undefined = undefined;
  constructor(
    private readonly pool: Pool,
    private readonly takenAt: string | undefined,
    private readonly resolve: (lease: PoolConnection) => void,
    readonly failed: (error: unknown) => void,
  ) {}

  granted(session: Session): void {
    this.resolve(this.pool.lease(session, this.takenAt));
  }
}

/** A `pool.query` / `pool.execute` waiting for a session: its statement is sent the moment one is handed over. */
class StatementWaiter implements Waiter<Session> {
  deadline = 0;
  next: Waiter<Session> | undefined = undefined;
  constructor(
    private readonly settled: (session: Session, error?: { errno?: number }) => void,
    private readonly method: 'query' | 'execute',
    private readonly sql: Statement,
    private readonly values: unknown,
    private readonly caller: StackHolder | undefined,
    private readonly resolve: (outcome: QueryOutcome) => void,
    readonly failed: (error: unknown) => void,
  ) {}

  granted(session: Session): void {
    session.runInto(this.method, this.sql, this.values, this.caller, this.settled, this.resolve, this.failed);
  }
}

/**
 * Emits an event without letting a throwing listener interrupt the pool's own
 * bookkeeping half way (a lost session, a transaction left open): the
 * listener's error is rethrown on the next tick, as an uncaught exception,
 * like any error thrown from an event listener in asynchronous code.
 */
function emitSafely<K extends keyof PoolEventMap>(pool: EventEmitter<PoolEventMap>, event: K, args: PoolEventMap[K]): void {
  try {
    (pool.emit as (event: K, ...args: PoolEventMap[K]) => boolean)(event, ...args);
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}

/**
 * The session settings of `trackGtid` (MariaDB reports `last_gtid` in every
 * OK packet of a commit; the variables tracked by default, which mysql2
 * reads, are kept) and `refuseWrites` (the server's own refusal of writes,
 * for privileged users too, behind the statement check).
 */
function connectSettings(options: ResolvedOptions): string[] {
  const settings: string[] = [];
  if (options.trackGtid) {
    settings.push("SET SESSION session_track_system_variables = CONCAT_WS(',', NULLIF(@@session.session_track_system_variables, ''), 'last_gtid')");
  }
  if (options.refuseWrites) settings.push('SET SESSION TRANSACTION READ ONLY');
  return settings;
}

function captureStack(label: string): string | undefined {
  return new Error(label).stack;
}

function noValue(): void {
  return undefined;
}
