/** The benchmark's results, and their rendering as markdown (stdout and BENCHMARKS.md). */
import type { LockLatencyRow } from './lock-latency';
import { ABANDON_EVERY, TABLE_ROWS } from './workloads';

export interface Machine {
  nproc: number;
  cpu: string;
  os: string;
  node: string;
  server: string;
  mysql2: string;
  /** 1-minute load average when the run started: other work on the machine makes results noisy. */
  loadAverage: number;
}

export interface Settings {
  quick: boolean;
  rounds: number;
  /** How long each entrant runs in each round. */
  roundMs: number;
  connectionLimit: number;
  lockTrials: number;
  /** Which rollback-pool code ran: the source through tsx, or a compiled build. */
  code: string;
  /** The git commit of that code, and whether src/ had uncommitted changes. */
  revision: string;
  /** The arguments of bench/run.ts in this run. */
  args: string[];
}

/** Which table a case belongs to. */
export type TableId = 'pool' | 'tx' | 'abandon';

/** One entrant of one case (workload x concurrency), over all rounds. */
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
  target: number | undefined;
  pass: boolean | undefined;
}

export interface CaseResult {
  table: TableId;
  workload: string;
  label: string;
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
}

const CPU_HEADER = 'client CPU/op, ours / mysql2';

export function throughputTable(report: BenchReport): string {
  const header = [
    'workload',
    'conc.',
    'rollback-pool ops/s',
    'mysql2 (default) ops/s',
    'mysql2 resetOnRelease ops/s',
    'ours / mysql2 (target ≥ 0.95x)',
    'middle half of rounds',
    CPU_HEADER,
    'ours / resetOnRelease (target ≥ 3x)',
  ];
  const rows = casesOf(report, 'pool').map((c) => [
    c.label,
    String(c.concurrency),
    formatOps(c.entrants.ours!.opsPerSec),
    formatOps(c.entrants.mysql2!.opsPerSec),
    formatOps(c.entrants.mysql2Reset!.opsPerSec),
    ratioCell(c.vs.mysql2!),
    quartilesCell(c.vs.mysql2!),
    `${c.vs.mysql2!.cpuRatio.toFixed(2)}x`,
    ratioCell(c.vs.mysql2Reset!),
  ]);
  return markdownTable(header, rows, [false, true, true, true, true, true, true, true, true]);
}

/** Workload (a): `pool.transaction()` against the same transaction by hand on mysql2. */
export function txTable(report: BenchReport): string {
  const header = [
    'workload',
    'conc.',
    'rollback-pool `pool.transaction()` ops/s',
    'mysql2 (default) by hand ops/s',
    'ours / mysql2 (target ≥ 0.95x)',
    'middle half of rounds',
    CPU_HEADER,
  ];
  const rows = casesOf(report, 'tx').map((c) => [
    c.label,
    String(c.concurrency),
    formatOps(c.entrants.ours!.opsPerSec),
    formatOps(c.entrants.mysql2!.opsPerSec),
    ratioCell(c.vs.mysql2!),
    quartilesCell(c.vs.mysql2!),
    `${c.vs.mysql2!.cpuRatio.toFixed(2)}x`,
  ]);
  return markdownTable(header, rows, [false, true, true, true, true, true, true]);
}

/** Workload (b): abandoning 20% of the transactions against rolling them back explicitly. */
export function abandonTable(report: BenchReport): string {
  const header = [
    'workload',
    'conc.',
    'rollback-pool, abandoned ops/s',
    'rollback-pool, explicit rollback ops/s',
    'mysql2 (default) by hand, explicit rollback ops/s',
    'abandoned / explicit (target ≥ 0.9x)',
    'middle half of rounds',
    'client CPU/op, abandoned / explicit',
    'ours abandoned / mysql2 by hand',
    CPU_HEADER,
  ];
  const rows = casesOf(report, 'abandon').map((c) => [
    c.label,
    String(c.concurrency),
    formatOps(c.entrants.ours!.opsPerSec),
    formatOps(c.entrants.oursExplicit!.opsPerSec),
    formatOps(c.entrants.mysql2!.opsPerSec),
    ratioCell(c.vs.oursExplicit!),
    quartilesCell(c.vs.oursExplicit!),
    `${c.vs.oursExplicit!.cpuRatio.toFixed(2)}x`,
    ratioCell(c.vs.mysql2!),
    `${c.vs.mysql2!.cpuRatio.toFixed(2)}x`,
  ]);
  return markdownTable(header, rows, [false, true, true, true, true, true, true, true, true, true]);
}

/** Client CPU per operation: steadier than ops/s on a shared machine, and where a gap in ops/s comes from. */
export function cpuTable(report: BenchReport): string {
  const header = ['workload', 'conc.', 'rollback-pool µs/op', 'mysql2 (default) µs/op', 'mysql2 resetOnRelease µs/op'];
  const rows = casesOf(report, 'pool').map((c) => [
    c.label,
    String(c.concurrency),
    formatUs(c.entrants.ours!.cpuUsPerOp),
    formatUs(c.entrants.mysql2!.cpuUsPerOp),
    formatUs(c.entrants.mysql2Reset!.cpuUsPerOp),
  ]);
  return markdownTable(header, rows, [false, true, true, true, true]);
}

/** The same for the transaction workloads. */
export function txCpuTable(report: BenchReport): string {
  const header = ['workload', 'conc.', 'rollback-pool µs/op', 'rollback-pool, explicit rollback µs/op', 'mysql2 (default) by hand µs/op'];
  const rows = [...casesOf(report, 'tx'), ...casesOf(report, 'abandon')].map((c) => [
    c.label,
    String(c.concurrency),
    formatUs(c.entrants.ours!.cpuUsPerOp),
    c.entrants.oursExplicit ? formatUs(c.entrants.oursExplicit.cpuUsPerOp) : '–',
    formatUs(c.entrants.mysql2!.cpuUsPerOp),
  ]);
  return markdownTable(header, rows, [false, true, true, true, true]);
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

function targets(report: BenchReport, tables?: TableId[]): Array<{ c: CaseResult; against: string; comparison: Comparison }> {
  return report.cases
    .filter((c) => tables === undefined || tables.includes(c.table))
    .flatMap((c) => Object.entries(c.vs).map(([against, comparison]) => ({ c, against, comparison })))
    .filter(({ comparison }) => comparison.target !== undefined);
}

export function summaryLine(report: BenchReport, tables?: TableId[]): string {
  const all = targets(report, tables);
  const passed = all.filter(({ comparison }) => comparison.pass).length;
  return `${passed}/${all.length} targets met.`;
}

export function settingsLine(report: BenchReport): string {
  const { rounds, roundMs, connectionLimit, quick } = report.settings;
  return `rollback-pool from ${report.settings.code}, ${report.settings.revision}; ${rounds} rounds${quick ? ' (--quick)' : ''}, in each of which every entrant runs for ${roundMs} ms ` +
    `(in an order that changes every round), connectionLimit ${connectionLimit}; ops/s and µs/op are medians over the rounds, ` +
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
    `mysql2 ${machine.mysql2}, load average ${machine.loadAverage.toFixed(2)} at start`;
}

/** Everything printed to stdout after a run (without --json). */
export function consoleReport(report: BenchReport): string {
  return [
    `Machine: ${machineLine(report.machine)}`,
    settingsLine(report),
    '',
    throughputTable(report),
    '',
    `Transactions, (a) \`pool.transaction()\` against the same by hand on mysql2:`,
    '',
    txTable(report),
    '',
    `Transactions, (b) 1 in ${ABANDON_EVERY} abandoned against rolled back explicitly:`,
    '',
    abandonTable(report),
    '',
    ...report.abandonCheck.lines,
    '',
    summaryLine(report),
    '',
    'Client CPU per operation (this process, user + system):',
    '',
    cpuTable(report),
    '',
    txCpuTable(report),
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
  const misses = all.filter(({ comparison }) => !comparison.pass);
  const passes = all.filter(({ comparison }) => comparison.pass);
  bullets.push(`${passes.length} of ${all.length} targets met.`);
  if (passes.length > 0) {
    bullets.push(`Met: ${passes.map(({ c, against, comparison }) => `${caseName(c, against)} ${comparison.ratio.toFixed(2)}x (target ${targetText(comparison)})`).join('; ')}.`);
  }
  for (const { c, against, comparison } of misses) {
    const target = comparison.target!;
    const [low, high] = comparison.quartiles;
    const noise =
      high >= target
        ? `the target lies inside the middle half of the per-round ratios (${low.toFixed(2)}–${high.toFixed(2)}), so this is within the round-to-round noise`
        : `the middle half of the per-round ratios (${low.toFixed(2)}–${high.toFixed(2)}) lies entirely below the target`;
    bullets.push(`Missed: ${caseName(c, against)} ${comparison.ratio.toFixed(2)}x against a target of ${targetText(comparison)}, ` +
      `short by ${shortfall(comparison.ratio, target)}; ${noise}; the client CPU per operation there is ${comparison.cpuRatio.toFixed(2)}x the other's.`);
  }
  const cpuLine = (table: TableId, against: string, what: string): void => {
    const ratios = casesOf(report, table).map((c) => c.vs[against]?.cpuRatio).filter((r): r is number => r !== undefined);
    if (ratios.length === 0) return;
    const low = Math.min(...ratios);
    const high = Math.max(...ratios);
    bullets.push(`Client CPU per operation, ${what}: ${low.toFixed(2)}x to ${high.toFixed(2)}x, i.e. ${percentRange(low, high)}.`);
  };
  cpuLine('pool', 'mysql2', 'rollback-pool / mysql2 default on the pool workloads');
  cpuLine('tx', 'mysql2', '`pool.transaction()` / mysql2 by hand');
  cpuLine('abandon', 'oursExplicit', 'abandoning / explicit rollbacks on rollback-pool');
  cpuLine('abandon', 'mysql2', 'rollback-pool abandoning / mysql2 by hand with explicit rollbacks');
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

What: rollback-pool against mysql2's own promise pool, in its default configuration (fast, but an
abandoned transaction leaks into the next user of the connection) and with \`resetOnRelease: true\`
(safe: a COM_RESET_CONNECTION on every release, which also drops the prepared-statement cache).
The targets: at least 0.95x the throughput of mysql2's default pool everywhere (including a
transaction through \`pool.transaction()\` against the same written by hand on mysql2), at least 3x
that of \`resetOnRelease\` on short queries, and abandoning 1 transaction in ${ABANDON_EVERY} (leaving
the rollback to the pool) at least 0.9x as fast as rolling those back explicitly.

How: \`npm run bench\` (\`bench/run.ts\`; \`--quick\` for a short run, \`--json\` for machine-readable
output, \`--write\` to regenerate this file, \`--dist\` to measure the compiled build; \`npm run bench\`
itself builds and passes \`--dist\`). The pools live side by side in one process against the same
server and take turns: every round runs each entrant of a case for the same fixed time, in an order
that changes every round (cycling through every order), after a warm-up that opens every connection
and prepares the statements. A ratio is taken within each round (so both sides saw the same moment
of the machine) and the median of those per-round ratios is reported, with the 25th–75th percentile
of them as "middle half of rounds"; the client CPU time per operation of this process (user +
system) is measured alike and is much steadier than throughput here. The table is a small InnoDB
table of ${TABLE_ROWS.toLocaleString('en-US')} rows; the point select is \`SELECT id, v FROM <table> WHERE id = ?\`.

Command: \`${commandLine(report.settings)}\`.

Machine: ${machineLine(report.machine)}. Client and server share the same cores, so concurrency 32
measures CPU efficiency as much as anything, and any other load on the machine shows up as noise (see
the middle half of the per-round ratios). Generated from the run of ${report.date}.

${settingsLine(report)} ${summaryLine(report)}

## Pool workloads

${throughputTable(report)}

## Transactions

(a) rollback-pool's callback API, \`pool.transaction(async (tx) => { await tx.execute(select, [id]);
await tx.execute(update, [id]); })\`, against the same on mysql2's default pool by hand
(\`getConnection\`, \`beginTransaction\`, the two \`execute\`s, \`commit\`, \`release\`). The update is
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

## Client CPU per operation

User + system time of the benchmark process per operation (median over the rounds); the server's CPU
is not included. rollback-pool ran from ${report.settings.code}; mysql2 runs as the plain JavaScript
it ships.

${cpuTable(report)}

${txCpuTable(report)}

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
  const other = against === 'mysql2Reset' ? 'resetOnRelease' : against === 'oursExplicit' ? 'explicit rollbacks' : 'mysql2';
  return `${c.label.replace(/`/g, '')} at concurrency ${c.concurrency} vs ${other}`;
}

function targetText(comparison: Comparison): string {
  return `≥ ${comparison.target}x`;
}

function shortfall(ratio: number, target: number): string {
  return `${(target - ratio).toFixed(2)} (${(((target - ratio) / target) * 100).toFixed(0)}% below it)`;
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
