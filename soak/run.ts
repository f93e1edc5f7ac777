/**
 * The ledger soak (issue 5): many workers run ledger transactions through a
 * fault proxy against a private MariaDB (its own data directory, free port),
 * while the fault scheduler injects network faults and KILLs and the server
 * is killed (SIGKILL) and started again now and then. At the end:
 *
 * - every acknowledged commit is in the table, nothing certainly-not-committed is;
 * - no sampled checkout found its new lease inside a transaction, nor did a
 *   final sweep over every connection of the pool;
 * - no unhandled rejection or uncaught exception;
 * - the pool was back at full size after every fault (within a bound), and
 *   after each restart (the time it took is reported);
 * - at the end nothing is leased, waiting or pending rollback, and every slot is usable;
 * - the heap (after GC) did not grow over the run;
 * - after teardown no handle or timer is left (process.getActiveResourcesInfo()).
 *
 * Used by `npm run soak` (soak/cli.ts) and by __tests__/chaos/soak.test.ts.
 * The shared server is never touched: restarts need a server of our own.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createConnection, type Connection } from 'mysql2/promise';
import { createPool, type Pool } from '../src/index';
import { startProxy, type Proxy } from '../__tests__/support/fault-proxy';
import { startThrowawayMariadb, type ThrowawayServer } from '../scripts/server';
import { FaultScheduler, type Recovery } from './faults';
import { bump, Ledger, violationCount, type LedgerCheck } from './ledger';
import { CheckoutProbe, DEFAULT_WORKLOAD, readsDdl, sleep, worker, type WorkloadContext } from './workload';

export interface SoakOptions {
  /** Run time of the workload (setup and checks come on top). */
  durationMs: number;
  workers?: number;
  connectionLimit?: number;
  /** Mean time between two faults. */
  faultIntervalMs?: number;
  /** Kill and restart the server every this many ms (0: never). */
  restartEveryMs?: number;
  seed?: number;
  /** Progress lines (the CLI prints them; the test keeps quiet). */
  log?: (line: string) => void;
  progressEveryMs?: number;
}

export interface RestartRecord {
  /** SIGKILL to the server answering again. */
  downMs: number;
  /** Server answering again to the pool back at full size and serving a query. */
  recoveryMs: number;
}

export interface SoakSummary {
  seed: number;
  durationMs: number;
  workers: number;
  connectionLimit: number;
  transactions: number;
  byOutcome: Record<'committed' | 'notCommitted' | 'unknown', number>;
  byKind: Record<string, number>;
  details: Record<string, number>;
  ledger: LedgerCheck;
  faults: Record<string, number>;
  landed: Record<string, number>;
  recovery: Record<string, Recovery>;
  notRecovered: number;
  restarts: RestartRecord[];
  /** Two-phase scopes: recoveries during the run and at the end, and the all-or-nothing check. */
  xa: {
    scopes: number;
    duringRun: { committed: number; rolledBack: number; inUse: number; failed: number };
    atEnd: { committed: number; rolledBack: number };
    halfCommitted: number;
  };
  probe: { sampled: number; withInnodbTrx: number; staleCacheRechecks: number; failed: number; violations: number; finalSweep: number };
  pool: Record<string, number>;
  events: Record<string, number>;
  errors: Record<string, number>;
  heap: { beforeMB: number; afterMB: number; externalBeforeMB: number; externalAfterMB: number; ledgerBytes: number };
  unhandledRejections: string[];
  uncaughtExceptions: string[];
  leakedResources: string[];
  /** Every violation, described (all must be absent). */
  violations: string[];
}

const MB = 1024 * 1024;

/** Runs the soak, tears everything down, and checks that nothing was left running. */
export async function runSoak(options: SoakOptions): Promise<SoakSummary> {
  const before = activeResources();
  const summary = await soak(options);
  return finalize(summary, await leakedResources(before));
}

async function soak(options: SoakOptions): Promise<SoakSummary> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rng = mulberry32(seed);
  const workers = options.workers ?? 8;
  const connectionLimit = options.connectionLimit ?? 5;
  const log = options.log ?? ((): void => undefined);
  const collectGarbage = gcFunction();
  const violations: string[] = [];

  const unhandledRejections: string[] = [];
  const uncaughtExceptions: string[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandledRejections.push(describe(reason));
  };
  const onUncaught = (error: unknown): void => {
    uncaughtExceptions.push(describe(error));
  };
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUncaught);

  let server: ThrowawayServer | undefined;
  let proxy: Proxy | undefined;
  let pool: Pool | undefined;
  let setup: Connection | undefined;
  let scheduler: FaultScheduler | undefined;
  try {
    log('starting a private MariaDB (own data directory, free port)...');
    server = await startThrowawayMariadb();
    const srv = server;
    const ledgerTable = 'soak_ledger';
    const readsTable = 'soak_reads';
    const twinTable = 'soak_ledger_twin';
    setup = await createConnection({ uri: srv.url, connectTimeout: 5_000 });
    await setup.query(Ledger.ddl(ledgerTable));
    await setup.query(`CREATE TABLE ${twinTable} (token BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB`);
    for (const sql of readsDdl(readsTable)) await setup.query(sql);
    setup.on('error', () => undefined); // it dies with the first restart; replaced for the final check
    const ledger = new Ledger(ledgerTable);

    const scheduled: { scheduler?: FaultScheduler } = {};
    proxy = await startProxy(srv.url, {
      recordQueries: false,
      onQuery: (sql, index, conn) => scheduled.scheduler?.onQuery(sql, index, conn) ?? 'forward',
    });
    const prx = proxy;
    pool = createPool({
      uri: prx.url,
      connectionLimit,
      connectTimeout: 2_000,
      acquireTimeoutMs: 5_000,
      rollbackTimeoutMs: 2_000,
    });
    const pl = pool;
    const events = new Map<string, number>();
    pl.on('abandon', ({ reason }) => bump(events, `abandon:${reason}`));
    pl.on('rollback', () => bump(events, 'rollback'));
    pl.on('rollbackError', () => bump(events, 'rollbackError'));
    pl.on('destroy', ({ reason }) => bump(events, `destroy:${reason}`));

    scheduler = new FaultScheduler({ pool: pl, proxy: () => prx, directUrl: srv.url, connectionLimit, readsTable, rng });
    scheduled.scheduler = scheduler;
    const sch = scheduler;

    let stopping = false;
    const probe = new CheckoutProbe(DEFAULT_WORKLOAD.probeRate, rng);
    const ctx: WorkloadContext = {
      pool: pl, ledger, readsTable, twinTable, probe, options: DEFAULT_WORKLOAD, rng,
      stopping: () => stopping, errors: new Map(),
    };
    const startedAt = Date.now();
    log(`seed ${seed}: ${workers} workers, connectionLimit ${connectionLimit}, ${Math.round(options.durationMs / 1000)} s`);
    const running = Array.from({ length: workers }, (_, i) =>
      // Each worker also probes through the pool's fast path now and then.
      worker(ctx, i));
    const poolProbes = (async (): Promise<void> => {
      while (!stopping) {
        await sleep(200 + rng() * 300);
        if (!stopping) await probe.run(pl, 'pool.query');
      }
    })();
    // A recovery now and then, while two-phase scopes are committing (through the proxy, so faults
    // hit it too): it must never make a live scope commit half (the decision record settles the race).
    const xa = { duringRun: { committed: 0, rolledBack: 0, inUse: 0, failed: 0 }, atEnd: { committed: 0, rolledBack: 0 }, halfCommitted: 0, scopes: 0 };
    const recoveries = (async (): Promise<void> => {
      while (!stopping) {
        await sleep(5_000 + rng() * 10_000);
        if (stopping) break;
        try {
          const report = await pl.recoverXa();
          xa.duringRun.committed += report.committed.length;
          xa.duringRun.rolledBack += report.rolledBack.length;
          xa.duringRun.inUse += report.inUse.length;
        } catch {
          xa.duringRun.failed++;
        }
      }
    })();

    // Warm up without faults, then take the heap baseline.
    await sleep(Math.min(5_000, options.durationMs / 10));
    collectGarbage?.();
    const heapBefore = process.memoryUsage();
    sch.start(options.faultIntervalMs ?? 400);

    const restarts: RestartRecord[] = [];
    const restartEvery = options.restartEveryMs ?? 0;
    let nextRestart = restartEvery > 0 ? startedAt + restartEvery : Infinity;
    let nextProgress = startedAt + (options.progressEveryMs ?? 30_000);
    let nextGc = Date.now() + 200;
    const endAt = startedAt + options.durationMs;
    while (Date.now() < endAt) {
      await sleep(50);
      const now = Date.now();
      // Dropped handles only come back through the FinalizationRegistry: let GC find them.
      if (now >= nextGc && collectGarbage) {
        collectGarbage();
        nextGc = now + 200;
      }
      if (now >= nextRestart && endAt - now > 8_000) {
        nextRestart = now + restartEvery;
        const record = await restartServer(srv, pl, sch, connectionLimit, rng, log);
        if (record) restarts.push(record);
        else violations.push('the pool did not recover within 30 s after a server restart');
      }
      if (now >= nextProgress) {
        nextProgress = now + (options.progressEveryMs ?? 30_000);
        const s = pl.stats();
        log(`${Math.round((now - startedAt) / 1000)} s: ${ledger.issued} transactions, ` +
          `${[...sch.fired.values()].reduce((a, b) => a + b, 0)} faults, pool total ${s.total} idle ${s.idle} ` +
          `leased ${s.leased} pending ${s.pendingRollback} waiting ${s.waiting}, heap ${(process.memoryUsage().heapUsed / MB).toFixed(1)} MB`);
      }
    }

    log('stopping faults and workers...');
    await sch.stop();
    stopping = true;
    const finished = await within(Promise.all([...running, poolProbes, recoveries]), 30_000);
    if (!finished) violations.push('workers still running 30 s after the stop (a hang)');

    // Dropped handles still out: collect them, then nothing may stay leased or pending.
    const settled = await waitFor(() => {
      collectGarbage?.();
      const s = pl.stats();
      return s.leased === 0 && s.pendingRollback === 0 && s.waiting === 0;
    }, 15_000);
    if (!settled) violations.push(`connections still leased or pending 15 s after the workers stopped: ${JSON.stringify(pl.stats())}`);

    // A quiet moment first: a connect that failed in a fault is handed to the next waiter by design
    // (one attempt per waiting acquirer; src/pool/resource-pool.ts), and is dropped after 1 s unclaimed.
    await sleep(2_500);
    // Final sweep: every slot of the pool, checked out at once, must be a usable, clean connection.
    const sweep = await finalSweep(pl, connectionLimit);
    violations.push(...sweep.problems);
    const endStats = pl.stats();
    if (endStats.total !== connectionLimit || endStats.idle !== connectionLimit) {
      violations.push(`after the final sweep the pool has total ${endStats.total}, idle ${endStats.idle} (expected ${connectionLimit})`);
    }

    collectGarbage?.();
    const heapAfter = process.memoryUsage();

    await pl.end();
    pool = undefined;
    await prx.close();
    proxy = undefined;

    // What faults left prepared (a lost XA COMMIT, a coordinator cut off) is finished as its decision
    // record says, before the ledger is read: a prepared row is invisible until then.
    const recoverer = createPool({ uri: srv.url, connectionLimit: 1 });
    try {
      const report = await recoverer.recoverXa();
      xa.atEnd.committed = report.committed.length;
      xa.atEnd.rolledBack = report.rolledBack.length;
      if (report.inUse.length > 0) violations.push(`${report.inUse.length} XA branch(es) still owned by a connection after the pool ended`);
    } catch (error) {
      violations.push(`recoverXa() failed at the end: ${describe(error)}`);
    } finally {
      await recoverer.end();
    }

    // A fresh connection: the setup one did not survive the restarts.
    await setup.end().catch(() => undefined);
    setup = await createConnection({ uri: srv.url, connectTimeout: 5_000 });
    const check = await ledger.check(setup);
    // All or nothing: a two-phase scope's token and its twin, whatever the client was told.
    const [[halves]] = (await setup.query(
      `SELECT (SELECT COUNT(*) FROM ${ledgerTable} l WHERE l.kind = 'scopeXa' AND NOT EXISTS (SELECT 1 FROM ${twinTable} t WHERE t.token = l.token)) + ` +
        `(SELECT COUNT(*) FROM ${twinTable} t WHERE NOT EXISTS (SELECT 1 FROM ${ledgerTable} l WHERE l.token = t.token)) AS n`,
    )) as unknown as [[{ n: number }]];
    xa.halfCommitted = Number(halves.n);
    xa.scopes = [...ledger.byKind].filter(([key]) => key.startsWith('scopeXa:')).reduce((a, [, n]) => a + n, 0);
    if (xa.halfCommitted > 0) violations.push(`${xa.halfCommitted} two-phase scope(s) committed on one connection and not the other`);
    const sum = (outcome: string): number =>
      [...ledger.byKind].filter(([key]) => key.endsWith(`:${outcome}`)).reduce((a, [, n]) => a + n, 0);

    const summary: SoakSummary = {
      seed,
      durationMs: Date.now() - startedAt,
      workers,
      connectionLimit,
      transactions: ledger.issued,
      byOutcome: { committed: sum('committed'), notCommitted: sum('notCommitted'), unknown: sum('unknown') },
      byKind: Object.fromEntries([...ledger.byKind].sort()),
      details: Object.fromEntries([...ledger.details].sort((a, b) => b[1] - a[1])),
      ledger: check,
      faults: Object.fromEntries([...sch.fired].sort()),
      landed: Object.fromEntries([...sch.landed].sort()),
      recovery: Object.fromEntries([...sch.recovery].sort()),
      notRecovered: sch.notRecovered.length,
      restarts,
      xa,
      probe: {
        sampled: probe.sampled, withInnodbTrx: probe.withInnodbTrx, staleCacheRechecks: probe.staleCacheRechecks,
        failed: probe.failed, violations: probe.violationCount, finalSweep: sweep.probed,
      },
      pool: { ...endStats },
      events: Object.fromEntries([...events].sort()),
      errors: Object.fromEntries([...ctx.errors].sort((a, b) => b[1] - a[1])),
      heap: {
        beforeMB: round(heapBefore.heapUsed / MB),
        afterMB: round(heapAfter.heapUsed / MB),
        externalBeforeMB: round(heapBefore.external / MB),
        externalAfterMB: round(heapAfter.external / MB),
        ledgerBytes: ledger.bytes,
      },
      unhandledRejections,
      uncaughtExceptions,
      leakedResources: [],
      violations,
    };

    if (violationCount(check) > 0) {
      violations.push(`ledger: ${check.committedMissing} acknowledged commit(s) missing, ${check.notCommittedPresent} ` +
        `certainly-not-committed token(s) present, ${check.pending} without outcome, ${check.strangers} stranger row(s)`);
      for (const v of check.violations) violations.push(`  ${v.what}: token ${v.token} (${v.kind})`);
    }
    if (probe.violationCount > 0) violations.push(...probe.violations.map((v) => v.what));
    for (const [detail, n] of ledger.details) {
      if (detail.includes('workload bug')) violations.push(`${n} transaction(s) the workload could not classify: ${detail}`);
    }
    if (sch.notRecovered.length > 0) {
      violations.push(`${sch.notRecovered.length} fault(s) after which the pool was not back at full size within 20 s: ` +
        sch.notRecovered.slice(0, 10).map((f) => f.kind).join(', '));
    }
    return summary;
  } finally {
    await scheduler?.stop().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    await setup?.end().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    process.removeListener('unhandledRejection', onUnhandled);
    process.removeListener('uncaughtException', onUncaught);
  }
}

/**
 * After teardown: resources (sockets, timers, child processes) this process
 * still has beyond those it had before the soak; waits a little for sockets
 * that are closing. Call after `runSoak` resolved.
 */
export async function leakedResources(before: string[], boundMs = 3_000): Promise<string[]> {
  let leaked: string[] = [];
  await waitFor(() => {
    leaked = multisetMinus(activeResources(), before);
    return leaked.length === 0;
  }, boundMs);
  return leaked;
}

export function activeResources(): string[] {
  return process.getActiveResourcesInfo().filter((name) => name !== 'TTYWrap');
}

/** Kills the server (SIGKILL), starts it again, and measures how long the pool takes to be whole. */
async function restartServer(
  server: ThrowawayServer,
  pool: Pool,
  scheduler: FaultScheduler,
  connectionLimit: number,
  rng: () => number,
  log: (line: string) => void,
): Promise<RestartRecord | undefined> {
  scheduler.pause();
  try {
    const killedAt = Date.now();
    await server.kill();
    scheduler.countOnly('serverRestart');
    await sleep(500 + rng() * 1_000);
    await server.start();
    const upAt = Date.now();
    const recovered = await waitFor(async () => {
      if (pool.stats().total < connectionLimit) return false;
      try {
        await pool.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    }, 30_000, 10);
    const record = { downMs: upAt - killedAt, recoveryMs: Date.now() - upAt };
    log(`server restart: down ${record.downMs} ms, pool back at full size ${record.recoveryMs} ms after the server answered`);
    return recovered ? record : undefined;
  } finally {
    scheduler.resume();
  }
}

/** Checks out every connection at once and probes each: exact and InnoDB's view. */
async function finalSweep(pool: Pool, connectionLimit: number): Promise<{ probed: number; problems: string[] }> {
  const problems: string[] = [];
  const leases = await Promise.allSettled(Array.from({ length: connectionLimit }, () => pool.getConnection()));
  let probed = 0;
  await sleep(200); // INNODB_TRX's cache refreshes only when it was not read for 100 ms
  for (const lease of leases) {
    if (lease.status === 'rejected') {
      problems.push(`final sweep: a checkout failed: ${describe(lease.reason)}`);
      continue;
    }
    try {
      const [rows] = (await lease.value.query(
        'SELECT @@in_transaction AS t, @@autocommit AS a, ' +
          '(SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()) AS n',
      )) as unknown as [Array<{ t: number; a: number; n: number }>];
      const row = rows[0]!;
      probed++;
      if (Number(row.t) !== 0 || Number(row.n) !== 0 || Number(row.a) !== 1) {
        problems.push(`final sweep: connection ${lease.value.threadId} has @@in_transaction ${row.t}, innodb_trx rows ${row.n}, @@autocommit ${row.a}`);
      }
    } catch (error) {
      problems.push(`final sweep: probe failed on connection ${lease.value.threadId}: ${describe(error)}`);
    }
  }
  for (const lease of leases) if (lease.status === 'fulfilled') lease.value.release();
  return { probed, problems };
}

export function formatSummary(s: SoakSummary): string {
  const lines: string[] = [];
  const pct = (n: number): string => `${((100 * n) / Math.max(1, s.transactions)).toFixed(2)} %`;
  lines.push(`rollback-pool ledger soak: ${(s.durationMs / 60_000).toFixed(1)} min, seed ${s.seed}, ${s.workers} workers, connectionLimit ${s.connectionLimit}`);
  lines.push('');
  lines.push(`transactions: ${s.transactions} (${(s.transactions / (s.durationMs / 1000)).toFixed(0)}/s)`);
  lines.push(`  acknowledged commit:     ${s.byOutcome.committed} (${pct(s.byOutcome.committed)}): present ${s.ledger.committedPresent}, missing ${s.ledger.committedMissing}`);
  lines.push(`  certainly not committed: ${s.byOutcome.notCommitted} (${pct(s.byOutcome.notCommitted)}): absent ${s.ledger.notCommittedAbsent}, present ${s.ledger.notCommittedPresent}`);
  lines.push(`  unknown:                 ${s.byOutcome.unknown} (${pct(s.byOutcome.unknown)}): present ${s.ledger.unknownPresent}, absent ${s.ledger.unknownAbsent}`);
  lines.push('  by end kind:');
  const kinds = new Map<string, Record<string, number>>();
  for (const [key, n] of Object.entries(s.byKind)) {
    const [kind, outcome] = key.split(':') as [string, string];
    kinds.set(kind, { ...(kinds.get(kind) ?? {}), [outcome]: n });
  }
  for (const [kind, counts] of kinds) {
    lines.push(`    ${kind.padEnd(11)} ${Object.entries(counts).map(([o, n]) => `${o} ${n}`).join(', ')}`);
  }
  lines.push('  how they ended (top 25):');
  for (const [detail, n] of Object.entries(s.details).slice(0, 25)) lines.push(`    ${String(n).padStart(7)}  ${detail}`);
  lines.push('');
  lines.push(`faults injected: ${Object.values(s.faults).reduce((a, b) => a + b, 0)}`);
  for (const [kind, n] of Object.entries(s.faults)) {
    const r = s.recovery[kind];
    const rec = r ? `pool back at full size: mean ${Math.round(r.totalMs / r.count)} ms, max ${r.maxMs} ms` : '';
    lines.push(`  ${kind.padEnd(26)} ${String(n).padStart(5)}   ${rec}`);
  }
  lines.push('  targeted kills landed:');
  for (const [how, n] of Object.entries(s.landed)) lines.push(`    ${String(n).padStart(5)}  ${how}`);
  lines.push(`  server restarts: ${s.restarts.length}` + (s.restarts.length
    ? ` (recovery after the server answered: ${s.restarts.map((r) => `${r.recoveryMs} ms`).join(', ')}; down ${s.restarts.map((r) => `${r.downMs} ms`).join(', ')})`
    : ''));
  lines.push('');
  lines.push(`two-phase scopes: ${s.xa.scopes}, committed on one connection only: ${s.xa.halfCommitted}; ` +
    `recoverXa during the run: ${s.xa.duringRun.committed} committed, ${s.xa.duringRun.rolledBack} rolled back, ` +
    `${s.xa.duringRun.inUse} in use, ${s.xa.duringRun.failed} failed (faults); at the end: ${s.xa.atEnd.committed} committed, ${s.xa.atEnd.rolledBack} rolled back`);
  lines.push(`checkout probes: ${s.probe.sampled} sampled (${s.probe.withInnodbTrx} with innodb_trx; ${s.probe.staleCacheRechecks} stale-cache rechecks cleared; ${s.probe.failed} hit by a fault), ${s.probe.violations} inside a transaction; final sweep probed ${s.probe.finalSweep} of ${s.connectionLimit}`);
  lines.push(`pool at the end: ${JSON.stringify(s.pool)}`);
  lines.push(`pool events: ${JSON.stringify(s.events)}`);
  lines.push(`errors seen by the workload (top 12): ${Object.entries(s.errors).slice(0, 12).map(([c, n]) => `${c} x${n}`).join(', ')}`);
  lines.push(`heap used after GC: ${s.heap.beforeMB} MB after warm-up, ${s.heap.afterMB} MB at the end (external ${s.heap.externalBeforeMB} -> ${s.heap.externalAfterMB} MB; the ledger record is ${Math.round(s.heap.ledgerBytes / 1024)} KB of typed arrays)`);
  lines.push(`unhandled rejections: ${s.unhandledRejections.length}, uncaught exceptions: ${s.uncaughtExceptions.length}, leaked handles/timers after teardown: ${s.leakedResources.length ? s.leakedResources.join(', ') : 'none'}`);
  lines.push('');
  lines.push(`VIOLATIONS: ${s.violations.length}`);
  for (const v of s.violations.slice(0, 60)) lines.push(`  ${v}`);
  return lines.join('\n');
}

/** What every soak summary reports about its own process, checked at the end. */
export interface ProcessChecks {
  leakedResources: string[];
  violations: string[];
  unhandledRejections: string[];
  uncaughtExceptions: string[];
}

/** Records what teardown left behind and turns unhandled rejections and uncaught exceptions into violations. */
export function finalize<S extends ProcessChecks>(summary: S, leaked: string[]): S {
  summary.leakedResources = leaked;
  if (leaked.length > 0) summary.violations.push(`handles or timers left after teardown: ${leaked.join(', ')}`);
  for (const r of summary.unhandledRejections) summary.violations.push(`unhandled rejection: ${r}`);
  for (const e of summary.uncaughtExceptions) summary.violations.push(`uncaught exception: ${e}`);
  return summary;
}

export function gcFunction(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/** Polls `check` every `intervalMs` until it holds (true) or `boundMs` passed (false). */
export async function waitFor(check: () => boolean | Promise<boolean>, boundMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

export async function within(work: Promise<unknown>, boundMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), boundMs);
  });
  try {
    return await Promise.race([work.then(() => true), bound]);
  } finally {
    clearTimeout(timer);
  }
}

function multisetMinus(after: string[], before: string[]): string[] {
  const left = new Map<string, number>();
  for (const name of before) left.set(name, (left.get(name) ?? 0) + 1);
  const extra: string[] = [];
  for (const name of after) {
    const n = left.get(name) ?? 0;
    if (n > 0) left.set(name, n - 1);
    else extra.push(name);
  }
  return extra;
}

export function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`.slice(0, 300);
  return String(value).slice(0, 300);
}

export function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** A small seeded PRNG, so a run's random choices can be replayed (timing still varies). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
