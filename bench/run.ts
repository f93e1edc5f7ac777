/**
 * `npm run bench`: rollback-pool vs mysql2's pool (default) and the mariadb
 * connector's pool, side by side in one process, in interleaved timed rounds,
 * in several shapes (callers on connectionLimit: 1 and 32 on 32, 32 on 8, 1 on
 * 4); then transactions (`pool.transaction()` against the same by hand, and
 * abandoning 1 in 5 transactions against rolling them back explicitly);
 * session hygiene (`resetOnRelease: 'whenDirty'` against our default and
 * mysql2's resetOnRelease, and the cost of one dirty release); where the
 * client CPU goes (a sampled profile of each pool); how long an abandoned
 * transaction's row lock outlives its release; memory (a child process).
 *
 * Flags: --quick (fewer and shorter rounds), --json (print the results as
 * JSON instead of markdown), --write (also write BENCHMARKS.md from this run),
 * --dist[=DIR] (benchmark the compiled package, default dist/ after `npm run
 * build`, instead of the TypeScript source run through tsx), --replica (only
 * the read-replica benchmark of bench/replica.ts, on private servers).
 * Progress goes to stderr.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, type } from 'node:os';
import { join } from 'node:path';
import { createConnection, createPool as createMysql2Pool, type Connection, type RowDataPacket } from 'mysql2/promise';
import { ensureServer, redactUrl, type DatabaseServer } from '../scripts/server';
import { CONTENDER_LABELS, createContender, createOurPool, loadMariadb, mariadbVersion, ourCodeLabel, useBuild, type BenchPool, type ContenderId, type OurPool } from './contenders';
import { releaseCostTrials, summarizeCost, type ReleaseCostRow } from './hygiene';
import type { MemoryReport } from './memory';
import { whereTimeGoes, type WhereRow } from './where';
import { abandonTrials, baselineTrials, createLockTable, summarize, type LockLatencyRow } from './lock-latency';
import {
  benchmarksMarkdown,
  consoleReport,
  machineLine,
  type AbandonCheck,
  type BenchReport,
  type CaseResult,
  type Comparison,
  type EntrantResult,
  type Machine,
  type Settings,
  type TableId,
  type Targets,
  WHEN_DIRTY_LABEL,
} from './report';
import { replicaBench } from './replica';
import { median, percentile } from './stats';
import {
  abandonEntrants,
  ABANDON_LABEL,
  countLog,
  createBenchTable,
  createLogTable,
  poolEntrant,
  runFor,
  txEntrants,
  TX_LABEL,
  workloads,
  type AbandonEntrants,
  type Entrant,
  type WorkloadId,
} from './workloads';

/**
 * The shapes measured: a pool as large as the concurrency, a pool smaller than
 * the concurrency (acquirers wait: the shape most services run), and one
 * caller on a small pool. Grouped by connectionLimit: the pools of a group
 * are opened for it and closed after it.
 */
const SHAPES: ReadonlyArray<{ connectionLimit: number; concurrencies: readonly number[] }> = [
  { connectionLimit: 32, concurrencies: [1, 32] },
  { connectionLimit: 8, concurrencies: [32] },
  { connectionLimit: 4, concurrencies: [1] },
];
/** Issue 12: ours against mysql2's default pool, throughput at least this, client CPU per op at most 1/this. */
const TARGET_VS_MYSQL2 = 1.0;
const TARGET_CPU_VS_MYSQL2 = 1.0;
/** Abandoning a share of the transactions against rolling them back explicitly. */
const TARGET_ABANDON_VS_EXPLICIT = 0.95;
/** Issue 14: 'whenDirty' on clean workloads against our default, and against mysql2's resetOnRelease, at concurrency 32. */
const TARGET_WHEN_DIRTY_VS_DEFAULT = 0.97;
const TARGET_WHEN_DIRTY_VS_RESET = 3;
/** Workloads of the session hygiene table (clean, short). */
const HYGIENE_WORKLOADS = new Set<WorkloadId>(['execute', 'checkout']);
/** The shape of "where the client CPU goes" (more callers than connections). */
const WHERE_SHAPE = { connectionLimit: 8, concurrency: 32, workload: 'checkout' as WorkloadId };

class UsageError extends Error {}

/** A workload and the entrants that run it, measured at each concurrency of its group. */
interface CaseSpec {
  table: TableId;
  workload: string;
  label: string;
  entrants: Entrant[];
  concurrencies: readonly number[];
  /** Targets of ours against that entrant, by entrant id (none: shown for context only). */
  targets: Record<string, Targets | undefined>;
}

interface Flags {
  quick: boolean;
  json: boolean;
  write: boolean;
  /** Benchmark the compiled package in this directory instead of src/. */
  dist: string | undefined;
  /** Only the read-replica benchmark. */
  replica: boolean;
}

function parseFlags(argv: string[]): Flags {
  const flags: Flags = { quick: false, json: false, write: false, dist: undefined, replica: false };
  for (const arg of argv) {
    if (arg === '--quick') flags.quick = true;
    else if (arg === '--json') flags.json = true;
    else if (arg === '--write') flags.write = true;
    else if (arg === '--dist') flags.dist = join(__dirname, '..', 'dist');
    else if (arg.startsWith('--dist=')) flags.dist = arg.slice('--dist='.length);
    else if (arg === '--replica') flags.replica = true;
    else throw new UsageError(`unknown argument ${arg} (accepted: --quick, --json, --write, --dist[=DIR], --replica)`);
  }
  if (flags.replica && (flags.json || flags.write)) throw new UsageError('--replica prints markdown only (no --json, --write)');
  return flags;
}

/**
 * The default run: 66 entrant-cases x 20 rounds x 250 ms is about 5.5 minutes of
 * measurement, plus warm-ups, the release and lock trials and the memory child:
 * about 7 minutes. Rounds are timed rather than counted so that every entrant
 * samples the machine for as long as the others in the same round.
 */
function settingsFor(quick: boolean, args: string[]): Settings {
  const common = { quick, shapes: shapeLabel(), code: ourCodeLabel(), revision: revision(), args };
  return quick
    ? { ...common, rounds: 4, roundMs: 100, lockTrials: 30, releaseTrials: 50, whereMs: 400 }
    : { ...common, rounds: 20, roundMs: 250, lockTrials: 200, releaseTrials: 500, whereMs: 1_500 };
}

function shapeLabel(): string {
  return SHAPES.map((shape) => shape.concurrencies.map((c) => `${c} caller${c === 1 ? '' : 's'} on ${shape.connectionLimit}`).join(', ')).join(', ');
}

/** The commit the measured code comes from, and any uncommitted changes to it (src/), for the report. */
function revision(): string {
  const git = (...gitArgs: string[]): string =>
    execFileSync('git', gitArgs, { cwd: join(__dirname, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git('rev-parse', '--short', 'HEAD');
    const changed = git('status', '--porcelain', '--', 'src').split('\n').filter(Boolean).map((line) => line.slice(3));
    return changed.length === 0 ? `commit ${commit}` : `commit ${commit} plus uncommitted changes to ${changed.join(', ')}`;
  } catch {
    return 'unknown revision (not a git checkout)';
  }
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flags = parseFlags(args);
  if (flags.dist !== undefined) useBuild(flags.dist);
  if (flags.replica) {
    process.stdout.write(`\n${await replicaBench(flags.quick)}`);
    return;
  }
  await loadMariadb();
  const settings = settingsFor(flags.quick, args);
  const server = await ensureServer();
  const cleanups: Array<() => Promise<void>> = [() => server.stop()];
  try {
    const report = await run(server, settings, flags, cleanups);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      process.stdout.write(`\n${consoleReport(report)}`);
    }
    if (flags.write) {
      const path = join(__dirname, '..', 'BENCHMARKS.md');
      writeFileSync(path, benchmarksMarkdown(report));
      progress(`wrote ${path}`);
    }
    if (!report.abandonCheck.ok) {
      progress('the check of the abandoned transactions failed');
      process.exitCode = 1;
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(warn);
  }
}

async function run(server: DatabaseServer, settings: Settings, flags: Flags, cleanups: Array<() => Promise<void>>): Promise<BenchReport> {
  const startedAt = performance.now();
  const side = await createConnection({ uri: server.url, connectTimeout: 5_000 });
  cleanups.push(() => side.end());
  await side.query('SET SESSION innodb_lock_wait_timeout = 1');
  const machine = await describeMachine(side);
  progress(`bench on ${redactUrl(server.url)}: ${machineLine(machine)}`);
  if (machine.loadAverage > machine.nproc / 2) {
    progress(`warning: the machine is busy (load average ${machine.loadAverage.toFixed(2)} on ${machine.nproc} CPUs); expect noisy results`);
  }

  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const table = `rp_bench_${suffix}`;
  const lockTableName = `rp_bench_lock_${suffix}`;
  await createBenchTable(side, table);
  cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${table}`).then(noValue));
  await createLockTable(side, lockTableName);
  cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${lockTableName}`).then(noValue));

  const cases: CaseResult[] = [];
  const checks: AbandonCheck[] = [];
  let where: WhereRow[] = [];
  const total = SHAPES.reduce((n, shape) => n + shape.concurrencies.length * (workloads(table).length + 2), 0) +
    SHAPES[0]!.concurrencies.length * HYGIENE_WORKLOADS.size;
  const measureAll = async (group: CaseSpec[], connectionLimit: number): Promise<void> => {
    await warmUp(group.flatMap((c) => c.entrants), settings, connectionLimit);
    for (const c of group) {
      for (const concurrency of c.concurrencies) {
        progress(`[${cases.length + 1}/${total}] ${c.label}, connectionLimit ${connectionLimit}, concurrency ${concurrency}`);
        cases.push(await measureCase(c, connectionLimit, concurrency, settings));
      }
    }
  };

  for (const shape of SHAPES) {
    const { connectionLimit, concurrencies } = shape;
    // At most three pools of 32 connections open at any time (MariaDB's default max_connections is 151).
    const ours = createOurPool(server.url, connectionLimit);
    const mysql2 = createContender('mysql2', server.url, connectionLimit).pool;
    const mariadb = createContender('mariadb', server.url, connectionLimit).pool;
    const ends = [ours, mysql2, mariadb].map((pool) => once(() => pool.end()));
    cleanups.push(...ends);
    const entrant = (id: ContenderId, pool: BenchPool, workload: (typeof poolWorkloads)[number]): Entrant =>
      poolEntrant(id, CONTENDER_LABELS[id], pool, workload);
    const poolWorkloads = workloads(table);
    const poolCases = poolWorkloads.map((workload): CaseSpec => ({
      table: 'pool',
      workload: workload.id,
      label: workload.label,
      concurrencies,
      entrants: [entrant('ours', ours, workload), entrant('mysql2', mysql2, workload), entrant('mariadb', mariadb, workload)],
      targets: { mysql2: { ratio: TARGET_VS_MYSQL2, cpu: TARGET_CPU_VS_MYSQL2 }, mariadb: undefined },
    }));
    const logTable = `rp_bench_log_${suffix}_${connectionLimit}`;
    await createLogTable(side, logTable);
    cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${logTable}`).then(noValue));
    const abandon = abandonEntrants(logTable, ours, mysql2);
    const txCases: CaseSpec[] = [
      {
        table: 'tx',
        workload: 'poolTransaction',
        label: TX_LABEL,
        concurrencies,
        entrants: txEntrants(table, ours, mysql2, [{ id: 'mariadb', label: `${CONTENDER_LABELS.mariadb} by hand`, pool: mariadb }]),
        targets: { mysql2: { ratio: TARGET_VS_MYSQL2 }, mariadb: undefined },
      },
      {
        table: 'abandon',
        workload: 'abandon',
        label: ABANDON_LABEL,
        concurrencies,
        entrants: abandon.entrants,
        targets: { oursExplicit: { ratio: TARGET_ABANDON_VS_EXPLICIT }, mysql2: undefined },
      },
    ];
    await measureAll([...poolCases, ...txCases], connectionLimit);
    const check = await checkAbandoned(side, logTable, ours, abandon);
    checks.push({ ok: check.ok, lines: check.lines.map((line) => `connectionLimit ${connectionLimit}: ${line}`) });
    progress(check.lines.join('\n'));

    if (connectionLimit === WHERE_SHAPE.connectionLimit) {
      progress(`where the client CPU goes (${WHERE_SHAPE.workload}, ${WHERE_SHAPE.concurrency} callers on ${connectionLimit})`);
      const workload = poolWorkloads.find((w) => w.id === WHERE_SHAPE.workload)!;
      where = await whereTimeGoes(
        [entrant('ours', ours, workload), entrant('mysql2', mysql2, workload), entrant('mariadb', mariadb, workload)],
        settings.whereMs,
        WHERE_SHAPE.concurrency,
      );
    }

    await ends[1]!();
    await ends[2]!();
    if (connectionLimit === SHAPES[0]!.connectionLimit) {
      // Session hygiene (issue 14): 'whenDirty' on clean workloads, against our default and mysql2's resetOnRelease.
      const whenDirty = createOurPool(server.url, connectionLimit, undefined, { resetOnRelease: 'whenDirty' });
      const reset = createContender('mysql2Reset', server.url, connectionLimit).pool;
      const hygieneEnds = [whenDirty, reset].map((pool) => once(() => pool.end()));
      cleanups.push(...hygieneEnds);
      const hygieneCases = poolWorkloads
        .filter((workload) => HYGIENE_WORKLOADS.has(workload.id))
        .map((workload): CaseSpec => ({
          table: 'hygiene',
          workload: workload.id,
          label: workload.label,
          concurrencies,
          entrants: [
            poolEntrant('ours', WHEN_DIRTY_LABEL, whenDirty, workload),
            poolEntrant('oursDefault', CONTENDER_LABELS.ours, ours, workload),
            entrant('mysql2Reset', reset, workload),
          ],
          targets: { oursDefault: { ratio: TARGET_WHEN_DIRTY_VS_DEFAULT, only32: true }, mysql2Reset: { ratio: TARGET_WHEN_DIRTY_VS_RESET, only32: true } },
        }));
      await measureAll(hygieneCases, connectionLimit);
      for (const end of hygieneEnds) await end();
    }
    await ends[0]!();
  }
  const abandonCheck: AbandonCheck = { ok: checks.every((check) => check.ok), lines: checks.flatMap((check) => check.lines) };

  progress('cost of one dirty release (resetOnRelease: whenDirty, connectionLimit 1)');
  const releaseCost = await measureReleaseCost(server.url, settings.releaseTrials, cleanups);
  progress('row lock of an abandoned transaction');
  const lockLatency = await measureLockLatency(server.url, side, lockTableName, settings.lockTrials, cleanups);
  progress('memory (a child process with --expose-gc)');
  const memory = measureMemory(flags, settings.quick);
  return {
    date: new Date().toISOString().slice(0, 10),
    durationS: (performance.now() - startedAt) / 1_000,
    machine,
    settings,
    cases,
    abandonCheck,
    lockLatency,
    releaseCost,
    where,
    whereShape: WHERE_SHAPE,
    memory,
  };
}

/** The memory figures, from bench/memory.ts in a child process (its own heap, --expose-gc). */
function measureMemory(flags: Flags, quick: boolean): MemoryReport | undefined {
  const args = [...process.execArgv, '--expose-gc', join(__dirname, 'memory.ts')];
  if (flags.dist !== undefined) args.push(`--dist=${flags.dist}`);
  if (quick) args.push('--quick');
  try {
    const out = execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000 });
    return JSON.parse(out.trim().split('\n').pop() as string) as MemoryReport;
  } catch (error) {
    progress(`memory: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

async function measureReleaseCost(url: string, trials: number, cleanups: Array<() => Promise<void>>): Promise<ReleaseCostRow[]> {
  const whenDirty = createOurPool(url, 1, undefined, { resetOnRelease: 'whenDirty' });
  const reset = createContender('mysql2Reset', url, 1).pool;
  const ends = [whenDirty, reset].map((pool) => once(() => pool.end()));
  cleanups.push(...ends);
  const dirty = 'SET @x = 1';
  const clean = 'SELECT 1';
  // Warm-up: connect, settle.
  await releaseCostTrials(whenDirty, 20, dirty, whenDirty);
  await releaseCostTrials(reset, 20, dirty);
  const rows = [
    summarizeCost(`rollback-pool, \`resetOnRelease: 'whenDirty'\`, lease ran \`${dirty}\``, await releaseCostTrials(whenDirty, trials, dirty, whenDirty),
      'reset (COM_RESET_CONNECTION + baseline) in the background at release; the next checkout waits for it'),
    summarizeCost(`rollback-pool, \`resetOnRelease: 'whenDirty'\`, lease ran \`${clean}\``, await releaseCostTrials(whenDirty, trials, clean, whenDirty),
      'clean: no reset, the next checkout is served at once'),
    summarizeCost(`mysql2, \`resetOnRelease: true\`, lease ran \`${dirty}\``, await releaseCostTrials(reset, trials, dirty),
      'COM_RESET_CONNECTION on every release, dirty or not'),
  ];
  for (const end of ends) await end();
  return rows;
}

/** Opens every connection of every pool and prepares the statements on each (and lets the JIT settle). */
async function warmUp(entrants: Entrant[], settings: Settings, connectionLimit: number): Promise<void> {
  progress('warming up');
  const ms = settings.quick ? 150 : 300;
  for (const entrant of entrants) {
    await runFor(entrant, ms, Math.max(connectionLimit, 32));
    await runFor(entrant, ms / 2, 1);
  }
}

/** Every order of `n` entrants, the rotations first: round r runs them in orders[r % orders.length]. */
function orders(n: number): number[][] {
  const all: number[][] = [];
  const permute = (prefix: number[], rest: number[]): void => {
    if (rest.length === 0) all.push(prefix);
    rest.forEach((item, i) => permute([...prefix, item], [...rest.slice(0, i), ...rest.slice(i + 1)]));
  };
  permute([], Array.from({ length: n }, (_, i) => i));
  const rotation = (order: number[]): boolean => order.every((item, i) => item === (order[0]! + i) % n);
  return [...all.filter(rotation), ...all.filter((order) => !rotation(order))];
}

async function measureCase(c: CaseSpec, connectionLimit: number, concurrency: number, settings: Settings): Promise<CaseResult> {
  const { entrants } = c;
  const results: Record<string, EntrantResult> = {};
  for (const entrant of entrants) results[entrant.id] = { label: entrant.label, opsPerSec: 0, cpuUsPerOp: 0, rounds: [], cpuRounds: [], ops: [] };
  const sequence = orders(entrants.length);
  for (let round = 0; round < settings.rounds; round++) {
    // A new order every round, so no entrant always runs first, or right after a given one.
    for (const index of sequence[round % sequence.length]!) {
      const entrant = entrants[index]!;
      const result = await runFor(entrant, settings.roundMs, concurrency);
      const into = results[entrant.id]!;
      into.rounds.push(result.opsPerSec);
      into.cpuRounds.push(result.cpuUsPerOp);
      into.ops.push(result.ops);
    }
  }
  for (const result of Object.values(results)) {
    result.opsPerSec = median(result.rounds);
    result.cpuUsPerOp = median(result.cpuRounds);
  }
  const ours = results.ours!;
  const vs: Record<string, Comparison> = {};
  for (const [id, other] of Object.entries(results)) {
    if (id === 'ours') continue;
    // Paired by round: ours is compared with the other measured moments apart.
    const perRound = ours.rounds.map((value, i) => value / other.rounds[i]!);
    const cpuPerRound = ours.cpuRounds.map((value, i) => value / other.cpuRounds[i]!);
    const ratio = median(perRound);
    const cpuRatio = median(cpuPerRound);
    const targets = c.targets[id];
    const applies = targets !== undefined && (!targets.only32 || concurrency === 32);
    const target = applies ? targets.ratio : undefined;
    const cpuTarget = applies ? targets.cpu : undefined;
    vs[id] = {
      ratio,
      quartiles: [percentile(perRound, 25), percentile(perRound, 75)],
      range: [Math.min(...perRound), Math.max(...perRound)],
      cpuRatio,
      cpuQuartiles: [percentile(cpuPerRound, 25), percentile(cpuPerRound, 75)],
      target,
      pass: target === undefined ? undefined : ratio >= target,
      cpuTarget,
      cpuPass: cpuTarget === undefined ? undefined : cpuRatio <= cpuTarget,
    };
  }
  return { table: c.table, workload: c.workload, label: c.label, connectionLimit, concurrency, entrants: results, vs };
}

/** After workload (b): the abandoned transactions' rows must be gone and the committed ones there. */
async function checkAbandoned(side: Connection, logTable: string, ours: OurPool, abandon: AbandonEntrants): Promise<AbandonCheck> {
  const deadline = performance.now() + 5_000;
  let stats = ours.stats();
  while (stats.rolledBack + stats.rollbackFailures < stats.abandoned && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    stats = ours.stats();
  }
  const found = await countLog(side, logTable);
  const lines: string[] = [];
  let ok = true;
  abandon.entrants.forEach((entrant, index) => {
    const expected = abandon.counts[entrant.id]!;
    const inTable = found.get(index + 1) ?? { committed: 0, abandoned: 0 };
    const good = inTable.committed === expected.committed && inTable.abandoned === 0;
    let line = `${entrant.label}: ${formatCount(inTable.committed)} rows found of ${formatCount(expected.committed)} committed transactions, ` +
      `${formatCount(inTable.abandoned)} rows of its ${formatCount(expected.abandoned)} abandoned or rolled back ones`;
    if (entrant.id === 'ours') {
      const poolGood = stats.abandoned === expected.abandoned && stats.rolledBack === expected.abandoned && stats.rollbackFailures === 0;
      line += ` (the pool counted ${formatCount(stats.abandoned)} abandoned, ${formatCount(stats.rolledBack)} rolled back, ` +
        `${formatCount(stats.rollbackFailures)} rollback failures)`;
      ok &&= poolGood;
      line += poolGood && good ? ': OK' : ': **WRONG**';
    } else {
      line += good ? ': OK' : ': **WRONG**';
    }
    ok &&= good;
    lines.push(line);
  });
  return { ok, lines };
}

async function measureLockLatency(url: string, side: Connection, table: string, trials: number, cleanups: Array<() => Promise<void>>): Promise<LockLatencyRow[]> {
  // Each trial is sequential, so one connection is enough; more would not change anything.
  const open = (pool: BenchPool): BenchPool => {
    cleanups.push(() => pool.end());
    return pool;
  };
  const eager = open(createOurPool(url, 1, 'release'));
  const lazy = open(createOurPool(url, 1, 'checkout'));
  const reset = open(createMysql2Pool({ uri: url, connectionLimit: 1, resetOnRelease: true }));
  const plain = open(createMysql2Pool({ uri: url, connectionLimit: 1 }));
  const heldTrials = Math.min(2, trials);
  const rollBackByHand = async (pool: BenchPool): Promise<void> => {
    const conn = await pool.getConnection();
    await conn.rollback();
    conn.release();
  };
  const checkOutOnce = async (pool: BenchPool): Promise<void> => {
    (await pool.getConnection()).release();
  };
  // Warm-up: connect and settle each pool (and the observer) before sampling.
  for (const pool of [eager, lazy, reset]) await abandonTrials(pool, side, table, 10, { nextCheckout: true });

  const rows: LockLatencyRow[] = [];
  rows.push(summarize('rollback-pool, `cleanup: \'release\'` (default)', await abandonTrials(eager, side, table, trials, { nextCheckout: false }),
    'ROLLBACK starts in the background at release; no next checkout needed'));
  rows.push(summarize('rollback-pool, `cleanup: \'checkout\'`, next getConnection() right after the release',
    await abandonTrials(lazy, side, table, trials, { nextCheckout: true }), 'the ROLLBACK runs when the next checkout takes the connection'));
  rows.push(summarize('rollback-pool, `cleanup: \'checkout\'`, no next checkout',
    await abandonTrials(lazy, side, table, heldTrials, { nextCheckout: false, repair: checkOutOnce }), 'held until the next checkout'));
  rows.push(summarize('mysql2, `resetOnRelease: true`', await abandonTrials(reset, side, table, trials, { nextCheckout: false }),
    'COM_RESET_CONNECTION on every release (clean or not)'));
  rows.push(summarize('mysql2, default', await abandonTrials(plain, side, table, heldTrials, { nextCheckout: false, repair: rollBackByHand }),
    'held until the connection is reused (and then joined or committed by its next user)'));
  rows.push(summarize('baseline: the observer\'s SELECT ... FOR UPDATE on a free row', await baselineTrials(side, table, trials),
    'one round trip; the floor of every row above'));
  return rows;
}

async function describeMachine(side: Connection): Promise<Machine> {
  const [rows] = await side.query<VersionRow[]>('SELECT VERSION() AS v');
  const mysql2Version = (require('mysql2/package.json') as { version: string }).version;
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    os: `${type()} ${release()}`,
    node: process.version,
    server: String(rows[0]?.v ?? 'unknown'),
    mysql2: mysql2Version,
    mariadb: mariadbVersion(),
    loadAverage: loadavg()[0] ?? 0,
  };
}

interface VersionRow extends RowDataPacket {
  v: string;
}

function warn(error: unknown): void {
  progress(`cleanup: ${error instanceof Error ? error.message : String(error)}`);
}

/** A function that runs `fn` the first time and returns that same promise afterwards. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => (result ??= fn());
}

function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

function noValue(): void {
  return undefined;
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) progress(error.message);
  else progress(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
