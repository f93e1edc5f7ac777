/**
 * The ledger workload: workers that each run one transaction after another.
 * Every transaction writes one token and ends in one of the ways of
 * `END_KINDS`; the worker records what the pool told it (see ledger.ts for
 * the three outcome classes). The classification follows what the client
 * knows, never what it hopes:
 *
 * - `committed` only when the COMMIT call resolved (`tx.commit()`,
 *   `conn.commit()`, `pool.transaction()` resolving, `withScope()` resolving
 *   after `decide` said commit);
 * - `notCommitted` only when no COMMIT was sent for that transaction: the
 *   commit was never called, or `pool.transaction()` rejected with the
 *   callback's own error, `ERR_TX_TIMEOUT` or the abort reason (the runner
 *   disarms its timer and signal before it sends COMMIT, so a stop error means
 *   COMMIT was never sent), or `tx.commit()` refused before sending
 *   (`ERR_TX_CLOSED`, `ERR_TX_ABANDONED`, or `ERR_CONNECTION_LOST` with
 *   `neverSent`: the connection was known dead before COMMIT was written);
 * - `unknown` for everything else after a COMMIT was sent:
 *   `ERR_COMMIT_OUTCOME_UNKNOWN`, a lost connection, an error reply to COMMIT
 *   (a `KILL QUERY` may land on it), `ERR_TX_ENDED_BY_SERVER` (nothing in this
 *   workload ends a transaction on the server, so it is not trusted either),
 *   `ERR_SCOPE_COMMIT_FAILED`.
 *
 * A sampled probe at checkout reads, before anything else runs on the new
 * lease, whether the server says it is inside a transaction.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { Pool, PoolConnection, Transaction, TransactionOptions } from '../src/index';
import { bump, type EndKind, type Ledger, type Outcome, type Violation } from './ledger';

type Rng = () => number;
type Recorded = [Exclude<Outcome, 'pending'>, string];

/** Something statements can run on: a transaction handle, a lease, the pool. */
interface Runner {
  query(sql: string, values?: Array<string | number>): Promise<unknown>;
  execute(sql: string, values?: Array<string | number>): Promise<unknown>;
}

export interface WorkloadOptions {
  /** Relative weights of the end kinds. */
  weights: Record<EndKind, number>;
  /** Fraction of transactions that also read a multi-packet result (a target for "cut mid-result"). */
  readRate: number;
  /** Fraction of checkouts probed. */
  probeRate: number;
  /** Pause between two transactions of a worker: 0..thinkMs ms. */
  thinkMs: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  weights: {
    commit: 20, connCommit: 10, rollback: 8, throw: 8, timeout: 6, abort: 6,
    release: 10, dispose: 6, drop: 3, scope: 12, scopeXa: 4,
  },
  readRate: 0.3,
  probeRate: 0.25,
  thinkMs: 15,
};

/** Rows of the read table and the size of each: a result of ~40 KB, many TCP segments. */
export const READ_ROWS = 200;
export const READ_PAD = 200;

export function readsDdl(table: string): string[] {
  return [
    `CREATE TABLE ${table} (id INT NOT NULL PRIMARY KEY, pad VARCHAR(${READ_PAD}) NOT NULL) ENGINE=InnoDB`,
    `INSERT INTO ${table} (id, pad) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ${READ_ROWS}) ` +
      `SELECT n, REPEAT(CHAR(97 + n % 26), ${READ_PAD}) FROM s`,
  ];
}

const PROBE_FAST = 'SELECT @@in_transaction AS t, CONNECTION_ID() AS id';
const PROBE_FULL =
  'SELECT @@in_transaction AS t, CONNECTION_ID() AS id, ' +
  '(SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()) AS n';
/** INNODB_TRX is a cache refreshed only when it was not read for 100 ms: read it at most this often. */
const INNODB_TRX_MIN_INTERVAL_MS = 150;

/**
 * The checkout probe: is a freshly checked-out connection inside a
 * transaction? `@@in_transaction` is exact; `information_schema.innodb_trx`
 * is read when its cache can have been refreshed, and a hit that
 * `@@in_transaction` contradicts is read again (up to 3 times, 150+ ms apart)
 * before it counts, since another client reading the table keeps the cache stale.
 */
export class CheckoutProbe {
  sampled = 0;
  withInnodbTrx = 0;
  staleCacheRechecks = 0;
  failed = 0;
  violationCount = 0;
  readonly violations: Violation[] = [];
  private lastInnodbRead = 0;

  constructor(private readonly rate: number, private readonly rng: Rng) {}

  shouldSample(): boolean {
    return this.rng() < this.rate;
  }

  /** Runs on `target` (a fresh lease, or the pool: its fast path checks out, runs, releases). */
  async run(target: { query(sql: string): Promise<unknown> }, where: string): Promise<void> {
    this.sampled++;
    const full = Date.now() - this.lastInnodbRead >= INNODB_TRX_MIN_INTERVAL_MS;
    if (full) this.lastInnodbRead = Date.now();
    let row: { t: number; id: number; n?: number };
    try {
      row = firstRow(await target.query(full ? PROBE_FULL : PROBE_FAST));
    } catch {
      this.failed++; // a fault hit the probe itself: nothing learned
      return;
    }
    if (Number(row.t) !== 0) {
      this.violation(`checkout probe (${where}): connection ${row.id} is inside a transaction (@@in_transaction = 1)`);
      return;
    }
    if (!full) return;
    this.withInnodbTrx++;
    if (Number(row.n) === 0) return;
    // @@in_transaction says no, INNODB_TRX says yes: re-read it once its cache can refresh.
    for (let attempt = 0; attempt < 3; attempt++) {
      await sleep(INNODB_TRX_MIN_INTERVAL_MS + 10);
      this.lastInnodbRead = Date.now();
      try {
        row = firstRow(await target.query(PROBE_FULL));
      } catch {
        this.failed++;
        return;
      }
      if (Number(row.t) !== 0) break;
      if (Number(row.n) === 0) {
        this.staleCacheRechecks++;
        return;
      }
    }
    this.violation(`checkout probe (${where}): innodb_trx shows a transaction for connection ${row.id} ` +
      `(@@in_transaction = ${row.t}, rows = ${row.n})`);
  }

  private violation(what: string): void {
    this.violationCount++;
    if (this.violations.length < 50) this.violations.push({ what });
  }
}

/**
 * What the workers run on: a Pool, or a PoolCluster (the same calls, each on
 * a node the cluster picks; a scope stays on its node).
 */
export type SoakTarget = Pick<Pool, 'begin' | 'getConnection' | 'transaction' | 'withScope' | 'query' | 'execute'>;

export interface WorkloadContext {
  pool: SoakTarget;
  ledger: Ledger;
  readsTable: string;
  /** Where a two-phase scope writes the twin of its token, on its second connection. */
  twinTable: string;
  probe: CheckoutProbe;
  options: WorkloadOptions;
  rng: Rng;
  /** True once the workers should finish their current transaction and stop. */
  stopping(): boolean;
  /** Errors the workers saw, by code (informational). */
  errors: Map<string, number>;
}

/** Thrown by the workload on purpose. */
class Deliberate extends Error {
  constructor(what: string) {
    super(`deliberate: ${what}`);
  }
}

/** Runs transactions until `ctx.stopping()`; never rejects. */
export async function worker(ctx: WorkloadContext, id: number): Promise<void> {
  const kinds = Object.entries(ctx.options.weights) as Array<[EndKind, number]>;
  const total = kinds.reduce((sum, [, w]) => sum + w, 0);
  while (!ctx.stopping()) {
    let pick = ctx.rng() * total;
    let kind: EndKind = kinds[0]![0];
    for (const [k, w] of kinds) {
      pick -= w;
      if (pick < 0) {
        kind = k;
        break;
      }
    }
    const token = ctx.ledger.next(kind);
    let recorded: Recorded;
    let failed = false;
    try {
      recorded = await one(ctx, id, kind, token, (error) => {
        failed = true;
        bump(ctx.errors, codeOf(error));
      });
    } catch (error) {
      // A bug of the workload itself, not a pool outcome: keep it visible, never guess.
      recorded = ['unknown', `workload bug: ${String(error)}`];
    }
    ctx.ledger.record(token, recorded[0], recorded[1]);
    // After an error (a fault), back off a little so a dead server is not hammered.
    await sleep(failed ? 50 + ctx.rng() * 150 : ctx.rng() * ctx.options.thinkMs);
  }
}

function one(ctx: WorkloadContext, id: number, kind: EndKind, token: number, saw: (error: unknown) => void): Promise<Recorded> {
  switch (kind) {
    case 'commit':
    case 'rollback':
    case 'drop':
      return viaHandle(ctx, id, kind, token, saw);
    case 'dispose':
      return viaDispose(ctx, id, token, saw);
    case 'connCommit':
    case 'release':
      return viaLease(ctx, id, kind, token, saw);
    case 'throw':
    case 'timeout':
    case 'abort':
      return viaCallback(ctx, id, kind, token, saw);
    case 'scope':
      return viaScope(ctx, id, token, saw);
    case 'scopeXa':
      return viaTwoPhaseScope(ctx, id, token, saw);
  }
}

function insert(ctx: WorkloadContext, on: Runner, token: number, kind: EndKind, id: number): Promise<unknown> {
  const values = [token, kind, id];
  return ctx.rng() < 0.5 ? on.execute(ctx.ledger.insertSql, values) : on.query(ctx.ledger.insertSql, values);
}

async function maybeRead(ctx: WorkloadContext, on: Runner): Promise<void> {
  if (ctx.rng() >= ctx.options.readRate) return;
  const [rows] = (await on.query(`SELECT id, pad FROM ${ctx.readsTable} ORDER BY id`)) as [RowDataPacket[]];
  if (rows.length !== READ_ROWS) throw new Error(`read ${rows.length} rows, expected ${READ_ROWS}`);
}

function beginOptions(ctx: WorkloadContext): { isolationLevel: 'READ COMMITTED' } | undefined {
  // Two statements (SET TRANSACTION, START TRANSACTION): a fault can land between them.
  return ctx.rng() < 0.2 ? { isolationLevel: 'READ COMMITTED' } : undefined;
}

/** After COMMIT was sent and did not resolve. */
function afterCommit(error: unknown): Recorded {
  const code = codeOf(error);
  if (code === 'ERR_TX_CLOSED' || code === 'ERR_TX_ABANDONED') return ['notCommitted', `commit refused before sending (${code})`];
  // The pool's claim that a COMMIT on a connection already known dead was never sent: checked by the ledger.
  if (code === 'ERR_CONNECTION_LOST' && (error as { neverSent?: boolean }).neverSent === true) {
    return ['notCommitted', 'commit refused before sending (connection already gone)'];
  }
  if (code === 'ERR_COMMIT_OUTCOME_UNKNOWN') return ['unknown', 'commit outcome unknown'];
  if ((error as { fatal?: boolean } | null)?.fatal) return ['unknown', `connection lost during commit (${code})`];
  return ['unknown', `commit answered ${code}`];
}

/** pool.begin(): commit, rollback, or the handle simply dropped. */
async function viaHandle(ctx: WorkloadContext, id: number, kind: 'commit' | 'rollback' | 'drop', token: number, saw: (e: unknown) => void): Promise<Recorded> {
  let tx: Transaction | undefined;
  let commitSent = false;
  try {
    tx = await ctx.pool.begin(beginOptions(ctx));
    await insert(ctx, tx, token, kind, id);
    await maybeRead(ctx, tx);
    if (kind === 'commit') {
      commitSent = true;
      await tx.commit();
      return ['committed', 'tx.commit() resolved'];
    }
    if (kind === 'rollback') {
      await tx.rollback();
      return ['notCommitted', 'tx.rollback() resolved'];
    }
    tx = undefined; // dropped: only the FinalizationRegistry can give its connection back
    return ['notCommitted', 'handle dropped'];
  } catch (error) {
    saw(error);
    if (commitSent) return afterCommit(error);
    if (tx && (tx.state === 'active' || tx.state === 'endedByServer')) {
      // Half of the time rolled back by hand, half of the time abandoned (the pool rolls back).
      if (ctx.rng() < 0.5) await tx.rollback().catch(() => undefined);
      else tx[Symbol.dispose]();
    }
    return ['notCommitted', `failed before commit (${codeOf(error)})`];
  }
}

/** `using tx = await pool.begin()`, block left without commit. */
async function viaDispose(ctx: WorkloadContext, id: number, token: number, saw: (e: unknown) => void): Promise<Recorded> {
  try {
    using tx = await ctx.pool.begin(beginOptions(ctx));
    await insert(ctx, tx, token, 'dispose', id);
    await maybeRead(ctx, tx);
    return ['notCommitted', 'disposed without commit'];
  } catch (error) {
    saw(error);
    return ['notCommitted', `failed before commit (${codeOf(error)})`];
  }
}

/** getConnection(): a transaction opened one of several ways, then commit() or release() without it. */
async function viaLease(ctx: WorkloadContext, id: number, kind: 'connCommit' | 'release', token: number, saw: (e: unknown) => void): Promise<Recorded> {
  let conn: PoolConnection | undefined;
  let commitSent = false;
  try {
    conn = await ctx.pool.getConnection();
    if (ctx.probe.shouldSample()) await ctx.probe.run(conn, 'getConnection');
    const how = kind === 'connCommit' ? 0 : Math.floor(ctx.rng() * 4);
    if (how === 0) await conn.beginTransaction();
    else if (how === 1) await conn.query('START TRANSACTION');
    else if (how === 2) await conn.query('SET autocommit=0'); // the INSERT then opens one
    else await conn.begin(); // a handle left behind with the lease
    await insert(ctx, conn, token, kind, id);
    await maybeRead(ctx, conn);
    if (kind === 'connCommit') {
      commitSent = true;
      await conn.commit();
      return ['committed', 'conn.commit() resolved'];
    }
    return ['notCommitted', 'released without commit'];
  } catch (error) {
    saw(error);
    if (commitSent) return afterCommit(error);
    return ['notCommitted', `failed before commit (${codeOf(error)})`];
  } finally {
    conn?.release();
  }
}

/** pool.transaction(): the callback throws, runs past timeoutMs, or is aborted. */
async function viaCallback(ctx: WorkloadContext, id: number, kind: 'throw' | 'timeout' | 'abort', token: number, saw: (e: unknown) => void): Promise<Recorded> {
  const thrown = new Deliberate('callback throws');
  const abortReason = new Deliberate('aborted');
  let callbackResolved = false;
  let abortTimer: NodeJS.Timeout | undefined;
  const options: TransactionOptions = { ...beginOptions(ctx) };
  if (kind === 'timeout') {
    options.timeoutMs = 60 + Math.floor(ctx.rng() * 120);
    options.onTimeout = (['kill', 'destroy', 'wait'] as const)[Math.floor(ctx.rng() * 3)]!;
  }
  if (kind === 'abort') {
    const controller = new AbortController();
    abortTimer = setTimeout(() => controller.abort(abortReason), ctx.rng() * 40);
    options.signal = controller.signal;
  }
  try {
    await ctx.pool.transaction(async (tx) => {
      await insert(ctx, tx, token, kind, id);
      await maybeRead(ctx, tx);
      if (kind === 'throw') throw thrown;
      if (kind === 'timeout') {
        // Mostly too slow for its deadline (in flight at the timeout), sometimes in time.
        await tx.query('SELECT SLEEP(?)', [[0, 0.02, 0.3, 0.5][Math.floor(ctx.rng() * 4)]]);
      }
      if (kind === 'abort' && ctx.rng() < 0.5) await tx.query('SELECT SLEEP(0.02)');
      callbackResolved = true;
    }, options);
    return ['committed', 'pool.transaction() resolved'];
  } catch (error) {
    if (error === thrown) return ['notCommitted', 'callback threw'];
    if (error === abortReason) return ['notCommitted', 'aborted'];
    if (codeOf(error) === 'ERR_TX_TIMEOUT') return ['notCommitted', 'timed out'];
    saw(error);
    if (!callbackResolved) return ['notCommitted', `callback failed (${codeOf(error)})`];
    return afterCommit(error);
  } finally {
    clearTimeout(abortTimer);
  }
}

/** pool.withScope(): a connection of the scope writes the token; decide() commits or rolls back. */
function viaScope(ctx: WorkloadContext, id: number, token: number, saw: (e: unknown) => void): Promise<Recorded> {
  return inScope(ctx, 'scope', 0.15, {}, saw, async () => {
    if (ctx.rng() < 0.5) {
      const conn = await ctx.pool.getConnection();
      try {
        await insert(ctx, conn, token, 'scope', id);
        await maybeRead(ctx, conn);
      } finally {
        conn.release(); // handed to the scope, not committed
      }
    } else {
      await insert(ctx, ctx.pool, token, 'scope', id); // the scope's shared connection
    }
  });
}

/**
 * pool.withScope({ twoPhase: true }): the token on one connection, its twin row on another; decide()
 * commits or rolls back. Whatever the outcome, the two rows must end both present or both absent
 * (checked after the run, once `recoverXa()` finished what faults left prepared).
 */
function viaTwoPhaseScope(ctx: WorkloadContext, id: number, token: number, saw: (e: unknown) => void): Promise<Recorded> {
  return inScope(ctx, 'two-phase scope', 0.1, { twoPhase: true }, saw, async () => {
    const main = await ctx.pool.getConnection();
    try {
      await insert(ctx, main, token, 'scopeXa', id);
    } finally {
      main.release(); // handed to the scope
    }
    await ctx.pool.query(`INSERT INTO ${ctx.twinTable} (token) VALUES (?)`, [token]); // the scope's shared connection
  });
}

/**
 * Runs `body` in a scope whose decide() picks commit (60 %) or rollback, the body sometimes
 * throwing (`throwRate`), and classifies the outcome from what the client knows.
 */
async function inScope(
  ctx: WorkloadContext,
  what: string,
  throwRate: number,
  options: { twoPhase?: boolean },
  saw: (e: unknown) => void,
  body: () => Promise<void>,
): Promise<Recorded> {
  const wantCommit = ctx.rng() < 0.6;
  const throwInside = ctx.rng() < throwRate;
  let decision: 'commit' | 'rollback' | undefined;
  try {
    await ctx.pool.withScope(
      async () => {
        await body();
        if (throwInside) throw new Deliberate(`${what} body throws`);
      },
      { ...options, decide: (outcome) => (decision = outcome.ok && wantCommit ? 'commit' : 'rollback') },
    );
    if (decision === 'commit') return ['committed', `${what} committed`];
    if (decision === 'rollback') return ['notCommitted', `${what} decided rollback`];
    return ['unknown', `${what} resolved without a decision`];
  } catch (error) {
    if (!(error instanceof Deliberate)) saw(error);
    if (decision === 'rollback') return ['notCommitted', `${what} decided rollback`];
    if (decision === 'commit') return ['unknown', `${what} commit failed (${codeOf(error)})`];
    return ['unknown', `${what} rejected before deciding (${codeOf(error)})`];
  }
}

/** A rollback-pool code, a server errno, or a Node/mysql2 code: something to count by. */
export function codeOf(error: unknown): string {
  const e = error as { code?: unknown; errno?: unknown } | null;
  if (e && typeof e.code === 'string' && e.code.startsWith('ERR_')) return e.code;
  if (e && typeof e.errno === 'number' && e.errno > 0) return `${e.errno}${typeof e.code === 'string' ? ` ${e.code}` : ''}`;
  if (e && typeof e.code === 'string') return e.code;
  if (error instanceof Deliberate) return 'deliberate';
  if (error instanceof Error) return `${error.name}: ${error.message.slice(0, 60)}`;
  return String(error);
}

function firstRow(result: unknown): { t: number; id: number; n?: number } {
  const [rows] = result as [Array<{ t: number; id: number; n?: number }>];
  const row = rows[0];
  if (row === undefined) throw new Error('probe returned no row');
  return row;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
