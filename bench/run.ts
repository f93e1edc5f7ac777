/**
 * `npm run bench`: rollback-pool vs mysql2's pool (default, and resetOnRelease),
 * side by side in one process, in interleaved timed rounds; then transactions
 * (`pool.transaction()` against the same by hand on mysql2, and abandoning 1 in
 * 5 transactions against rolling them back explicitly); then how long an
 * abandoned transaction's row lock outlives its release.
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
import { CONTENDER_LABELS, createContender, createOurPool, ourCodeLabel, useBuild, type BenchPool, type Contender, type OurPool } from './contenders';
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

const CONNECTION_LIMIT = 32;
const CONCURRENCIES = [1, 32] as const;
const TARGET_VS_MYSQL2 = 0.95;
const TARGET_VS_RESET = 3;
/** Abandoning a share of the transactions against rolling them back explicitly. */
const TARGET_ABANDON_VS_EXPLICIT = 0.9;
/** Workloads with a target against resetOnRelease (short queries). */
const RESET_TARGET_WORKLOADS = new Set<WorkloadId>(['execute', 'checkout']);

class UsageError extends Error {}

/** A workload and the entrants that run it, measured at each concurrency. */
interface CaseSpec {
  table: TableId;
  workload: string;
  label: string;
  entrants: Entrant[];
  /** Target of ours / that entrant, by entrant id (undefined: shown for context only). */
  targets: Record<string, number | undefined>;
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
 * The default run: 10 cases x 25 rounds x 2-3 entrants x 250 ms is about 3 minutes of
 * measurement, plus warm-up and the lock trials. Rounds are timed rather than counted so
 * that every entrant samples the machine for as long as the others in the same round.
 */
function settingsFor(quick: boolean, args: string[]): Settings {
  const common = { quick, connectionLimit: CONNECTION_LIMIT, code: ourCodeLabel(), revision: revision(), args };
  return quick ? { ...common, rounds: 5, roundMs: 100, lockTrials: 50 } : { ...common, rounds: 25, roundMs: 250, lockTrials: 200 };
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
  const settings = settingsFor(flags.quick, args);
  const server = await ensureServer();
  const cleanups: Array<() => Promise<void>> = [() => server.stop()];
  try {
    const report = await run(server, settings, cleanups);
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

async function run(server: DatabaseServer, settings: Settings, cleanups: Array<() => Promise<void>>): Promise<BenchReport> {
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
  const logTable = `rp_bench_log_${suffix}`;
  const lockTableName = `rp_bench_lock_${suffix}`;
  await createBenchTable(side, table);
  cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${table}`).then(noValue));
  await createLogTable(side, logTable);
  cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${logTable}`).then(noValue));
  await createLockTable(side, lockTableName);
  cleanups.push(() => side.query(`DROP TABLE IF EXISTS ${lockTableName}`).then(noValue));

  // 3 pools of 32 connections at most at any time (MariaDB's default max_connections is 151).
  const ours = createOurPool(server.url, CONNECTION_LIMIT);
  const contenders: Contender[] = [
    { id: 'ours', label: CONTENDER_LABELS.ours, pool: ours },
    createContender('mysql2', server.url, CONNECTION_LIMIT),
    createContender('mysql2Reset', server.url, CONNECTION_LIMIT),
  ];
  const ends = new Map(contenders.map((contender) => [contender.id, once(() => contender.pool.end())]));
  cleanups.push(...ends.values());
  const mysql2 = contenders[1]!.pool;

  const poolCases = workloads(table).map((workload): CaseSpec => ({
    table: 'pool',
    workload: workload.id,
    label: workload.label,
    entrants: contenders.map((contender) => poolEntrant(contender.id, contender.label, contender.pool, workload)),
    targets: { mysql2: TARGET_VS_MYSQL2, mysql2Reset: RESET_TARGET_WORKLOADS.has(workload.id) ? TARGET_VS_RESET : undefined },
  }));
  const abandon = abandonEntrants(logTable, ours, mysql2);
  const txCases: CaseSpec[] = [
    { table: 'tx', workload: 'poolTransaction', label: TX_LABEL, entrants: txEntrants(table, ours, mysql2), targets: { mysql2: TARGET_VS_MYSQL2 } },
    {
      table: 'abandon',
      workload: 'abandon',
      label: ABANDON_LABEL,
      entrants: abandon.entrants,
      targets: { oursExplicit: TARGET_ABANDON_VS_EXPLICIT, mysql2: undefined },
    },
  ];

  const cases: CaseResult[] = [];
  const total = (poolCases.length + txCases.length) * CONCURRENCIES.length;
  const measureAll = async (group: CaseSpec[]): Promise<void> => {
    for (const c of group) {
      for (const concurrency of CONCURRENCIES) {
        progress(`[${cases.length + 1}/${total}] ${c.label}, concurrency ${concurrency}`);
        cases.push(await measureCase(c.table, c.workload, c.label, c.entrants, concurrency, settings, c.targets));
      }
    }
  };

  await warmUp(poolCases.flatMap((c) => c.entrants), settings);
  await measureAll(poolCases);
  // resetOnRelease has no part in the transaction tables: close it, so that its connections do not share the CPU.
  await ends.get('mysql2Reset')!();
  await warmUp(txCases.flatMap((c) => c.entrants), settings);
  await measureAll(txCases);
  const abandonCheck = await checkAbandoned(side, logTable, ours, abandon);
  progress(abandonCheck.lines.join('\n'));
  // Close the throughput pools before the lock trials, so the two parts do not share CPU.
  for (const end of ends.values()) await end();

  progress('row lock of an abandoned transaction');
  const lockLatency = await measureLockLatency(server.url, side, lockTableName, settings.lockTrials, cleanups);
  return {
    date: new Date().toISOString().slice(0, 10),
    durationS: (performance.now() - startedAt) / 1_000,
    machine,
    settings,
    cases,
    abandonCheck,
    lockLatency,
  };
}

/** Opens every connection of every pool and prepares the statements on each (and lets the JIT settle). */
async function warmUp(entrants: Entrant[], settings: Settings): Promise<void> {
  progress('warming up');
  const ms = settings.quick ? 150 : 300;
  for (const entrant of entrants) {
    await runFor(entrant, ms, CONNECTION_LIMIT);
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

async function measureCase(
  table: TableId,
  workload: string,
  label: string,
  entrants: Entrant[],
  concurrency: number,
  settings: Settings,
  targets: Record<string, number | undefined>,
): Promise<CaseResult> {
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
    const target = targets[id];
    vs[id] = {
      ratio,
      quartiles: [percentile(perRound, 25), percentile(perRound, 75)],
      range: [Math.min(...perRound), Math.max(...perRound)],
      cpuRatio: median(cpuPerRound),
      target,
      pass: target === undefined ? undefined : ratio >= target,
    };
  }
  return { table, workload, label, concurrency, entrants: results, vs };
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
