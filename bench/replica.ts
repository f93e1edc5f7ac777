/**
 * `npm run bench -- --replica`: read replicas, on a private primary and two
 * GTID replicas started for the run (scripts/replica-pair.ts) and stopped
 * after it. Two measurements:
 *
 * 1. the added cost of read-your-writes per read: sequential UPDATE-then-
 *    SELECT pairs through a replica pool with `readYourWrites: 'pool'` and
 *    with `'none'`, interleaved in blocks; the SELECT's latency (p50/p99),
 *    and how many reads were stale without it;
 * 2. read throughput: `execute` point selects spread over the two replicas by
 *    the replica pool, against the same on the primary alone (a plain pool),
 *    in interleaved timed rounds at concurrency 1 and 32.
 *
 * On one machine the three servers share its cores, so (2) shows the
 * routing's cost more than the capacity replicas add on their own hardware.
 */
import { availableParallelism, loadavg } from 'node:os';
import type { RowDataPacket } from 'mysql2/promise';
import { startReplicaPair, type ReplicaPair } from '../scripts/replica-pair';
import { ourLibrary } from './contenders';
import { median, percentile } from './stats';
import { runFor, TABLE_ROWS, type Entrant } from './workloads';

const CONNECTION_LIMIT = 32;
const CONCURRENCIES = [1, 32] as const;

interface ReplicaSettings {
  pairs: number;
  block: number;
  rounds: number;
  roundMs: number;
}

interface Pool {
  execute(sql: string, values?: number[]): Promise<unknown>;
  end(): Promise<void>;
}

function settingsFor(quick: boolean): ReplicaSettings {
  return quick ? { pairs: 400, block: 50, rounds: 4, roundMs: 100 } : { pairs: 4_000, block: 100, rounds: 15, roundMs: 250 };
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Runs the replica benchmark; resolves with its markdown report. */
export async function replicaBench(quick: boolean): Promise<string> {
  const settings = settingsFor(quick);
  progress('starting a private primary and two replicas');
  const pair = await startReplicaPair({ replicas: 2 });
  try {
    await prepare(pair);
    const latency = await readYourWritesCost(pair, settings);
    const throughput = await readThroughput(pair, settings);
    return [
      `Machine: nproc ${availableParallelism()}, load average ${(loadavg()[0] ?? 0).toFixed(2)} at the end; ` +
        `a private MariaDB primary and 2 replicas on loopback${quick ? ' (--quick)' : ''}.`,
      '',
      latency,
      '',
      throughput,
      '',
    ].join('\n');
  } finally {
    await pair.stop();
  }
}

const TABLE = 'rp_bench_replica';

async function prepare(pair: ReplicaPair): Promise<void> {
  const { createPool } = ourLibrary();
  const setup = createPool({ uri: pair.primary.url, connectionLimit: 1 });
  try {
    await setup.query(`CREATE TABLE ${TABLE} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
    const rows = Array.from({ length: TABLE_ROWS }, (_, i) => `(${i + 1}, 0)`).join(',');
    await setup.query(`INSERT INTO ${TABLE} VALUES ${rows}`);
  } finally {
    await setup.end();
  }
  await pair.caughtUp();
}

function replicaPool(pair: ReplicaPair, readYourWrites: 'pool' | 'none', connectionLimit: number): ReturnType<ReturnType<typeof ourLibrary>['createReplicaPool']> {
  return ourLibrary().createReplicaPool({
    primary: { uri: pair.primary.url, connectionLimit },
    replicas: pair.replicas.map((replica) => ({ uri: replica.url, connectionLimit })),
    readYourWrites,
  });
}

async function readYourWritesCost(pair: ReplicaPair, settings: ReplicaSettings): Promise<string> {
  progress(`read-your-writes: ${settings.pairs} UPDATE-then-SELECT pairs per mode`);
  const modes = { pool: replicaPool(pair, 'pool', 4), none: replicaPool(pair, 'none', 4) };
  const expected = new Map<number, number>(); // id -> v after the last UPDATE of either mode
  const samples = { pool: [] as number[], none: [] as number[] };
  const stale = { pool: 0, none: 0 };
  try {
    await Promise.all([modes.pool.ready(), modes.none.ready()]);
    let i = 0;
    for (let done = 0; done < settings.pairs; done += settings.block) {
      for (const mode of ['pool', 'none'] as const) {
        const pool = modes[mode];
        for (let k = 0; k < settings.block; k++) {
          const id = ((i++ * 7) % TABLE_ROWS) + 1;
          await pool.execute(`UPDATE ${TABLE} SET v = v + 1 WHERE id = ?`, [id]);
          expected.set(id, (expected.get(id) ?? 0) + 1);
          const startedAt = performance.now();
          const [rows] = await pool.execute<RowDataPacket[]>(`SELECT v FROM ${TABLE} WHERE id = ?`, [id]);
          samples[mode].push(performance.now() - startedAt);
          if (Number(rows[0]?.['v']) !== expected.get(id)) stale[mode]++;
        }
      }
    }
  } finally {
    await Promise.all([modes.pool.end(), modes.none.end()]);
  }
  const p = (values: number[], q: number): string => percentile(values, q).toFixed(3);
  const added = (q: number): string => (percentile(samples.pool, q) - percentile(samples.none, q)).toFixed(3);
  return [
    '### Read-your-writes: latency of a read right after a write',
    '',
    '| replica pool | reads | read p50 (ms) | read p99 (ms) | stale reads |',
    '|---|---:|---:|---:|---:|',
    `| \`readYourWrites: 'pool'\` (waits with MASTER_GTID_WAIT) | ${samples.pool.length} | ${p(samples.pool, 50)} | ${p(samples.pool, 99)} | ${stale.pool} |`,
    `| \`readYourWrites: 'none'\` | ${samples.none.length} | ${p(samples.none, 50)} | ${p(samples.none, 99)} | ${stale.none} |`,
    `| added by read-your-writes | | +${added(50)} | +${added(99)} | |`,
  ].join('\n');
}

async function readThroughput(pair: ReplicaPair, settings: ReplicaSettings): Promise<string> {
  const { createPool } = ourLibrary();
  const primaryAlone: Pool = createPool({ uri: pair.primary.url, connectionLimit: CONNECTION_LIMIT });
  const spread = replicaPool(pair, 'pool', CONNECTION_LIMIT);
  const select = `SELECT id, v FROM ${TABLE} WHERE id = ?`;
  const entrant = (id: string, label: string, pool: Pool): Entrant => ({
    id,
    label,
    op: async (i) => {
      await pool.execute(select, [((i * 7) % TABLE_ROWS) + 1]);
    },
  });
  const entrants = [entrant('primary', 'primary alone (createPool)', primaryAlone), entrant('replicas', 'spread over 2 replicas (createReplicaPool)', spread)];
  const lines = [
    '### Read throughput: `execute` point selects',
    '',
    '| concurrency | primary alone (ops/s) | over 2 replicas (ops/s) | replicas / primary (median of rounds) |',
    '|---:|---:|---:|---:|',
  ];
  try {
    await spread.ready();
    for (const e of entrants) await runFor(e, 200, CONNECTION_LIMIT); // connect everything, warm the JIT
    for (const concurrency of CONCURRENCIES) {
      progress(`read throughput, concurrency ${concurrency}`);
      const rounds: Record<string, number[]> = { primary: [], replicas: [] };
      for (let round = 0; round < settings.rounds; round++) {
        const order = round % 2 === 0 ? entrants : [...entrants].reverse();
        for (const e of order) rounds[e.id]!.push((await runFor(e, settings.roundMs, concurrency)).opsPerSec);
      }
      const ratio = median(rounds.replicas!.map((value, i) => value / rounds.primary![i]!));
      lines.push(`| ${concurrency} | ${Math.round(median(rounds.primary!))} | ${Math.round(median(rounds.replicas!))} | ${ratio.toFixed(2)}x |`);
    }
    const reads = spread.stats().reads;
    lines.push('', `The replica pool ran ${reads.replica} reads on replicas and ${reads.fallback} on the primary (fallback).`);
  } finally {
    await Promise.all([primaryAlone.end(), spread.end()]);
  }
  return lines.join('\n');
}
