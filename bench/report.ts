/** The benchmark's results, and their rendering as markdown (stdout and BENCHMARKS.md). */
import type { ReleaseCostRow } from './hygiene';
import type { LockLatencyRow } from './lock-latency';
import type { MemoryReport } from './memory';
import { CATEGORIES, type WhereRow } from './where';
import { ABANDON_EVERY, TABLE_ROWS } from './workloads';

export interface Machine {
  nproc: number;
  cpu: string;
  os: string;
  node: string;
  server: string;
  mysql2: string;
  mariadb: string;
  /** 1-minute load average when the run started: other work on the machine makes results noisy. */
  loadAverage: number;
}

export interface Settings {
  quick: boolean;
  rounds: number;
  /** How long each entrant runs in each round. */
  roundMs: number;
  /** The shapes measured (callers on connectionLimit), in words. */
  shapes: string;
  lockTrials: number;
  releaseTrials: number;
  /** How long each pool is profiled for "where the client CPU goes". */
  whereMs: number;
  /** Which rollback-pool code ran: the source through tsx, or a compiled build. */
  code: string;
  /** The git commit of that code, and whether src/ had uncommitted changes. */
  revision: string;
  /** The arguments of bench/run.ts in this run. */
  args: string[];
}

/** Which table a case belongs to. */
export type TableId = 'pool' | 'tx' | 'abandon' | 'hygiene';

/** What ours must reach against one entrant: a throughput ratio, and optionally a client CPU per op ratio (at most). */
export interface Targets {
  ratio: number;
  cpu?: number;
  /** Only at concurrency 32 (shown for context at 1). */
  only32?: boolean;
}

export const WHEN_DIRTY_LABEL = "rollback-pool `resetOnRelease: 'whenDirty'`";

/** One entrant of one case (workload x shape), over all rounds. */
export interface EntrantResult {
  label: string;
  /** Median ops/s over the rounds. */
  opsPerSec: number;
  /** Median client CPU time per operation (this process, user + system), microseconds. */
  cpuUsPerOp: number;
  /** Per round, in round order: ops/s, CPU µs/op, operations completed. */
  rounds: number[];
  cpuRounds: number[];
  ops: number[];
}

/** rollback-pool's entrant ('ours') against another entrant of the same case, paired by round. */
export interface Comparison {
  /** Median over the rounds of ours / theirs (ops/s) measured in the same round. */
  ratio: number;
  /** 25th and 75th percentiles of the per-round ratios. */
  quartiles: [number, number];
  /** Smallest and largest per-round ratio. */
  range: [number, number];
  /** Median over the rounds of ours / theirs (client CPU µs per operation): above 1, ours costs more. */
  cpuRatio: number;
  cpuQuartiles: [number, number];
  target: number | undefined;
  pass: boolean | undefined;
  /** The client CPU per op ratio must be at most this. */
  cpuTarget: number | undefined;
  cpuPass: boolean | undefined;
}

export interface CaseResult {
  table: TableId;
  workload: string;
  label: string;
  connectionLimit: number;
  concurrency: number;
  /** By entrant id; 'ours' is always there. */
  entrants: Record<string, EntrantResult>;
  /** 'ours' against each other entrant, by that entrant's id. */
  vs: Record<string, Comparison>;
}

/** Whether the abandoned transactions were really rolled back (and the committed ones committed). */
export interface AbandonCheck {
  ok: boolean;
  lines: string[];
}

export interface BenchReport {
  date: string;
  durationS: number;
  machine: Machine;
  settings: Settings;
  cases: CaseResult[];
  abandonCheck: AbandonCheck;
  lockLatency: LockLatencyRow[];
  releaseCost: ReleaseCostRow[];
  where: WhereRow[];
  whereShape: { connectionLimit: number; concurrency: number; workload: string };
  memory: MemoryReport | undefined;
}

/** A cell for the throughput ratio against `against`, or a dash when that entrant did not run. */
function vsCell(c: CaseResult, against: string): string {
  const comparison = c.vs[against];
  return comparison ? ratioCell(comparison) : '–';
}

function cpuCell(c: CaseResult, against: string): string {
  const comparison = c.vs[against];
  if (!comparison) return '–';
  const ratio = `${comparison.cpuRatio.toFixed(2)}x`;
  if (comparison.cpuPass === undefined) return ratio;
  return `${ratio} ${comparison.cpuPass ? 'PASS' : '**MISS**'}`;
}

function opsCell(c: CaseResult, id: string): string {
  const entrant = c.entrants[id];
  return entrant ? formatOps(entrant.opsPerSec) : '–';
}

function usCell(c: CaseResult, id: string): string {
  const entrant = c.entrants[id];
  return entrant ? formatUs(entrant.cpuUsPerOp) : '–';
}

const SHAPE_HEADER = ['workload', 'conn.', 'conc.'];

function shapeCells(c: CaseResult): string[] {
  return [c.label, String(c.connectionLimit), String(c.concurrency)];
}

function aligned(n: number): boolean[] {
  return [false, ...Array.from({ length: n - 1 }, () => true)];
}

/** The pool workloads: ours against mysql2's default pool (targets), and the mariadb connector's pool (context). */
export function throughputTable(report: BenchReport): string {
  const header = [
    ...SHAPE_HEADER,
    'rollback-pool ops/s',
    'mysql2 (default) ops/s',
    'mariadb ops/s',
    `ours / mysql2 (target ≥ ${TARGET_TEXT.pool})`,
    'middle half of rounds',
    `client CPU/op, ours / mysql2 (target ≤ ${TARGET_TEXT.cpu})`,
    'middle half of rounds (CPU)',
    'ours / mariadb (no target)',
    'client CPU/op, ours / mariadb',
  ];
  const rows = casesOf(report, 'pool').map((c) => [
    ...shapeCells(c),
    opsCell(c, 'ours'),
    opsCell(c, 'mysql2'),
    opsCell(c, 'mariadb'),
    vsCell(c, 'mysql2'),
    quartilesCell(c.vs.mysql2!),
    cpuCell(c, 'mysql2'),
    cpuQuartilesCell(c.vs.mysql2!),
    c.vs.mariadb ? `${c.vs.mariadb.ratio.toFixed(2)}x` : '–',
    cpuCell(c, 'mariadb'),
  ]);
  return markdownTable(header, rows, aligned(header.length));
}

/** Workload (a): `pool.transaction()` against the same transaction by hand on mysql2 (target) and on mariadb (context). */
export function txTable(report: BenchReport): string {
  const header = [
    ...SHAPE_HEADER,
    'rollback-pool `pool.transaction()` ops/s',
    'mysql2 (default) by hand ops/s',
    'mariadb by hand ops/s',
    `ours / mysql2 (target ≥ ${TARGET_TEXT.tx})`,
    'middle half of rounds',
    'client CPU/op, ours / mysql2',
    'ours / mariadb (no target)',
    'client CPU/op, ours / mariadb',
  ];
  const rows = casesOf(report, 'tx').map((c) => [
    ...shapeCells(c),
    opsCell(c, 'ours'),
    opsCell(c, 'mysql2'),
    opsCell(c, 'mariadb'),
    vsCell(c, 'mysql2'),
    quartilesCell(c.vs.mysql2!),
    cpuCell(c, 'mysql2'),
    c.vs.mariadb ? `${c.vs.mariadb.ratio.toFixed(2)}x` : '–',
    cpuCell(c, 'mariadb'),
  ]);
  return markdownTable(header, rows, aligned(header.length));
}

/** Workload (b): abandoning 20% of the transactions against rolling them back explicitly. */
export function abandonTable(report: BenchReport): string {
  const header = [
    ...SHAPE_HEADER,
    'rollback-pool, abandoned ops/s',
    'rollback-pool, explicit rollback ops/s',
    'mysql2 (default) by hand, explicit rollback ops/s',
    `abandoned / explicit (target ≥ ${TARGET_TEXT.abandon})`,
    'middle half of rounds',
    'client CPU/op, abandoned / explicit',
    'ours abandoned / mysql2 by hand',
    'client CPU/op, ours / mysql2',
  ];
  const rows = casesOf(report, 'abandon').map((c) => [
    ...shapeCells(c),
    opsCell(c, 'ours'),
    opsCell(c, 'oursExplicit'),
    opsCell(c, 'mysql2'),
    vsCell(c, 'oursExplicit'),
    quartilesCell(c.vs.oursExplicit!),
    cpuCell(c, 'oursExplicit'),
    vsCell(c, 'mysql2'),
    cpuCell(c, 'mysql2'),
  ]);
  return markdownTable(header, rows, aligned(header.length));
}

/** Issue 14: `resetOnRelease: 'whenDirty'` on clean workloads, against our default and mysql2's resetOnRelease. */
export function hygieneTable(report: BenchReport): string {
  const header = [
    ...SHAPE_HEADER,
    "'whenDirty' ops/s",
    'rollback-pool default ops/s',
    'mysql2 resetOnRelease ops/s',
    `'whenDirty' / default (target ≥ ${TARGET_TEXT.whenDirty} at 32)`,
    'middle half of rounds',
    "client CPU/op, 'whenDirty' / default",
    `'whenDirty' / resetOnRelease (target ≥ ${TARGET_TEXT.reset} at 32)`,
    'middle half of rounds ',
    "client CPU/op, 'whenDirty' / resetOnRelease",
  ];
  const rows = casesOf(report, 'hygiene').map((c) => [
    ...shapeCells(c),
    opsCell(c, 'ours'),
    opsCell(c, 'oursDefault'),
    opsCell(c, 'mysql2Reset'),
    vsCell(c, 'oursDefault'),
    quartilesCell(c.vs.oursDefault!),
    cpuCell(c, 'oursDefault'),
    vsCell(c, 'mysql2Reset'),
    quartilesCell(c.vs.mysql2Reset!),
    cpuCell(c, 'mysql2Reset'),
  ]);
  return markdownTable(header, rows, aligned(header.length));
}

/** Client CPU per operation: steadier than ops/s on a shared machine, and where a gap in ops/s comes from. */
export function cpuTable(report: BenchReport): string {
  const header = [...SHAPE_HEADER, 'rollback-pool µs/op', 'mysql2 (default) µs/op', 'mariadb µs/op'];
  const rows = casesOf(report, 'pool').map((c) => [...shapeCells(c), usCell(c, 'ours'), usCell(c, 'mysql2'), usCell(c, 'mariadb')]);
  return markdownTable(header, rows, aligned(header.length));
}

/** The same for the transaction workloads. */
export function txCpuTable(report: BenchReport): string {
  const header = [...SHAPE_HEADER, 'rollback-pool µs/op', 'rollback-pool, explicit rollback µs/op', 'mysql2 (default) by hand µs/op', 'mariadb by hand µs/op'];
  const rows = [...casesOf(report, 'tx'), ...casesOf(report, 'abandon')].map((c) => [
    ...shapeCells(c),
    usCell(c, 'ours'),
    usCell(c, 'oursExplicit'),
    usCell(c, 'mysql2'),
    usCell(c, 'mariadb'),
  ]);
  return markdownTable(header, rows, aligned(header.length));
}

/** The same for the session hygiene cases. */
export function hygieneCpuTable(report: BenchReport): string {
  const header = [...SHAPE_HEADER, "'whenDirty' µs/op", 'rollback-pool default µs/op', 'mysql2 resetOnRelease µs/op'];
  const rows = casesOf(report, 'hygiene').map((c) => [...shapeCells(c), usCell(c, 'ours'), usCell(c, 'oursDefault'), usCell(c, 'mysql2Reset')]);
  return markdownTable(header, rows, aligned(header.length));
}

export function releaseCostTable(report: BenchReport): string {
  const header = ['release on connectionLimit 1', 'trials', '`reset` durationMs p50', 'p99', 'next checkout p50', 'p99', 'note'];
  const rows = report.releaseCost.map((row) => [
    row.label,
    String(row.trials),
    row.resetP50Ms === undefined ? '–' : formatMs(row.resetP50Ms),
    row.resetP99Ms === undefined ? '–' : formatMs(row.resetP99Ms),
    formatMs(row.nextP50Ms),
    formatMs(row.nextP99Ms),
    row.note,
  ]);
  return markdownTable(header, rows, [false, true, true, true, true, true, false]);
}

export function whereTable(report: BenchReport): string {
  const header = ['pool', ...CATEGORIES.map((category) => `${category} µs/op`), 'sampled total µs/op'];
  const rows = report.where.map((row) => [row.label, ...CATEGORIES.map((category) => formatUs(row.usPerOp[category])), formatUs(row.totalUsPerOp)]);
  return markdownTable(header, rows, aligned(header.length));
}

export function memoryTable(report: BenchReport): string {
  const memory = report.memory;
  if (!memory) return '(the memory child process failed: see the run\'s stderr)';
  const quarters = memory.rows[0]?.checkoutSamples.map((sample) => sample.checkouts) ?? [];
  const header = ['pool', 'heap per idle connection', 'heap per lease held', ...quarters.map((n) => `heap after ${formatCount(n)} checkouts`), 'growth'];
  const rows = memory.rows.map((row) => [
    row.label,
    formatBytes(row.perIdleConnectionBytes),
    formatBytes(row.perLeaseBytes),
    ...row.checkoutSamples.map((sample) => formatBytes(sample.heapBytes)),
    formatBytes(row.growthBytes, true),
  ]);
  return markdownTable(header, rows, aligned(header.length));
}

export function lockTable(report: BenchReport): string {
  const header = ['connection released inside a transaction', 'trials', 'p50', 'p99', 'note'];
  const rows = report.lockLatency.map((row) => [
    row.label,
    String(row.trials),
    row.p50Ms === undefined ? 'held' : formatMs(row.p50Ms),
    row.p99Ms === undefined ? 'held' : formatMs(row.p99Ms),
    row.heldPastTimeout > 0 ? `${row.heldPastTimeout}/${row.trials} still locked after 1 s: ${row.note}` : row.note,
  ]);
  return markdownTable(header, rows, [false, true, true, true, false]);
}

const TARGET_TEXT = { pool: '1.0x', cpu: '1.0x', tx: '1.0x', abandon: '0.95x', whenDirty: '0.97x', reset: '3x' };

/** One target of one case: a throughput ratio (at least) or a client CPU ratio (at most). */
interface TargetItem {
  c: CaseResult;
  against: string;
  kind: 'throughput' | 'cpu';
  value: number;
  target: number;
  pass: boolean;
  quartiles: [number, number];
}

function targets(report: BenchReport): TargetItem[] {
  const items: TargetItem[] = [];
  for (const c of report.cases) {
    for (const [against, comparison] of Object.entries(c.vs)) {
      if (comparison.target !== undefined) {
        items.push({ c, against, kind: 'throughput', value: comparison.ratio, target: comparison.target, pass: comparison.pass!, quartiles: comparison.quartiles });
      }
      if (comparison.cpuTarget !== undefined) {
        items.push({ c, against, kind: 'cpu', value: comparison.cpuRatio, target: comparison.cpuTarget, pass: comparison.cpuPass!, quartiles: comparison.cpuQuartiles });
      }
    }
  }
  return items;
}

export function summaryLine(report: BenchReport): string {
  const all = targets(report);
  return `${all.filter((item) => item.pass).length}/${all.length} targets met.`;
}

export function settingsLine(report: BenchReport): string {
  const { rounds, roundMs, quick, shapes } = report.settings;
  return `rollback-pool from ${report.settings.code}, ${report.settings.revision}; ${rounds} rounds${quick ? ' (--quick)' : ''}, in each of which every entrant runs for ${roundMs} ms ` +
    `(in an order that changes every round); shapes: ${shapes}; ops/s and µs/op are medians over the rounds, ` +
    `ratios the median of the per-round ratios. Run took ${report.durationS.toFixed(0)} s.`;
}

/** The command that produced the report, as typed. */
export function commandLine(settings: Settings): string {
  const args = settings.args;
  if (args.includes('--dist')) {
    const rest = args.filter((arg) => arg !== '--dist');
    return `npm run bench${rest.length > 0 ? ` -- ${rest.join(' ')}` : ''}`;
  }
  return `npx tsx bench/run.ts${args.length > 0 ? ` ${args.join(' ')}` : ''}`;
}

export function machineLine(machine: Machine): string {
  return `nproc ${machine.nproc} (${machine.cpu}), ${machine.os}, Node ${machine.node}, server ${machine.server}, ` +
    `mysql2 ${machine.mysql2}, mariadb ${machine.mariadb}, load average ${machine.loadAverage.toFixed(2)} at start`;
}

/** Everything printed to stdout after a run (without --json). */
export function consoleReport(report: BenchReport): string {
  return [
    `Machine: ${machineLine(report.machine)}`,
    settingsLine(report),
    '',
    throughputTable(report),
    '',
    `Transactions, (a) \`pool.transaction()\` against the same by hand on mysql2 and mariadb:`,
    '',
    txTable(report),
    '',
    `Transactions, (b) 1 in ${ABANDON_EVERY} abandoned against rolled back explicitly:`,
    '',
    abandonTable(report),
    '',
    ...report.abandonCheck.lines,
    '',
    "Session hygiene, `resetOnRelease: 'whenDirty'` on clean workloads:",
    '',
    hygieneTable(report),
    '',
    'Cost of one dirty release:',
    '',
    releaseCostTable(report),
    '',
    summaryLine(report),
    '',
    'Client CPU per operation (this process, user + system):',
    '',
    cpuTable(report),
    '',
    txCpuTable(report),
    '',
    hygieneCpuTable(report),
    '',
    `Where the client CPU goes (${report.whereShape.workload}, ${report.whereShape.concurrency} callers on connectionLimit ${report.whereShape.connectionLimit}, sampled):`,
    '',
    whereTable(report),
    '',
    'Memory:',
    '',
    memoryTable(report),
    '',
    'Row lock of an abandoned transaction (release -> a separate connection can lock the row):',
    '',
    lockTable(report),
    '',
    'Reading:',
    '',
    reading(report),
    '',
  ].join('\n');
}

/**
 * A plain reading of the figures, generated from them so that it cannot go
 * stale: which targets pass or miss and by how much, whether a miss is within
 * the round-to-round noise, and what the client CPU per operation says.
 */
export function reading(report: BenchReport): string {
  const bullets: string[] = [];
  const all = targets(report);
  const misses = all.filter((item) => !item.pass);
  const passes = all.filter((item) => item.pass);
  bullets.push(`${passes.length} of ${all.length} targets met.`);
  for (const item of misses) {
    const [low, high] = item.quartiles;
    const inside = item.kind === 'throughput' ? high >= item.target : low <= item.target;
    const noise = inside
      ? `the target lies inside the middle half of the per-round ratios (${low.toFixed(2)}–${high.toFixed(2)}), so this is within the round-to-round noise`
      : `the middle half of the per-round ratios (${low.toFixed(2)}–${high.toFixed(2)}) lies entirely ${item.kind === 'throughput' ? 'below' : 'above'} the target`;
    const what = item.kind === 'throughput' ? 'throughput' : 'client CPU per operation';
    bullets.push(`Missed: ${caseName(item.c, item.against)}, ${what} ${item.value.toFixed(2)}x against a target of ${item.kind === 'throughput' ? '≥' : '≤'} ${item.target}x; ${noise}.`);
  }
  const cpuLine = (table: TableId, against: string, what: string): void => {
    const ratios = casesOf(report, table).map((c) => c.vs[against]?.cpuRatio).filter((r): r is number => r !== undefined);
    if (ratios.length === 0) return;
    const low = Math.min(...ratios);
    const high = Math.max(...ratios);
    bullets.push(`Client CPU per operation, ${what}: ${low.toFixed(2)}x to ${high.toFixed(2)}x, i.e. ${percentRange(low, high)}.`);
  };
  cpuLine('pool', 'mysql2', 'rollback-pool / mysql2 default on the pool workloads');
  cpuLine('pool', 'mariadb', 'rollback-pool / the mariadb connector\'s pool on the pool workloads');
  cpuLine('tx', 'mysql2', '`pool.transaction()` / mysql2 by hand');
  cpuLine('tx', 'mariadb', '`pool.transaction()` / mariadb by hand');
  cpuLine('abandon', 'oursExplicit', 'abandoning / explicit rollbacks on rollback-pool');
  cpuLine('abandon', 'mysql2', 'rollback-pool abandoning / mysql2 by hand with explicit rollbacks');
  cpuLine('hygiene', 'oursDefault', "'whenDirty' / our default on clean workloads");
  const where = new Map(report.where.map((row) => [row.id, row]));
  const oursWhere = where.get('ours');
  const mariadbWhere = where.get('mariadb');
  if (oursWhere && mariadbWhere) {
    const parts = CATEGORIES.map((category) => ({ category, delta: oursWhere.usPerOp[category] - mariadbWhere.usPerOp[category] }))
      .filter(({ delta }) => Math.abs(delta) >= 0.5)
      .sort((a, b) => b.delta - a.delta)
      .map(({ category, delta }) => `${category} ${delta > 0 ? '+' : ''}${delta.toFixed(1)} µs`);
    bullets.push(`Against the mariadb connector (sampled profile, ${report.whereShape.workload}, ${report.whereShape.concurrency} callers on ${report.whereShape.connectionLimit}): ` +
      `ours ${formatUs(oursWhere.totalUsPerOp)} µs/op, mariadb ${formatUs(mariadbWhere.totalUsPerOp)} µs/op; ours minus mariadb by category: ${parts.join(', ') || 'no category differs by 0.5 µs or more'}. ` +
      'The driver column is mysql2\'s protocol code (packets, parsers, commands) for ours and mysql2, the connector\'s own for mariadb.');
  }
  if (report.memory) {
    const rows = report.memory.rows.map((row) => `${row.label} ${formatBytes(row.perIdleConnectionBytes)} per idle connection, ${formatBytes(row.growthBytes, true)} after ${formatCount(report.memory!.checkouts)} checkouts`);
    bullets.push(`Memory: ${rows.join('; ')}.`);
  }
  bullets.push(`On a shared ${report.machine.nproc}-core machine a throughput ratio within a few percent of its target can land on either side ` +
    `from one run to the next (compare its middle half of rounds); the client CPU per operation is the steadier measure of ` +
    'what the pool itself costs, and at concurrency 32, where client and server compete for the same cores, extra client CPU per ' +
    'operation shows up as lost throughput.');
  bullets.push(report.abandonCheck.ok
    ? 'Every abandoned transaction was rolled back and every committed one is in the table (checked after the run).'
    : '**The check of the abandoned transactions FAILED** (see above): these figures are not to be trusted.');
  return bullets.map((bullet) => `- ${bullet}`).join('\n');
}

/** The whole of BENCHMARKS.md. */
export function benchmarksMarkdown(report: BenchReport): string {
  return `# Benchmarks

What: rollback-pool against mysql2's own promise pool in its default configuration (fast, but an
abandoned transaction leaks into the next user of the connection), and, as what a user could pick
instead, the \`mariadb\` connector's pool (${report.machine.mariadb}, its defaults: it also sends a ROLLBACK at release
when a transaction is open). Targets (issue 12): on every pool workload, in every shape, at least
${TARGET_TEXT.pool} the throughput of mysql2's default pool with at most ${TARGET_TEXT.cpu} its client CPU per
operation; \`pool.transaction()\` at least ${TARGET_TEXT.tx} the same transaction written by hand on mysql2;
abandoning 1 transaction in ${ABANDON_EVERY} (leaving the rollback to the pool) at least ${TARGET_TEXT.abandon} as fast as
rolling those back explicitly. Issue 14: \`resetOnRelease: 'whenDirty'\` on clean workloads at
concurrency 32 at least ${TARGET_TEXT.whenDirty} our default and at least ${TARGET_TEXT.reset} mysql2's \`resetOnRelease: true\`
(a COM_RESET_CONNECTION on every release, which also drops the prepared-statement cache). No target
against mariadb.

How: \`npm run bench\` (\`bench/run.ts\`; \`--quick\` for a short run, \`--json\` for machine-readable
output, \`--write\` to regenerate this file, \`--dist\` to measure the compiled build; \`npm run bench\`
itself builds and passes \`--dist\`). Shapes: ${report.settings.shapes} (callers on connectionLimit);
the pools of one connectionLimit are opened together (at most three pools of 32 connections at a
time) and closed before the next. The pools live side by side in one process against the same
server and take turns: every round runs each entrant of a case for the same fixed time, in an order
that changes every round (cycling through every order), after a warm-up that opens every connection
and prepares the statements. A ratio is taken within each round (so both sides saw the same moment
of the machine) and the median of those per-round ratios is reported, with the 25th–75th percentile
of them as "middle half of rounds"; the client CPU time per operation of this process (user +
system, \`process.cpuUsage()\`) is measured alike and is much steadier than throughput here. The
table is a small InnoDB table of ${TABLE_ROWS.toLocaleString('en-US')} rows; the point select is \`SELECT id, v FROM <table> WHERE id = ?\`.
"Where the client CPU goes" is a sampled CPU profile (node:inspector, 100 µs interval) of each pool
running the same workload for ${report.settings.whereMs} ms, its self time split by where the code lives. Memory is
measured in a child process of its own (\`bench/memory.ts\`, \`--expose-gc\`): \`heapUsed\` after full
garbage collections, with ${report.memory?.rows[0]?.connections ?? 32} connections, then over ${formatCount(report.memory?.checkouts ?? 0)} checkouts
(\`getConnection()\` + \`release()\`, ${report.memory?.concurrency ?? 8} at a time) after a warm-up.
For development, \`bench/ab.ts\` runs one case the same way for any builds and pools, and
\`bench/instructions.js\` counts client instructions per operation under valgrind (repeatable on a
loaded machine, with enough operations that the JIT's warm-up falls outside the count: see its header).

Command: \`${commandLine(report.settings)}\`.

Machine: ${machineLine(report.machine)}. Client and server share the same cores, so concurrency 32
measures CPU efficiency as much as anything, and any other load on the machine shows up as noise (see
the middle half of the per-round ratios). Generated from the run of ${report.date}.

${settingsLine(report)} ${summaryLine(report)}

## Pool workloads

${throughputTable(report)}

## Transactions

(a) rollback-pool's callback API, \`pool.transaction(async (tx) => { await tx.execute(select, [id]);
await tx.execute(update, [id]); })\`, against the same by hand (\`getConnection\`, \`beginTransaction\`,
the two \`execute\`s, \`commit\`, \`release\`) on mysql2's default pool and on mariadb's. The update is
\`UPDATE <table> SET v = v + 1 WHERE id = ?\` on the row just read.

${txTable(report)}

(b) Each transaction \`INSERT\`s one row with a unique id into a separate table and commits, except
1 in ${ABANDON_EVERY}: on rollback-pool (\`const tx = await pool.begin()\`) those are abandoned with
\`tx[Symbol.dispose]()\` (what \`using\` does at the end of a block), and the pool rolls them back in
the background; the baseline is the same on rollback-pool with an explicit \`await tx.rollback()\`;
for context, mysql2's default pool by hand with an explicit \`rollback()\` too. The abandoned
entrant's rounds end only when its pool has finished the ROLLBACKs it started, so their cost is
charged to it. At the end, the table is checked: every committed row there, no abandoned one.

${abandonTable(report)}

Check of that table after the run:

${report.abandonCheck.lines.map((line) => `- ${line}`).join('\n')}

## Session hygiene (\`resetOnRelease: 'whenDirty'\`)

Clean workloads (nothing they run changes session state): \`'whenDirty'\` should cost nothing over
the default, and much less than resetting every release.

${hygieneTable(report)}

The cost of one dirty release: on a pool of one connection, a lease runs a statement and is
released, and the next \`getConnection()\` is called at once (it waits for the reset). The \`reset\`
event's \`durationMs\` and the time from \`release()\` to the next lease in hand:

${releaseCostTable(report)}

## Client CPU per operation

User + system time of the benchmark process per operation (median over the rounds); the server's CPU
is not included. rollback-pool ran from ${report.settings.code}; mysql2 and mariadb run as the plain
JavaScript they ship.

${cpuTable(report)}

${txCpuTable(report)}

${hygieneCpuTable(report)}

## Where the client CPU goes

${report.whereShape.workload === 'checkout' ? 'getConnection + execute + release' : report.whereShape.workload}, ${report.whereShape.concurrency} callers on connectionLimit ${report.whereShape.connectionLimit}, each pool
profiled alone for ${report.settings.whereMs} ms; sampled CPU per operation (idle excluded; the profiler's own
overhead and sampling make the totals differ from the CPU table). "driver": the protocol code
(mysql2's packets, parsers and commands for rollback-pool and mysql2; the connector's own for
mariadb); "pool": the pool and transaction code (rollback-pool's src/pool, src/tx and generic-pool;
mysql2's pool files; mariadb's pool); "promise API": mysql2/promise's wrappers, mariadb's promise
classes; "stack capture": \`trace\`'s \`Error.captureStackTrace\` per call (mysql2 and rollback-pool;
mariadb captures none by default); "sockets": Node's net and stream code and the kernel's writes.

${whereTable(report)}

## Memory

${memoryTable(report)}

## Reading

${reading(report)}

## Row lock of an abandoned transaction

A lease begins a transaction, \`UPDATE\`s a row and is released without COMMIT; at once a separate
connection runs a blocking \`SELECT ... FOR UPDATE\` on that row (innodb_lock_wait_timeout = 1 s). The
time is from the release to that SELECT returning, so it includes one round trip of the observer (see
the baseline row).

${lockTable(report)}
`;
}

function casesOf(report: BenchReport, table: TableId): CaseResult[] {
  return report.cases.filter((c) => c.table === table);
}

function caseName(c: CaseResult, against: string): string {
  const names: Record<string, string> = { mysql2Reset: 'mysql2 resetOnRelease', oursExplicit: 'explicit rollbacks', oursDefault: 'our default', mysql2: 'mysql2', mariadb: 'mariadb' };
  const who = c.table === 'hygiene' ? "'whenDirty' " : '';
  return `${who}${c.label.replace(/`/g, '')}, ${c.concurrency} caller${c.concurrency === 1 ? '' : 's'} on connectionLimit ${c.connectionLimit}, vs ${names[against] ?? against}`;
}

function cpuQuartilesCell(comparison: Comparison): string {
  return `${comparison.cpuQuartiles[0].toFixed(2)}–${comparison.cpuQuartiles[1].toFixed(2)}`;
}

function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

/** Bytes as KB (1,024), signed when asked (a growth). */
function formatBytes(value: number, signed = false): string {
  const kb = value / 1024;
  const text = Math.abs(kb) >= 100 ? kb.toFixed(0) : kb.toFixed(1);
  return `${signed && kb > 0 ? '+' : ''}${text} KB`;
}

/** "3% to 7% more", "2% less to 5% more"... for a range of ratios around 1. */
function percentRange(low: number, high: number): string {
  const a = Math.round((low - 1) * 100);
  const b = Math.round((high - 1) * 100);
  const one = (p: number): string => (p === 0 ? 'the same' : p > 0 ? `${p}% more` : `${-p}% less`);
  if (a === b) return one(a);
  if (a >= 0 && b > 0) return a === 0 ? `up to ${b}% more` : `${a}% to ${b}% more`;
  if (a < 0 && b <= 0) return b === 0 ? `up to ${-a}% less` : `${-b}% to ${-a}% less`;
  return `from ${one(a)} to ${one(b)}`;
}

function ratioCell(comparison: Comparison): string {
  const ratio = `${comparison.ratio.toFixed(2)}x`;
  if (comparison.pass === undefined) return `${ratio} (no target)`;
  return `${ratio} ${comparison.pass ? 'PASS' : '**MISS**'}`;
}

function quartilesCell(comparison: Comparison): string {
  return `${comparison.quartiles[0].toFixed(2)}–${comparison.quartiles[1].toFixed(2)}`;
}

function formatOps(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function formatUs(value: number): string {
  return value.toFixed(1);
}

function formatMs(value: number): string {
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`;
}

function markdownTable(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(3, ...all.map((row) => row[column]!.length)));
  const line = (row: string[]): string =>
    `| ${row.map((cell, column) => (rightAligned[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join(' | ')} |`;
  const rule = `|${widths.map((width, column) => (rightAligned[column] ? `${'-'.repeat(width + 1)}:` : `${'-'.repeat(width + 2)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
