/**
 * Runs one workload on one contender, for profiling:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/rp-prof --import tsx bench/profile.ts ours execute 1 [ops] [connectionLimit]
 *
 * Arguments: contender (ours | mysql2 | mysql2Reset | mariadb), workload
 * (execute | checkout | transaction), concurrency, the number of operations
 * (default 50000) and the pool's connectionLimit (default 32). Prints ops/s and
 * the client's CPU time per operation. With `RP_DIST=dist` it runs the
 * compiled build.
 */
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { ensureServer } from '../scripts/server';
import { CONTENDER_LABELS, createContender, useBuild, type ContenderId } from './contenders';
import { createBenchTable, runOps, workloads } from './workloads';

async function main(): Promise<void> {
  const [contenderArg = 'ours', workloadArg = 'execute', concurrencyArg = '1', opsArg = '50000', limitArg = '32'] = process.argv.slice(2);
  if (process.env.RP_DIST) useBuild(process.env.RP_DIST);
  if (!(contenderArg in CONTENDER_LABELS)) throw new Error(`unknown contender ${contenderArg}`);
  const concurrency = Number(concurrencyArg);
  const ops = Number(opsArg);
  const server = await ensureServer();
  const side = await createConnection({ uri: server.url });
  const table = `rp_prof_${process.pid}_${randomBytes(3).toString('hex')}`;
  const contender = createContender(contenderArg as ContenderId, server.url, Number(limitArg));
  try {
    await createBenchTable(side, table);
    const workload = workloads(table).find((w) => w.id === workloadArg);
    if (!workload) throw new Error(`unknown workload ${workloadArg}`);
    await runOps(contender.pool, workload, 2_000, concurrency); // warm-up
    const { opsPerSec, cpuUsPerOp } = await runOps(contender.pool, workload, ops, concurrency);
    console.log(`${contender.label} ${workload.id} c=${concurrency} limit=${limitArg}: ${Math.round(opsPerSec)} ops/s, ` +
      `client CPU ${cpuUsPerOp.toFixed(1)} µs/op`);
  } finally {
    await contender.pool.end();
    await side.query(`DROP TABLE IF EXISTS ${table}`);
    await side.end();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
