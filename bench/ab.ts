/**
 * A quick side-by-side for development: one workload, one shape, several
 * entrants in interleaved rounds (the bench's method), printing the median
 * client CPU per operation and the per-round ratios against the first entrant.
 *
 *   npx tsx bench/ab.ts <workload> <connectionLimit> <concurrency> <rounds> <roundMs> <entrant>...
 *
 * Workloads: execute | checkout | transaction | poolTransaction | abandon.
 * Entrants: ours (src/), dist=<dir> (a compiled build of rollback-pool in <dir>),
 * whenDirty, reset (ours with resetOnRelease 'whenDirty' / true), mysql2,
 * mysql2Reset, mariadb. For `poolTransaction` and `abandon`, ours-like entrants
 * run `pool.transaction()` / `pool.begin()` and mysql2 and mariadb run the same by hand.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { createConnection, createPool as createMysql2Pool } from 'mysql2/promise';
import { ensureServer } from '../scripts/server';
import * as source from '../src/index';
import { createContender, loadMariadb, type BenchPool, type OurPool } from './contenders';
import { median, percentile } from './stats';
import { createBenchTable, createLogTable, rowId, runFor, settled, workloads, type Entrant } from './workloads';

type OurModule = typeof source;

async function main(): Promise<void> {
  const [workloadId = 'execute', limitArg = '8', concArg = '32', roundsArg = '9', msArg = '300', ...names] = process.argv.slice(2);
  const connectionLimit = Number(limitArg);
  const concurrency = Number(concArg);
  const server = await ensureServer();
  await loadMariadb();
  const side = await createConnection({ uri: server.url });
  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const table = `rp_ab_${suffix}`;
  const logTable = `rp_ab_log_${suffix}`;
  await createBenchTable(side, table);
  await createLogTable(side, logTable);
  const pools: BenchPool[] = [];
  let nextId = 1;
  try {
    const entrants = (names.length > 0 ? names : ['ours', 'mysql2']).map((name): Entrant => {
      const ourModule = name.startsWith('dist=') ? (require(resolve(name.slice(5).split(',')[0]!, 'index.js')) as OurModule) : source;
      const ourOptions = name === 'whenDirty' ? { resetOnRelease: 'whenDirty' as const } : name === 'reset' ? { resetOnRelease: true } : name === 'oursNoTrace' || name.endsWith(',notrace') ? { trace: false } : {};
      const isOurs = name === 'ours' || name.startsWith('dist=') || name === 'whenDirty' || name === 'reset' || name === 'oursNoTrace';
      const pool: BenchPool = isOurs
        ? ourModule.createPool({ uri: server.url, connectionLimit, ...ourOptions })
        : name === 'mysql2NoTrace'
          ? createMysql2Pool({ uri: server.url, connectionLimit, trace: false })
          : createContender(name as 'mysql2' | 'mysql2Reset' | 'mariadb', server.url, connectionLimit).pool;
      pools.push(pool);
      const select = `SELECT id, v FROM ${table} WHERE id = ?`;
      const update = `UPDATE ${table} SET v = v + 1 WHERE id = ?`;
      const insert = `INSERT INTO ${logTable} (id, who, abandoned) VALUES (?, ?, ?)`;
      if (workloadId === 'poolTransaction') {
        if (isOurs) {
          const ours = pool as OurPool;
          return { id: name, label: name, op: (i) => ours.transaction(async (tx) => { await tx.execute(select, [rowId(i)]); await tx.execute(update, [rowId(i)]); }) };
        }
        return {
          id: name,
          label: name,
          op: async (i) => {
            const conn = await pool.getConnection();
            try {
              await conn.beginTransaction();
              await conn.execute(select, [rowId(i)]);
              await conn.execute(update, [rowId(i)]);
              await conn.commit();
            } finally {
              conn.release();
            }
          },
        };
      }
      if (workloadId === 'abandon' || workloadId === 'explicit') {
        const ours = pool as OurPool;
        if (isOurs) {
          return {
            id: name,
            label: name,
            op: async (i) => {
              const tx = await ours.begin();
              await tx.execute(insert, [nextId++, 9, 0]);
              if (i % 5 === 4) {
                if (workloadId === 'abandon') tx[Symbol.dispose]();
                else await tx.rollback();
                return;
              }
              await tx.commit();
            },
            settle: () => settled(ours),
          };
        }
        return {
          id: name,
          label: name,
          op: async (i) => {
            const conn = await pool.getConnection();
            try {
              await conn.beginTransaction();
              await conn.execute(insert, [nextId++, 9, 0]);
              if (i % 5 === 4) await conn.rollback();
              else await conn.commit();
            } finally {
              conn.release();
            }
          },
        };
      }
      const workload = workloads(table).find((w) => w.id === workloadId);
      if (!workload) throw new Error(`unknown workload ${workloadId}`);
      return { id: name, label: name, op: (i) => workload.op(pool, rowId(i)) };
    });
    for (const entrant of entrants) {
      await runFor(entrant, 300, connectionLimit);
      await runFor(entrant, 300, concurrency);
    }
    const cpu = entrants.map(() => [] as number[]);
    const ops = entrants.map(() => [] as number[]);
    const rounds = Number(roundsArg);
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < entrants.length; k++) {
        const index = (k + round) % entrants.length;
        const result = await runFor(entrants[index]!, Number(msArg), concurrency);
        cpu[index]!.push(result.cpuUsPerOp);
        ops[index]!.push(result.opsPerSec);
      }
    }
    console.log(`${workloadId}, connectionLimit ${connectionLimit}, concurrency ${concurrency}, ${rounds} rounds x ${msArg} ms`);
    entrants.forEach((entrant, index) => {
      const cpuRatio = cpu[index]!.map((value, round) => value / cpu[0]![round]!);
      const opsRatio = ops[index]!.map((value, round) => value / ops[0]![round]!);
      console.log(
        `  ${entrant.label.padEnd(24)} ${median(cpu[index]!).toFixed(1).padStart(6)} µs/op  ${Math.round(median(ops[index]!)).toString().padStart(6)} ops/s` +
          (index === 0 ? '' : `  cpu ${median(cpuRatio).toFixed(3)}x (${percentile(cpuRatio, 25).toFixed(2)}–${percentile(cpuRatio, 75).toFixed(2)})  ops ${median(opsRatio).toFixed(3)}x (${percentile(opsRatio, 25).toFixed(2)}–${percentile(opsRatio, 75).toFixed(2)})`),
      );
    });
  } finally {
    for (const pool of pools) await pool.end();
    await side.query(`DROP TABLE IF EXISTS ${table}`);
    await side.query(`DROP TABLE IF EXISTS ${logTable}`);
    await side.end();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
