/**
 * ReplicaPool: read/write splitting over one primary and its replicas, built
 * on rollback-pool Pools only (one for the primary with `trackGtid`, one per
 * replica with `refuseWrites`, and, when first needed, a read-only twin of
 * the primary for read-only leases no replica can take). Every
 * deferred-rollback guarantee comes from those pools, on either side.
 *
 * Routing, decided from the API first and the statement second:
 * - `query`/`execute` in autocommit mode: a provably read-only statement
 *   (`readOnlyReason`) goes to a healthy replica, anything else to the primary;
 * - `begin`/`transaction` with `readOnly: true`: a replica; any other
 *   transaction, and `getConnection()`, the primary;
 * - inside a request scope of the primary: everything to the primary (a read
 *   there belongs to the scope's transaction);
 * - `replica()` / `primary()`: forced.
 *
 * Read-your-writes (`'pool'`): before a read, the replica must have applied
 * the primary pool's `lastGtid` (known, or awaited with `MASTER_GTID_WAIT`
 * up to `waitTimeoutMs`); otherwise the read runs on the primary.
 */
import { EventEmitter } from 'node:events';
import type { InspectOptions } from 'node:util';
import type { ExecuteValues, FieldPacket, QueryOptions, QueryResult, QueryValues, RowDataPacket } from 'mysql2';
import { InvalidOptionError, PoolClosedError } from '../errors';
import { describeConnection, inspectAs, inspectSymbol } from '../inspect';
import { GtidPosition } from '../pool/gtid';
import type { PoolConnection } from '../pool/lease';
import { Pool, type PoolStats } from '../pool/pool';
import { currentScope, type ScopeHandle, type ScopeOptions, type ScopeTransactionOptions } from '../scope/scope';
import type { TransactionOptions } from '../tx/run';
import type { BeginOptions } from '../tx/sql';
import type { Transaction } from '../tx/transaction';
import { FORWARDED_EVENTS, type ReplicaPoolEventMap, type ReplicaPoolServer } from './events';
import { ReplicaHandle, type ReplicaHandleOptions } from './handle';
import { describeError, ReplicaMember, type MemberHost, type ReplicaHealth, type ReplicaState } from './member';
import { readOnlyPrimary, resolveReplicaOptions, type ReplicaPoolOptions, type ResolvedReplicaOptions } from './options';
import { readOnlyReason } from './statement';

/** A snapshot of a replica pool, from `stats()`. */
export interface ReplicaPoolStats {
  /** The primary's pool. */
  primary: PoolStats;
  /** Each replica's pool, with its health state and last measured lag. */
  replicas: Array<PoolStats & { state: ReplicaState; lagMs: number | undefined }>;
  /** The primary's read-only twin (read-only leases and transactions no replica could take), once it exists. */
  readOnlyPrimary: PoolStats | undefined;
  /** Since creation: reads routed to a replica that ran there, and that ran on the primary instead (no healthy replica, wait timed out, replica failed). */
  reads: { replica: number; fallback: number };
  /** Since creation: reads that had to wait for the replica to apply the pool's last commit, and waits that timed out. */
  readYourWrites: { waits: number; timeouts: number };
}

/** Errors after which a replica is taken out of rotation and the read is run elsewhere. */
const CONNECTION_FAILURES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE',
  'PROTOCOL_CONNECTION_LOST', 'ERR_CONNECTION_LOST', 'ERR_ACQUIRE_TIMEOUT',
]);

/**
 * A pool over a primary and its replicas (make one with `createReplicaPool`),
 * with `createPool`'s API: writes and transactions on the primary, autocommit
 * reads and `readOnly` transactions on a healthy replica, each read after
 * the pool's own last commit (read-your-writes). Events: {@link ReplicaPoolEventMap}.
 */
export class ReplicaPool extends EventEmitter<ReplicaPoolEventMap> {
  /** The validated options, defaults filled in. */
  readonly options: ResolvedReplicaOptions;
  private readonly primaryPool: Pool;
  private readonly members: ReplicaMember[];
  private readOnlyTwin: Pool | undefined;
  private nextMember = 0;
  private ended: Promise<void> | undefined;
  private readonly counters = { replica: 0, fallback: 0, waits: 0, timeouts: 0 };
  /** `primaryPool.lastGtid`, parsed once per new value. */
  private lastSeen: { text: string | undefined; position: GtidPosition | undefined } = { text: undefined, position: undefined };

  /** @internal Use `createReplicaPool()`. */
  constructor(options: ReplicaPoolOptions) {
    super();
    this.options = resolveReplicaOptions(options);
    this.primaryPool = new Pool(this.options.primary);
    this.forwardEvents(this.primaryPool, 'primary');
    const host: MemberHost = {
      maxLagMs: this.options.maxLagMs,
      healthCheckMs: this.options.healthCheckMs,
      primaryPosition: () => this.primaryPosition(),
      onHealth: (member, previous) => this.emitSafely('health', { ...member.health(), previous }),
    };
    this.members = [];
    try {
      for (const [i, replica] of this.options.replicas.entries()) {
        const member = new ReplicaMember(i, replica, host);
        this.members.push(member);
        this.forwardEvents(member.pool, `replica ${i}`);
      }
    } catch (error) {
      // A replica's options were invalid: nothing may keep probing or stay connected.
      for (const member of this.members) void member.end();
      void this.primaryPool.end();
      throw error;
    }
  }

  /** True once `end()` was called. */
  get closed(): boolean {
    return this.ended !== undefined;
  }

  /**
   * The GTID of the last commit made through this pool (on its primary), e.g.
   * `'0-1-42'`: what read-your-writes waits for. Carry it to another process
   * (a cookie, a job) and pass it to `replica({ after })` there.
   */
  get lastGtid(): string | undefined {
    return this.primaryPool.lastGtid;
  }

  /**
   * The primary's pool itself: everything on it runs on the primary. For
   * writes the statement check would not let through to a replica anyway,
   * for reads that must see the very latest data, and for the framework
   * adapters (`scope(replicaPool.primary())`: reads through this replica pool
   * inside such a request scope then run in the scope, on the primary).
   */
  primary(): Pool {
    return this.primaryPool;
  }

  /**
   * A handle whose statements run on a replica, and are refused
   * (`ERR_REPLICA_WRITE`, nothing sent) unless provably read-only. `after`: a
   * GTID (or position) from elsewhere, e.g. another process's `lastGtid`,
   * that the replica must have applied first; with `readYourWrites: 'pool'`
   * this pool's own last commit too. When no replica is healthy or caught up
   * in time, reads run on the primary, and leases and transactions on its
   * read-only twin (the same checks).
   */
  replica(options: ReplicaHandleOptions = {}): ReplicaHandle {
    if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'an object such as { after: gtid }');
    for (const key of Object.keys(options)) if (key !== 'after') throw new InvalidOptionError(key, 'no such replica() option (after)');
    const { after } = options;
    if (after !== undefined && (typeof after !== 'string' || (after !== '' && GtidPosition.parse(after).empty))) {
      throw new InvalidOptionError('after', "a GTID or GTID position such as '0-1-42'");
    }
    return new ReplicaHandle(this, after === undefined || after === '' ? undefined : GtidPosition.parse(after));
  }

  /** Runs one statement: on a replica when it is provably read-only (and not in a request scope), else on the primary. */
  query<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: QueryValues): Promise<[T, FieldPacket[]]> {
    if (!this.routesToReplica(sql)) return this.primaryPool.query<T>(sql, values);
    return this.read(this.ownTarget(), (pool) => pool.query<T>(sql, values), () => this.primaryPool.query<T>(sql, values));
  }

  /** Runs one prepared statement: routed as `query`. */
  execute<T extends QueryResult = QueryResult>(sql: string | QueryOptions, values?: ExecuteValues): Promise<[T, FieldPacket[]]> {
    if (!this.routesToReplica(sql)) return this.primaryPool.execute<T>(sql, values);
    return this.read(this.ownTarget(), (pool) => pool.execute<T>(sql, values), () => this.primaryPool.execute<T>(sql, values));
  }

  /** A connection on the primary (a lease may write): see `replica().getConnection()` for a read-only one. */
  getConnection(): Promise<PoolConnection> {
    return this.primaryPool.getConnection();
  }

  /** Gives a connection back (same as `connection.release()`). */
  releaseConnection(connection: PoolConnection): void {
    connection.release();
  }

  /** Begins a transaction: with `readOnly: true` on a replica (`START TRANSACTION READ ONLY`), otherwise on the primary. */
  begin(options?: BeginOptions): Promise<Transaction> {
    if (options?.readOnly !== true || this.inPrimaryScope()) return this.primaryPool.begin(options);
    return this.readOnlyBegin(this.ownTarget(), options);
  }

  /** Runs `fn` in a transaction (as `createPool`'s): with `readOnly: true` on a replica, otherwise on the primary. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
    if (options?.readOnly !== true || this.inPrimaryScope()) return this.primaryPool.transaction(fn, options);
    return this.readOnlyTransaction(this.ownTarget(), fn, options);
  }

  /** A request scope, on the primary (see `createPool`'s `withScope`): reads inside it run in it. */
  withScope<T>(fn: () => Promise<T>, options?: ScopeOptions): Promise<T> {
    return this.primaryPool.withScope(fn, options);
  }

  /** Opens a request scope on the primary by hand (see `createPool`'s `openScope`). */
  openScope(options?: ScopeTransactionOptions): ScopeHandle {
    return this.primaryPool.openScope(options);
  }

  /** Escapes a value, as the primary's pool. */
  escape(value: unknown): string {
    return this.primaryPool.escape(value);
  }

  /** Escapes an identifier, as mysql2. */
  escapeId(value: string | string[]): string {
    return this.primaryPool.escapeId(value);
  }

  /** Formats SQL with values, as the primary's pool. */
  format(sql: string, values?: unknown): string {
    return this.primaryPool.format(sql, values);
  }

  /** Each replica's health: state (only `healthy` takes reads), measured lag, why it is out. */
  health(): ReplicaHealth[] {
    return this.members.map((member) => member.health());
  }

  /** Resolves once every replica has been probed once: until then, reads run on the primary. */
  ready(): Promise<void> {
    return Promise.all(this.members.map((member) => member.probed())).then(() => undefined);
  }

  /** Every member pool's stats, the replicas' health, and how reads were routed. */
  stats(): ReplicaPoolStats {
    return {
      primary: this.primaryPool.stats(),
      replicas: this.members.map((member) => ({ ...member.pool.stats(), state: member.state, lagMs: member.health().lagMs })),
      readOnlyPrimary: this.readOnlyTwin?.stats(),
      reads: { replica: this.counters.replica, fallback: this.counters.fallback },
      readYourWrites: { waits: this.counters.waits, timeouts: this.counters.timeouts },
    };
  }

  /**
   * Ends every member pool (each as `createPool`'s `end()`: statements
   * already sent finish, open transactions are rolled back) and stops the
   * health checks. Never rejects.
   */
  end(): Promise<void> {
    this.ended ??= Promise.all([this.primaryPool.end(), this.readOnlyTwin?.end(), ...this.members.map((member) => member.end())]).then(() => undefined);
    return this.ended;
  }

  /** `await using pool = createReplicaPool(...)`: ends it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }

  /** What `JSON.stringify(pool)` shows: where it connects and the replicas' health, never a password. */
  toJSON(): { primary: ReturnType<typeof describeConnection>; replicas: ReplicaHealth[]; closed: boolean } {
    return { primary: describeConnection(this.primaryPool.options.connection), replicas: this.health(), closed: this.closed };
  }

  /** What `console.log(pool)` shows: the same summary as `toJSON()`. */
  [inspectSymbol](_depth: number, options: InspectOptions): string {
    return inspectAs('ReplicaPool', this.toJSON(), options);
  }

  // ---- routing, shared with ReplicaHandle --------------------------------------------

  /** @internal What a read must wait for: this pool's last commit (`readYourWrites: 'pool'`), plus `extra`. */
  targetWith(extra: GtidPosition | undefined): GtidPosition | undefined {
    const own = this.ownTarget();
    if (extra === undefined) return own;
    if (own === undefined) return extra;
    const both = GtidPosition.parse(own.value);
    both.merge(extra);
    return both;
  }

  /**
   * @internal Runs a read on a healthy replica that has applied `target`,
   * or with `onPrimary` when there is none, the wait times out, or the
   * replica fails before the read could start (`retryable` says whether it
   * had: a transaction callback that already ran is not run again).
   */
  async read<T>(
    target: GtidPosition | undefined,
    onReplica: (pool: Pool) => Promise<T>,
    onPrimary: () => Promise<T>,
    retryable: () => boolean = always,
  ): Promise<T> {
    if (this.closed) throw new PoolClosedError();
    const member = this.pick();
    if (member === undefined) return this.fallback(onPrimary);
    if (target !== undefined && !target.empty) {
      let caughtUp: boolean;
      try {
        if (!member.hasApplied(target)) this.counters.waits++;
        caughtUp = await member.waitFor(target, this.options.waitTimeoutMs);
      } catch (error) {
        if (!isConnectionFailure(error)) throw error;
        member.takeOut('broken', `a read failed: ${describeError(error)}`);
        return this.fallback(onPrimary);
      }
      if (!caughtUp) {
        this.counters.timeouts++;
        // Behind by more than waitTimeoutMs: if that is maxLagMs or more, it is over the limit.
        if (this.options.waitTimeoutMs >= this.options.maxLagMs) {
          member.takeOut('lagging', `did not apply ${target.value as string} within ${this.options.waitTimeoutMs} ms`);
        }
        return this.fallback(onPrimary);
      }
    }
    try {
      const result = await onReplica(member.pool);
      this.counters.replica++;
      return result;
    } catch (error) {
      if (!isConnectionFailure(error) || this.closed) throw error;
      member.takeOut('broken', `a read failed: ${describeError(error)}`);
      if (!retryable()) throw error;
      return this.fallback(onPrimary);
    }
  }

  /** @internal A read-only transaction handle on a replica that has applied `target` (else on the read-only primary). */
  readOnlyBegin(target: GtidPosition | undefined, options: BeginOptions | undefined): Promise<Transaction> {
    const readOnly = { ...options, readOnly: true };
    return this.read(target, (pool) => pool.begin(readOnly), () => this.readOnlyPrimary().then((pool) => pool.begin(readOnly)));
  }

  /** @internal `fn` in a read-only transaction on a replica that has applied `target` (else on the read-only primary). */
  readOnlyTransaction<T>(target: GtidPosition | undefined, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions | undefined): Promise<T> {
    const readOnly = { ...options, readOnly: true };
    let started = false;
    const run = (tx: Transaction): Promise<T> => {
      started = true;
      return fn(tx);
    };
    return this.read(
      target,
      (pool) => pool.transaction(run, readOnly),
      () => this.readOnlyPrimary().then((pool) => pool.transaction(fn, readOnly)),
      () => !started,
    );
  }

  /** @internal The primary's read-only twin, made when first needed. */
  readOnlyPrimary(): Promise<Pool> {
    if (this.closed) return Promise.reject(new PoolClosedError());
    if (this.readOnlyTwin === undefined) {
      this.readOnlyTwin = new Pool(readOnlyPrimary(this.options.primary));
      this.forwardEvents(this.readOnlyTwin, 'primary (read-only)');
    }
    return Promise.resolve(this.readOnlyTwin);
  }

  // ---- internals ----------------------------------------------------------------------

  private routesToReplica(sql: string | QueryOptions): boolean {
    const text = typeof sql === 'string' ? sql : (sql as QueryOptions | null)?.sql;
    return typeof text === 'string' && readOnlyReason(text) === undefined && !this.inPrimaryScope();
  }

  /** A read in a request scope of the primary belongs to the scope's transaction. */
  private inPrimaryScope(): boolean {
    return currentScope(this.primaryPool) !== undefined;
  }

  /** The primary pool's last commit, for `readYourWrites: 'pool'`. */
  private ownTarget(): GtidPosition | undefined {
    if (this.options.readYourWrites === 'none') return undefined;
    const text = this.primaryPool.lastGtid;
    if (text !== this.lastSeen.text) this.lastSeen = { text, position: GtidPosition.parse(text) };
    return this.lastSeen.position;
  }

  /** The next healthy replica, round robin. */
  private pick(): ReplicaMember | undefined {
    const n = this.members.length;
    for (let k = 0; k < n; k++) {
      const member = this.members[this.nextMember++ % n]!;
      if (member.healthy) return member;
    }
    return undefined;
  }

  private fallback<T>(onPrimary: () => Promise<T>): Promise<T> {
    this.counters.fallback++;
    return onPrimary();
  }

  private primaryPosition(): Promise<GtidPosition> {
    return this.primaryPool
      .query<RowDataPacket[]>('SELECT @@gtid_binlog_pos AS pos')
      .then(([rows]) => GtidPosition.parse(String(rows[0]?.['pos'] ?? '')));
  }

  private forwardEvents(pool: Pool, server: ReplicaPoolServer): void {
    for (const event of FORWARDED_EVENTS) {
      pool.on(event, (payload: object) => {
        if (this.listenerCount(event) > 0) this.emitSafely(event, { ...payload, server } as never);
      });
    }
  }

  /** A throwing listener must not break the member pool's bookkeeping: rethrown on the next tick, as Pool does. */
  private emitSafely<K extends keyof ReplicaPoolEventMap>(event: K, payload: ReplicaPoolEventMap[K][0]): void {
    try {
      (this.emit as (event: K, payload: ReplicaPoolEventMap[K][0]) => boolean)(event, payload);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }
}

function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (typeof code === 'string' && CONNECTION_FAILURES.has(code)) || (error as { fatal?: unknown } | null)?.fatal === true;
}

function always(): boolean {
  return true;
}
