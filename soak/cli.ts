/**
 * `npm run soak -- --minutes 10`: the ledger soak against a private MariaDB,
 * with faults throughout; prints a summary and exits 1 on any violation.
 *
 * Options: --minutes N (default 10; fractions allowed), --workers N (8),
 * --connections N (connectionLimit, 5), --fault-interval-ms N (400),
 * --restart-every-s N (120; 0 for none), --seed N.
 *
 * `npm run soak -- --cluster --minutes 10`: the same ledger soak against a
 * private 3-node Galera cluster through createPoolCluster, with node kills,
 * partitions and rejoins (soak/cluster.ts). Options: --minutes, --workers,
 * --connections (per node, 4), --node-fault-every-s N (20),
 * --conn-kill-every-ms N (500), --seed.
 */
import { formatClusterSummary, runClusterSoak } from './cluster';
import { formatSummary, runSoak } from './run';

function arg(name: string, fallback: number): number {
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (at < 0) return fallback;
  const raw = argv[at]!.includes('=') ? argv[at]!.split('=')[1] : argv[at + 1];
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    console.error(`--${name} needs a number >= 0 (got ${String(raw)})`);
    process.exit(2);
  }
  return value;
}

async function main(): Promise<void> {
  if (process.argv.includes('--cluster')) return cluster();
  const minutes = arg('minutes', 10);
  const restartEveryS = arg('restart-every-s', 120);
  const seedArg = arg('seed', -1);
  const summary = await runSoak({
    durationMs: Math.max(10_000, Math.round(minutes * 60_000)),
    workers: arg('workers', 8),
    connectionLimit: arg('connections', 5),
    faultIntervalMs: arg('fault-interval-ms', 400),
    restartEveryMs: restartEveryS * 1000,
    ...(seedArg >= 0 ? { seed: seedArg } : {}),
    log: (line) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`),
  });
  console.log('');
  console.log(formatSummary(summary));
  // No process.exit() on success: the process ending by itself is part of the check (nothing left open).
  if (summary.violations.length > 0) process.exitCode = 1;
}

async function cluster(): Promise<void> {
  const seedArg = arg('seed', -1);
  const summary = await runClusterSoak({
    durationMs: Math.max(20_000, Math.round(arg('minutes', 10) * 60_000)),
    workers: arg('workers', 8),
    connectionLimit: arg('connections', 4),
    nodeFaultEveryMs: arg('node-fault-every-s', 20) * 1000,
    connKillEveryMs: arg('conn-kill-every-ms', 500),
    ...(seedArg >= 0 ? { seed: seedArg } : {}),
    log: (line) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`),
  });
  console.log('');
  console.log(formatClusterSummary(summary));
  if (summary.violations.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
