/**
 * Heap of the pools: per idle connection, per lease held, and over a million
 * checkouts (no growth). Run by `bench/run.ts` in a child process of its own
 * (`--expose-gc`), so that nothing else lives in the heap; alone:
 *
 *   node --expose-gc --import tsx bench/memory.ts [--dist[=DIR]] [--quick]
 *
 * Prints one JSON `MemoryReport` on stdout. Every figure is
 * `process.memoryUsage().heapUsed` after a full garbage collection (twice, to
 * let FinalizationRegistry and weak callbacks run).
 */
import { join } from 'node:path';
import { ensureServer } from '../scripts/server';
import { createContender, createOurPool, loadMariadb, useBuild, type BenchPool, type ContenderId } from './contenders';

export interface MemoryRow {
  id: ContenderId;
  label: string;
  connections: number;
  /** Heap growth from an empty process to a pool with `connections` idle connections, divided by them (the pool's own objects included). */
  perIdleConnectionBytes: number;
  /** Heap growth while every connection is held by a lease, per lease. */
  perLeaseBytes: number;
  /** Heap after 0, 1/4, ... of the checkouts (getConnection + release). */
  checkoutSamples: Array<{ checkouts: number; heapBytes: number }>;
  /** Last sample minus the first. */
  growthBytes: number;
}

export interface MemoryReport {
  checkouts: number;
  concurrency: number;
  rows: MemoryRow[];
}

const CONNECTIONS = 32;
const CONCURRENCY = 8;

async function settledHeap(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

/** Loads and compiles what a pool of this kind uses (modules, parser caches, JIT code), so that it is not counted as the pool's. */
async function warmUp(id: ContenderId, url: string): Promise<void> {
  const pool: BenchPool = id === 'ours' ? createOurPool(url, 2) : createContender(id, url, 2).pool;
  try {
    await runCheckouts(pool, 20_000, 2, true);
  } finally {
    await pool.end();
  }
}

async function runCheckouts(pool: BenchPool, total: number, concurrency: number, withStatement = false): Promise<void> {
  let done = 0;
  const worker = async (): Promise<void> => {
    while (done < total) {
      done++;
      const lease = await pool.getConnection();
      if (withStatement && done % 10 === 0) await lease.execute('SELECT 1');
      lease.release();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function measure(id: ContenderId, label: string, url: string, checkouts: number): Promise<MemoryRow> {
  await warmUp(id, url);
  const before = await settledHeap();
  const pool: BenchPool = id === 'ours' ? createOurPool(url, CONNECTIONS) : createContender(id, url, CONNECTIONS).pool;
  try {
    // Open every connection (and run one statement on each, so that per-connection caches exist), then let them go idle.
    let leases = await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.getConnection()));
    await Promise.all(leases.map((lease) => lease.execute('SELECT 1')));
    for (const lease of leases) lease.release();
    leases = [];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const idle = await settledHeap();
    leases = await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.getConnection()));
    const held = await settledHeap();
    for (const lease of leases) lease.release();
    leases = [];
    await runCheckouts(pool, checkouts / 10, CONCURRENCY); // this pool's own first checkouts (the JIT settles), not counted
    const samples: Array<{ checkouts: number; heapBytes: number }> = [{ checkouts: 0, heapBytes: await settledHeap() }];
    const step = checkouts / 4;
    for (let quarter = 1; quarter <= 4; quarter++) {
      await runCheckouts(pool, step, CONCURRENCY);
      samples.push({ checkouts: step * quarter, heapBytes: await settledHeap() });
    }
    return {
      id,
      label,
      connections: CONNECTIONS,
      perIdleConnectionBytes: (idle - before) / CONNECTIONS,
      perLeaseBytes: (held - idle) / CONNECTIONS,
      checkoutSamples: samples,
      growthBytes: samples[samples.length - 1]!.heapBytes - samples[0]!.heapBytes,
    };
  } finally {
    await pool.end();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const distArg = args.find((arg) => arg === '--dist' || arg.startsWith('--dist='));
  if (distArg !== undefined) useBuild(distArg === '--dist' ? join(__dirname, '..', 'dist') : distArg.slice('--dist='.length));
  const checkouts = args.includes('--quick') ? 200_000 : 1_000_000;
  await loadMariadb();
  const server = await ensureServer();
  try {
    const rows: MemoryRow[] = [];
    const labels: Record<string, string> = { ours: 'rollback-pool', mysql2: 'mysql2 (default)', mariadb: 'mariadb' };
    for (const id of ['ours', 'mysql2', 'mariadb'] as const) rows.push(await measure(id, labels[id]!, server.url, checkouts));
    const report: MemoryReport = { checkouts, concurrency: CONCURRENCY, rows };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
