/**
 * Session: one physical mysql2 connection and everything the pool knows about
 * it: its lifecycle state, whether it is inside a transaction, how many
 * statements are queued on it, and the one place that runs a pending ROLLBACK.
 *
 * State machine (the only transitions there are):
 *
 *   idle ──checkout()──▶ leased ──release(), clean──▶ idle
 *                          │
 *                          └─release(), in a transaction──▶ pendingRollback ──flush() ok──▶ idle
 *
 *   any state ──fatal error / failed or timed-out flush / destroy()──▶ broken ──▶ destroyed
 *
 * "In a transaction" is known from three sources, any one of which is enough:
 * our own API (BEGIN marks it before it is written), the server status flags
 * of every OK packet (IN_TRANS, AUTOCOMMIT), and uncertainty (a statement still
 * in flight when the lease is given up).
 */
import type { Connection as RawConnection, FieldPacket, Query as QueryCommand, QueryError, QueryOptions, QueryResult } from 'mysql2';
import { ConnectionLostError, RollbackFailedError } from '../errors';
import type { ReleaseOutcome } from './diagnostics';
import { SERVER_SESSION_STATE_CHANGED, unflaggedState, type DirtyReason } from './session-state';
import { gtidOfResult } from './gtid';

export type SessionState = 'idle' | 'leased' | 'pendingRollback' | 'broken' | 'destroyed';

/** What `release()` found, which tells the pool what to do with the session next. */
export type ReleaseVerdict = ReleaseOutcome;

/** A statement in mysql2's accepted shapes: SQL text or a QueryOptions object. */
export type Statement = string | QueryOptions;
/** What mysql2/promise resolves a query or execute with. */
export type QueryOutcome = [QueryResult, FieldPacket[]];

/** The pool's side of a session: where the session reports what happened to it. */
export interface SessionHooks {
  onRollback(session: Session, durationMs: number): void;
  onRollbackError(session: Session, error: RollbackFailedError): void;
  onBroken(session: Session, reason: string, error?: unknown): void;
  /** An OK packet carried the GTID of a commit (only when `tracksGtid`). */
  onGtid?(session: Session, gtid: string): void;
}

// Server status flags of the OK packet (mysql2 lib/constants/server_status.js).
const SERVER_STATUS_IN_TRANS = 0x0001;
/** XAER_NOTA: unknown XID. */
const ER_XAER_NOTA = 1397;
/** `SET TRANSACTION ...` for the next transaction only (not `SET SESSION TRANSACTION`, a lasting session setting). */
const SET_TRANSACTION = /^\s*set\s+transaction\b/i;
const SERVER_STATUS_AUTOCOMMIT = 0x0002;
/** The server rolled the whole transaction back. */
export const ER_LOCK_DEADLOCK = 1213;
/** Only the statement is rolled back, unless innodb_rollback_on_timeout is ON. */
export const ER_LOCK_WAIT_TIMEOUT = 1205;
/**
 * ER_UNKNOWN_COM_ERROR, which MariaDB Galera answers ("WSREP has not yet
 * prepared node for application use") to every table statement, BEGIN and
 * ROLLBACK included, on a node that is not synced with a primary component:
 * refused before it ran.
 */
export const ER_NODE_NOT_READY = 1047;

export type Callback = (err: QueryError | null, rows?: unknown, fields?: unknown) => void;

/** The two mysql2 internals `destroy()` needs (lib/base/connection.js). */
interface MysqlInternals {
  _handleFatalError?(error: Error): void;
  stream?: { destroy(): void };
}

/** Where a statement was called from: its stack replaces mysql2's parser frames on errors (mysql2's `trace`). */
export interface StackHolder {
  stack?: string;
}

let nextSessionId = 1;

export class Session {
  /** Stable id for events and stats (thread ids can repeat across servers). */
  readonly id = nextSessionId++;
  state: SessionState = 'idle';
  /** Bumped on every checkout, so a stale lease can tell it is stale. */
  generation = 0;
  /** The server (or our API) says a transaction is open. */
  inTransaction = false;
  /** `SET autocommit=0` is in effect: every statement opens a transaction. */
  autocommitOff = false;
  /** `innodb_rollback_on_timeout`: a lock wait timeout (1205) then rolls back the whole transaction. */
  rollbackOnTimeout = false;
  /** Statements written to the connection whose reply has not arrived yet. */
  inFlight = 0;
  /**
   * A `SET TRANSACTION ...` (no SESSION/GLOBAL) ran and no transaction has
   * started since: its characteristics (isolation level, read only) wait for
   * the next transaction, whoever starts it. No status flag shows it, and
   * neither COMMIT, ROLLBACK nor autocommit statements clear it; only a
   * transaction start does. Known from the statement's text.
   */
  characteristicsPending = false;
  /**
   * `resetOnRelease: 'whenDirty'`: the server reports session state changes
   * (`session_track_state_change` is on) and the statement text is checked
   * for the kinds it does not report (`src/pool/session-state.ts`).
   */
  tracksState = false;
  /** What left session state behind for the next user (a reset is due before the next lease), if anything. */
  stateDirty: DirtyReason | undefined;
  /** `@@session.sql_mode` when the connection was made (after `initSql`): what a reset must restore. */
  connectSqlMode: string | undefined;
  /** The default database was changed (`USE`): a reset keeps it, so the reset's baseline selects it again. */
  schemaChanged = false;
  /** When the current lease began (`performance.now()`), for the release's `heldMs`. */
  checkedOutAt = 0;
  /**
   * The XID of the XA branch open on this connection (two-phase request
   * scopes), if any. A plain ROLLBACK is refused inside an XA transaction,
   * so the pending rollback ends and rolls back this branch instead.
   */
  xaBranch: string | undefined;
  /**
   * @internal Told once, when the connection becomes unusable (socket error,
   * KILL, destroy): the lease's callback face, while it has `error` / `end`
   * listeners or a streamed statement running, so that it can emit them.
   */
  onLost: ((cause: unknown) => void) | undefined;
  /**
   * The server answered 1047 during this lease: the node refuses everything,
   * ROLLBACK included. If the lease leaves anything open, its ROLLBACK cannot
   * run there, so the connection is closed at release (the server rolls back
   * when it goes), quietly: nobody abandoned anything.
   */
  notReady: QueryError | undefined;
  /** Why the connection became unusable: the cause of the `ERR_CONNECTION_LOST` of later statements. */
  private lostBecause: unknown;
  private flushing: Promise<boolean> | undefined;
  private gate: Promise<void> | undefined;
  /**
   * Set by `destroyAfter`: the statement in flight is being stopped on the
   * server (KILL CONNECTION) before the socket is torn down. Its caller's
   * error then says it may have run (`neverSent` false).
   */
  private stopping: Promise<void> | undefined;
  /** Resolvers of `drained()`, called when the last statement in flight settles. */
  private drainWaiters: Array<() => void> | undefined;
  /** The connection asked for `last_gtid` in its OK packets (pool option `trackGtid`): report each one. */
  tracksGtid = false;
  /**
   * Checked before any statement is sent (pool option `refuseWrites`): an
   * error refuses the statement, and nothing reaches the server.
   */
  guard: ((sql: string) => Error | undefined) | undefined;

  constructor(
    readonly raw: RawConnection,
    private readonly hooks: SessionHooks,
    private readonly rollbackTimeoutMs: number,
  ) {
    // An idle connection can die too (server restart, KILL, network drop).
    raw.on('error', (error: QueryError) => this.markBroken('connection error', error));
    raw.on('end', () => this.markBroken('connection closed'));
  }

  get threadId(): number {
    return this.raw.threadId;
  }

  /** The socket is (as far as we know) still up: not broken, not destroyed. */
  get connected(): boolean {
    return this.state !== 'broken' && this.state !== 'destroyed';
  }

  /** True when the session may be handed to a new lease after a flush (if one is pending). */
  get usable(): boolean {
    return this.state === 'idle' || this.state === 'pendingRollback';
  }

  /** idle -> leased. The pool calls this only on an idle (flushed) session. */
  checkout(): void {
    this.notReady = undefined;
    this.state = 'leased';
    this.generation++;
    this.checkedOutAt = performance.now();
  }

  /** leased -> idle | pendingRollback | broken. Synchronous, never throws. */
  release(): ReleaseVerdict {
    if (this.state === 'broken' || this.state === 'destroyed') return 'broken';
    if (this.inTransaction || this.autocommitOff || this.inFlight > 0 || this.characteristicsPending) {
      if (this.notReady !== undefined) {
        this.markBroken(`node not ready (${this.notReady.errno} ${this.notReady.message}): it refuses ROLLBACK too, so the connection is closed and the server rolls back`);
        return 'broken';
      }
      this.state = 'pendingRollback';
      return 'pendingRollback';
    }
    this.state = 'idle';
    return 'clean';
  }

  /** Runs one statement with mysql2's `query` or `execute`; tracks the server status it reports. */
  run(
    method: 'query' | 'execute',
    sql: Statement,
    values: unknown,
    caller?: StackHolder,
    settled?: (session: Session, error?: QueryError) => void,
  ): Promise<QueryOutcome> {
    if (this.guard !== undefined) {
      const refused = this.guard(typeof sql === 'string' ? sql : sql.sql);
      if (refused !== undefined) {
        settled?.(this);
        return Promise.reject(refused);
      }
    }
    if (this.gate) {
      // Held back (a KILL QUERY is on its way): counted as in flight, sent in order once the gate opens.
      this.inFlight++;
      return this.gate.then(() => {
        this.settleOne(); // run() counts it again at once, unless the connection was lost meanwhile
        return this.run(method, sql, values, caller, settled);
      });
    }
    const lost = this.lostError();
    if (lost) {
      settled?.(this);
      return Promise.reject(lost);
    }
    return new Promise<QueryOutcome>((resolve, reject) => this.start(method, sql, values, caller, settled, resolve, reject));
  }

  /**
   * `run()` for a statement whose caller already holds a promise (a
   * `pool.execute` that waited for this session): the outcome goes to
   * `resolve` / `reject`, with no promise of its own. Never throws.
   */
  runInto(
    method: 'query' | 'execute',
    sql: Statement,
    values: unknown,
    caller: StackHolder | undefined,
    settled: (session: Session, error?: QueryError) => void,
    resolve: (outcome: QueryOutcome) => void,
    reject: (error: unknown) => void,
  ): void {
    if (this.gate !== undefined || !this.connected) {
      this.run(method, sql, values, caller, settled).then(resolve, reject);
      return;
    }
    try {
      this.start(method, sql, values, caller, settled, resolve, reject);
    } catch (error) {
      reject(error);
    }
  }

  /** Sends one statement; its reply is observed, then `settled`, then `resolve` / `reject`. Throws if mysql2 refuses it at once. */
  private start(
    method: 'query' | 'execute',
    sql: Statement,
    values: unknown,
    caller: StackHolder | undefined,
    settled: ((session: Session, error?: QueryError) => void) | undefined,
    resolve: (outcome: QueryOutcome) => void,
    reject: (error: unknown) => void,
  ): void {
    this.inFlight++;
    const done: Callback = (err, rows, fields) => {
      this.settleOne();
      if (err && this.stopping) err = lostWhileStopping(err);
      if (err) {
        this.observeError(err);
        if (caller) applyCallerStack(err, caller);
      } else {
        this.observe(rows, fields);
      }
      // Before the caller resumes (pool.query gives the session back here, with no extra promise).
      settled?.(this, err ?? undefined);
      if (err) reject(err);
      else resolve([rows, fields] as QueryOutcome);
    };
    this.noteStatement(typeof sql === 'string' ? sql : sql.sql);
    try {
      this.send(method, sql, values, done);
    } catch (error) {
      // mysql2 refused it before writing anything (e.g. an undefined bind value): nothing is in flight.
      this.settleOne();
      settled?.(this);
      throw error;
    }
  }

  /**
   * Sends a mysql2 `Query` command built by the callback API (`lease.connection`,
   * `pool.pool`), in callback or stream mode, tracked like `run`: counted in
   * flight until mysql2 says it ended, its OK packets' status flags observed.
   * In callback mode the command's callback is already wrapped by the caller
   * (see `trackCallback`); OK packets are read from their `result` events either way.
   */
  sendQuery(command: QueryCommand, streaming: boolean): void {
    const refused = this.guard?.(command.sql);
    if (refused !== undefined) {
      failUnsent(command, refused);
      return;
    }
    this.noteStatement(command.sql);
    this.inFlight++;
    command.once('end', () => this.settleOne());
    this.observeResults(command, streaming);
    if (this.gate) {
      void this.gate.then(() => {
        this.raw.query(command); // not returned: a mysql2 Query is a thenable that throws
      });
      return;
    }
    this.raw.query(command);
  }

  /**
   * Like `sendQuery`, for a statement whose mysql2 commands `build` makes and
   * queues itself (`raw.execute(...)` makes a Prepare and an Execute command):
   * tracks and returns the command it returns. While the session is held back
   * (`holdUntil`), the commands are made now and queued once the gate opens.
   * Throws what `build` throws (mysql2 refuses bad bind values before queueing
   * anything), with nothing counted.
   */
  sendBuilt(sql: string, streaming: boolean, build: () => QueryCommand): QueryCommand {
    const command = this.gate ? buildHeldBack(this.raw, this.gate, build) : build();
    this.noteStatement(sql);
    this.inFlight++;
    command.once('end', () => this.settleOne());
    this.observeResults(command, streaming);
    return command;
  }

  /**
   * mysql2 emits every OK packet as a `result` event, in callback mode too,
   * before `end` (the callback comes a tick later): read there, the status is
   * known to whoever releases the connection on `end` (the pool face does).
   */
  private observeResults(command: QueryCommand, streaming: boolean): void {
    command.on('result', (row: unknown) => {
      if (isResultSetHeader(row)) this.observe(row, undefined);
    });
    if (streaming) command.prependListener('error', (err: QueryError) => this.observeError(err));
  }

  /**
   * `ERR_CONNECTION_LOST` once the socket is gone (KILL, restart, network):
   * nothing can be sent any more, and mysql2 would answer a new statement with
   * a plain "Can't add new command when connection is in closed state".
   */
  lostError(): Error | undefined {
    return this.state === 'broken' || this.state === 'destroyed' ? new ConnectionLostError(this.lostBecause, true) : undefined;
  }

  /**
   * What the text of a statement about to be sent says that no status flag
   * will: a pending `SET TRANSACTION`, and (while tracking) session state.
   */
  private noteStatement(sql: string): void {
    if (SET_TRANSACTION.test(sql)) this.characteristicsPending = true;
    if (this.tracksState && this.stateDirty === undefined) this.stateDirty = unflaggedState(sql);
  }

  /** Wraps a callback-mode command's callback: the result's status is observed before the caller sees it. */
  trackCallback(callback: Callback): Callback {
    return (err, rows, fields) => {
      if (err) this.observeError(err);
      else this.observe(rows, fields);
      callback(err, rows, fields);
    };
  }

  /** COM_PING, tracked like a statement. */
  ping(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.inFlight++;
      this.raw.ping((err) => {
        this.settleOne();
        if (err) {
          if (err.fatal) this.markBroken('fatal error', err);
          reject(err);
        } else resolve();
      });
    });
  }

  /** One statement in flight got its reply (or failed). Wakes `drained()` waiters when none is left. */
  private settleOne(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drainWaiters !== undefined) queueMicrotask(this.wakeDrainWaiters);
  }

  /** Checked a microtask later: a gated statement is counted out and in again in one go. */
  private readonly wakeDrainWaiters = (): void => {
    const waiters = this.drainWaiters;
    if (this.inFlight > 0 || waiters === undefined) return;
    this.drainWaiters = undefined;
    for (const wake of waiters) wake();
  };

  /**
   * Resolves true once no statement is in flight (the replies of everything
   * already sent are in), or false after `timeoutMs`. For a graceful `end()`.
   */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      (this.drainWaiters ??= []).push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Something was left on the connection that the next user must not inherit. */
  get dirty(): boolean {
    return this.inTransaction || this.autocommitOff || this.characteristicsPending || this.xaBranch !== undefined;
  }

  /**
   * For `end()`: a session still out, with nothing in flight, rolls back
   * whatever it had open before it quits, so that its locks are free by the
   * time `end()` resolves (a COM_QUIT alone leaves the server's rollback
   * racing the caller). Resolves true when it is clean.
   */
  rollbackBeforeClose(): Promise<boolean> {
    if (this.state === 'leased' && this.dirty) this.state = 'pendingRollback';
    return this.flush();
  }

  /**
   * Destroys the session once `stop` (the pool's KILL CONNECTION of the
   * statement in flight) settles; until then it is fenced (broken: nothing
   * new is sent) and its socket is left open, so the statement is stopped on
   * the server rather than left to run on, unattended, after we hung up. The
   * callers of the statements in flight get `ERR_CONNECTION_LOST` with
   * `neverSent` false: they may have run.
   */
  destroyAfter(stop: Promise<unknown>, reason: string): void {
    if (this.state === 'destroyed' || this.stopping) return;
    this.markBroken(reason);
    this.stopping = stop.then(noop, noop).then(() => this.destroy(reason));
  }

  /**
   * Holds back every later statement (and the pending ROLLBACK) until `work`
   * settles. Used while a `KILL QUERY` travels over another connection: it
   * must not land on a statement sent after it was decided.
   */
  holdUntil(work: Promise<unknown>): void {
    const gate: Promise<void> = work.then(noop, noop).then(() => {
      if (this.gate === gate) this.gate = undefined;
    });
    this.gate = gate;
  }

  /**
   * Marks the session as in a transaction *before* BEGIN is written, so a BEGIN
   * that fails, times out or is abandoned half way still gets rolled back.
   */
  armTransactionGuard(): void {
    this.inTransaction = true;
  }

  /**
   * Runs the pending ROLLBACK (and `SET autocommit=1` if needed). Idempotent:
   * every caller awaits the same work. Resolves true when the session is clean
   * and idle, false when it was destroyed; never rejects.
   */
  flush(): Promise<boolean> {
    if (this.flushing) return this.flushing;
    if (this.state !== 'pendingRollback') return Promise.resolve(this.usable);
    this.flushing = this.runFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async runFlush(): Promise<boolean> {
    const startedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RollbackFailedError(`did not finish within ${this.rollbackTimeoutMs} ms (rollbackTimeoutMs)`)),
        this.rollbackTimeoutMs,
      );
    });
    try {
      const restoreAutocommit = this.autocommitOff;
      if (this.xaBranch !== undefined) await Promise.race([this.rollbackXa(), timeout]);
      // Pending characteristics are consumed by a transaction start, then undone with it.
      if (this.characteristicsPending) await Promise.race([this.run('query', 'START TRANSACTION', undefined), timeout]);
      await Promise.race([this.run('query', 'ROLLBACK', undefined), timeout]);
      if (restoreAutocommit) await Promise.race([this.run('query', 'SET autocommit=1', undefined), timeout]);
      if (this.inTransaction || this.autocommitOff || this.characteristicsPending) {
        throw new RollbackFailedError('left the session inside a transaction');
      }
      if (this.state !== 'pendingRollback') return false; // died meanwhile
      this.state = 'idle';
      this.hooks.onRollback(this, performance.now() - startedAt);
      return true;
    } catch (error) {
      const failure =
        error instanceof RollbackFailedError ? error : new RollbackFailedError('failed', error);
      this.destroy('rollback failed', failure);
      this.hooks.onRollbackError(this, failure);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Rolls back the XA branch open on this connection, whatever its state:
   * `XA END` (refused if the branch is already ended or prepared: fine) then
   * `XA ROLLBACK`, which also undoes a prepared branch. Unknown XID (1397):
   * the branch never started or is already finished. Rejects if the
   * connection cannot do it.
   */
  async rollbackXa(): Promise<void> {
    const xid = this.xaBranch;
    if (xid === undefined) return;
    await this.run('query', `XA END ${xid}`, undefined).catch(() => undefined);
    try {
      await this.run('query', `XA ROLLBACK ${xid}`, undefined);
    } catch (error) {
      if ((error as { errno?: number }).errno !== ER_XAER_NOTA) throw error;
    }
    this.xaBranch = undefined;
  }

  /**
   * COM_RESET_CONNECTION (mysql2's `resetOnRelease`): user variables, session
   * settings, temporary tables, named and table locks, prepared statements
   * (mysql2 clears its statement cache for this connection on the reply) and
   * any transaction are gone. Then `baseline` runs (tracking re-armed,
   * `initSql`), unobserved: the baseline is never dirt. Resolves true when the
   * session is clean; a failure destroys it.
   */
  reset(baseline: readonly string[]): Promise<boolean> {
    return new Promise((resolve) => {
      const fail = (err: unknown): void => {
        this.destroy('reset failed', err);
        resolve(false);
      };
      this.raw.reset((err) => {
        if (err) return fail(err);
        this.inTransaction = false;
        this.autocommitOff = false;
        this.characteristicsPending = false;
        this.stateDirty = undefined;
        this.schemaChanged = false;
        if (baseline.length === 0) return resolve(this.usable);
        runAll(this.raw, baseline, (error) => (error ? fail(error) : resolve(this.usable)));
      });
    });
  }

  /**
   * Closes the socket at once; the server rolls back whatever was open.
   * mysql2's own `destroy()` only half-closes the socket and leaves queued
   * commands unanswered (a running `SLEEP(30)` would still resolve later), so
   * the queued commands are failed here with `ERR_CONNECTION_LOST` and the
   * socket is torn down.
   */
  destroy(reason: string, error?: unknown): void {
    if (this.state === 'destroyed') return;
    this.markBroken(reason, error);
    this.state = 'destroyed';
    const internals = this.raw as unknown as MysqlInternals;
    if (this.inFlight > 0) internals._handleFatalError?.(new ConnectionLostError(error ?? this.lostBecause, false));
    this.raw.destroy();
    internals.stream?.destroy();
  }

  /**
   * Ends the connection politely (COM_QUIT), destroying it if that takes
   * longer than `timeoutMs`. `polite` false: destroyed at once, without
   * COM_QUIT (mysql2's idle eviction unless `gracefulEnd`).
   */
  close(timeoutMs: number, reason = 'pool closed', polite = true): Promise<void> {
    if (this.stopping) return this.stopping; // its statement is being killed; destroyed right after
    if (!polite || this.state === 'broken' || this.state === 'destroyed' || this.inFlight > 0) {
      this.destroy(reason); // a dead socket cannot say goodbye; a busy one would make us wait
      return Promise.resolve();
    }
    this.markBroken(reason);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.destroy('close timed out');
        resolve();
      }, timeoutMs);
      // mysql2 calls end()'s callback before it writes COM_QUIT: wait for the server to hang up instead.
      const stream = (this.raw as unknown as MysqlInternals).stream as { once(event: 'close', fn: () => void): void } | undefined;
      stream?.once('close', () => {
        clearTimeout(timer);
        this.destroy(reason);
        resolve();
      });
      this.raw.end();
    });
  }

  /**
   * An error packet carries no status flags, and the next statement's status
   * comes too late (it already ran in autocommit mode). So the errors that end
   * a transaction on the server are known by their errno.
   */
  private observeError(err: QueryError): void {
    if (err.fatal) {
      this.markBroken('fatal error', err);
      return;
    }
    if (err.errno === ER_LOCK_DEADLOCK || (err.errno === ER_LOCK_WAIT_TIMEOUT && this.rollbackOnTimeout)) {
      this.inTransaction = false;
    }
    if (err.errno === ER_NODE_NOT_READY) this.notReady = err;
  }

  private markBroken(reason: string, error?: unknown): void {
    if (this.state === 'broken' || this.state === 'destroyed') return;
    this.state = 'broken';
    this.lostBecause = error ?? new Error(reason);
    this.hooks.onBroken(this, reason, error);
    this.onLost?.(this.lostBecause);
  }

  private send(method: 'query' | 'execute', sql: Statement, values: unknown, done: Callback): void {
    // Same argument handling as mysql2/promise: `undefined` values are not passed on.
    const raw = this.raw as unknown as Record<typeof method, (...args: unknown[]) => unknown>;
    if (values !== undefined) raw[method].call(this.raw, sql, values, done);
    else raw[method].call(this.raw, sql, done);
  }

  /**
   * Reads the status flags of the last OK packet of a result. A result set
   * (rows) carries its status in an EOF packet that mysql2 does not expose; a
   * SELECT cannot open or close a transaction, so the previous state stands.
   */
  private observe(rows: unknown, fields: unknown): void {
    if (this.tracksGtid) this.reportGtids(rows, fields);
    let status: number | undefined;
    if (fields === undefined) {
      status = (rows as { serverStatus?: number }).serverStatus;
    } else if (Array.isArray(fields) && Array.isArray(rows) && isMultiResult(fields)) {
      // Several statements (multipleStatements, CALL): the last OK packet tells the final state.
      for (let i = rows.length - 1; i >= 0; i--) {
        if (fields[i] === undefined) {
          status = (rows[i] as { serverStatus?: number }).serverStatus;
          break;
        }
      }
    }
    if (status === undefined) return;
    if (this.tracksState && changedState(rows, fields, status)) {
      this.stateDirty ??= 'session state changed';
      if (!this.schemaChanged) this.schemaChanged = changedSchema(rows, fields);
    }
    this.inTransaction = (status & SERVER_STATUS_IN_TRANS) !== 0;
    if (this.inTransaction) this.characteristicsPending = false; // consumed by the transaction that started
    this.autocommitOff = (status & SERVER_STATUS_AUTOCOMMIT) === 0;
  }

  /** The GTIDs of the commits a result reports (every OK packet of a multi-statement result). */
  private reportGtids(rows: unknown, fields: unknown): void {
    if (fields === undefined) {
      const gtid = gtidOfResult(rows);
      if (gtid !== undefined) this.hooks.onGtid?.(this, gtid);
    } else if (Array.isArray(fields) && Array.isArray(rows) && isMultiResult(fields)) {
      for (let i = 0; i < rows.length; i++) {
        const gtid = fields[i] === undefined ? gtidOfResult(rows[i]) : undefined;
        if (gtid !== undefined) this.hooks.onGtid?.(this, gtid);
      }
    }
  }
}

/** Fails a callback-API command that was refused before it was sent, the way mysql2 reports errors. */
function failUnsent(command: QueryCommand, error: Error): void {
  const internals = command as unknown as { onResult?: (err: Error) => void };
  process.nextTick(() => {
    if (internals.onResult) internals.onResult(error);
    else command.emit('error', error);
    command.emit('end');
  });
}

function noop(): void {
  return undefined;
}

/** Did any OK packet of this result report a session state change? (For one packet, its own status.) */
function changedState(rows: unknown, fields: unknown, lastStatus: number): boolean {
  if (fields === undefined || !Array.isArray(rows) || !Array.isArray(fields)) return (lastStatus & SERVER_SESSION_STATE_CHANGED) !== 0;
  for (let i = 0; i < rows.length; i++) {
    if (fields[i] === undefined && ((rows[i] as { serverStatus?: number }).serverStatus ?? 0) & SERVER_SESSION_STATE_CHANGED) return true;
  }
  return false;
}

/** Did an OK packet of this result report a new default database (session_track_schema, on by default)? */
function changedSchema(rows: unknown, fields: unknown): boolean {
  const packets = fields === undefined || !Array.isArray(rows) ? [rows] : rows;
  return packets.some((packet) => typeof (packet as { stateChanges?: { schema?: unknown } } | null)?.stateChanges?.schema === 'string');
}

/** Runs statements one after another on a raw connection (connect-time and post-reset baseline). */
export function runAll(raw: RawConnection, statements: readonly string[], done: (error: unknown) => void): void {
  let next = 0;
  const step = (error: unknown): void => {
    if (error || next === statements.length) {
      done(error ?? undefined);
      return;
    }
    raw.query(statements[next++] as string, step);
  };
  step(undefined);
}

/**
 * The error of a statement that was in flight when its connection was
 * destroyed and killed on the server: the statement may have run (a write
 * has an unknown outcome, like a COMMIT whose reply never came).
 */
function lostWhileStopping(err: QueryError): QueryError {
  if (err instanceof ConnectionLostError) return err;
  return new ConnectionLostError(err, false) as unknown as QueryError;
}

/**
 * Runs `build` with mysql2's `addCommand` diverted, so that the commands it
 * makes are queued on the connection only once `gate` opens, in order.
 */
function buildHeldBack(raw: RawConnection, gate: Promise<void>, build: () => QueryCommand): QueryCommand {
  const target = raw as unknown as { addCommand(command: unknown): unknown };
  const own = Object.getOwnPropertyDescriptor(target, 'addCommand'); // mysql2 sets its own once closed
  const held: unknown[] = [];
  target.addCommand = (command: unknown) => {
    held.push(command);
    return command;
  };
  try {
    return build();
  } finally {
    if (own) Object.defineProperty(target, 'addCommand', own);
    else delete (target as { addCommand?: unknown }).addCommand;
    if (held.length > 0) {
      void gate.then(() => {
        for (const command of held) target.addCommand(command);
      });
    }
  }
}

/** An OK packet of a streamed result (mysql2 emits it as a `result` event, like the rows). */
function isResultSetHeader(row: unknown): row is { serverStatus: number } {
  return typeof row === 'object' && row !== null && row.constructor?.name === 'ResultSetHeader';
}

/** Same as mysql2/promise: the error keeps its identity and fields, its stack shows the caller. */
function applyCallerStack(err: Error, caller: StackHolder): void {
  const stack = caller.stack;
  if (typeof stack !== 'string' || !stack) return;
  const lines = stack.split('\n');
  lines[0] = `${err.name}: ${err.message}`;
  err.stack = lines.join('\n');
}

/** In a multi-statement result, `fields` holds one entry per result: an array of columns, or undefined for an OK packet. */
function isMultiResult(fields: unknown[]): boolean {
  const first = fields[0];
  return first === undefined || Array.isArray(first);
}
