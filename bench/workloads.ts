/**
 * The workloads, and the loops that run one of them: for a fixed time (the
 * benchmark's rounds) or a fixed number of operations (profiling).
 *
 * Pool workloads (the first table) are the same code on every contender's
 * pool. Transaction workloads (the second and third tables) are written the
 * way each API is meant to be used, so they are built per entrant.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { BenchPool, OurPool } from './contenders';

export type WorkloadId = 'execute' | 'checkout' | 'transaction';

export interface Workload {
  id: WorkloadId;
  label: string;
  /** One operation, reading row `id`. */
  op(pool: BenchPool, id: number): Promise<void>;
}

/** Rows in the benchmark table; point selects spread over all of them. */
export const TABLE_ROWS = 1_000;

/** The row operation `i` of a round works on: a stride coprime with TABLE_ROWS visits every row, not sequentially. */
export function rowId(i: number): number {
  return ((i * 7) % TABLE_ROWS) + 1;
}

export function workloads(table: string): Workload[] {
  const select = `SELECT id, v FROM ${table} WHERE id = ?`;
  return [
    {
      id: 'execute',
      label: '`pool.execute` point select',
      op: async (pool, id) => {
        await pool.execute(select, [id]);
      },
    },
    {
      id: 'checkout',
      label: 'getConnection + execute + release',
      op: async (pool, id) => {
        const conn = await pool.getConnection();
        try {
          await conn.execute(select, [id]);
        } finally {
          conn.release();
        }
      },
    },
    {
      id: 'transaction',
      label: 'getConnection + begin + select + commit + release',
      op: async (pool, id) => {
        const conn = await pool.getConnection();
        try {
          await conn.beginTransaction();
          await conn.execute(select, [id]);
          await conn.commit();
        } finally {
          conn.release();
        }
      },
    },
  ];
}

/** One side of a side-by-side comparison: something that runs operation number `i` of a round. */
export interface Entrant {
  id: string;
  label: string;
  op(i: number): Promise<void>;
  /**
   * Waits, inside the timed window, for work the entrant left running in the
   * background (our pool's ROLLBACKs of abandoned transactions), so that it is
   * charged to this entrant and does not spill into the next one's round.
   */
  settle?(): Promise<void>;
}

/** A pool workload on one contender's pool. */
export function poolEntrant(id: string, label: string, pool: BenchPool, workload: Workload): Entrant {
  return { id, label, op: (i) => workload.op(pool, rowId(i)) };
}

export interface RoundResult {
  /** Operations completed. */
  ops: number;
  opsPerSec: number;
  /** This process's CPU time (user + system) per operation, in microseconds. */
  cpuUsPerOp: number;
}

/**
 * Runs `entrant` with `concurrency` workers for `durationMs`: no operation
 * starts after the deadline; the ones in flight finish and are counted.
 */
export async function runFor(entrant: Entrant, durationMs: number, concurrency: number): Promise<RoundResult> {
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  const deadline = startedAt + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) await entrant.op(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (entrant.settle) await entrant.settle();
  const seconds = (performance.now() - startedAt) / 1_000;
  const cpu = process.cpuUsage(cpuBefore);
  return { ops: next, opsPerSec: next / seconds, cpuUsPerOp: (cpu.user + cpu.system) / next };
}

/** Runs `total` operations of a pool workload with `concurrency` workers (for profiling). */
export async function runOps(pool: BenchPool, workload: Workload, total: number, concurrency: number): Promise<RoundResult> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      await workload.op(pool, rowId(i));
    }
  };
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - startedAt) / 1_000;
  const cpu = process.cpuUsage(cpuBefore);
  return { ops: total, opsPerSec: total / seconds, cpuUsPerOp: (cpu.user + cpu.system) / total };
}

export async function createBenchTable(side: Connection, table: string): Promise<void> {
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  const rows = Array.from({ length: TABLE_ROWS }, (_, i) => [i + 1, (i * 37) % 1_000]);
  await side.query(`INSERT INTO ${table} (id, v) VALUES ?`, [rows]);
}

// ---- Transaction workloads ------------------------------------------------------------

/** `pool.transaction()` (ours) against the same transaction written by hand on mysql2. */
export const TX_LABEL = 'begin + select + update + commit';

/** Every fifth transaction of a round is abandoned (or, in the baselines, rolled back explicitly). */
export const ABANDON_EVERY = 5;
export const ABANDON_LABEL = `begin + insert + commit, ${100 / ABANDON_EVERY}% abandoned`;

function abandons(i: number): boolean {
  return i % ABANDON_EVERY === ABANDON_EVERY - 1;
}

/**
 * Workload (a): a read-modify-write transaction on one row (by primary key,
 * spread over the table: no deadlocks). `byHand`: other pools (mysql2's, the
 * mariadb connector's), each running the same transaction by hand.
 */
export function txEntrants(table: string, ours: OurPool, mysql2: BenchPool, byHand: Array<{ id: string; label: string; pool: BenchPool }> = []): Entrant[] {
  const select = `SELECT id, v FROM ${table} WHERE id = ?`;
  const update = `UPDATE ${table} SET v = v + 1 WHERE id = ?`;
  return [
    {
      id: 'ours',
      label: 'rollback-pool `pool.transaction()`',
      op: async (i) => {
        const id = rowId(i);
        await ours.transaction(async (tx) => {
          await tx.execute(select, [id]);
          await tx.execute(update, [id]);
        });
      },
    },
    ...[{ id: 'mysql2', label: 'mysql2 (default) by hand', pool: mysql2 }, ...byHand].map(({ id: entrantId, label, pool }): Entrant => ({
      id: entrantId,
      label,
      op: async (i) => {
        const id = rowId(i);
        const conn = await pool.getConnection();
        try {
          await conn.beginTransaction();
          await conn.execute(select, [id]);
          await conn.execute(update, [id]);
          await conn.commit();
        } catch (error) {
          await conn.rollback();
          throw error;
        } finally {
          conn.release();
        }
      },
    })),
  ];
}

/** What an abandon entrant did, to check against the table's contents at the end. */
export interface AbandonCounts {
  /** Rows inserted by transactions that committed. */
  committed: number;
  /** Rows inserted by transactions that were abandoned or rolled back. */
  abandoned: number;
}

export interface AbandonEntrants {
  entrants: Entrant[];
  /** By entrant id; the `who` column of the log table is the entrant's position + 1. */
  counts: Record<string, AbandonCounts>;
}

export async function createLogTable(side: Connection, table: string): Promise<void> {
  await side.query(`CREATE TABLE ${table} (id BIGINT PRIMARY KEY, who TINYINT NOT NULL, abandoned TINYINT NOT NULL) ENGINE=InnoDB`);
}

/**
 * Workload (b): each transaction inserts one row with a unique id into the log
 * table and commits, except every fifth, which is abandoned (ours:
 * `tx[Symbol.dispose]()`, the pool rolls it back) or rolled back explicitly
 * (the baselines). The row says who inserted it and whether it was meant to be
 * abandoned, so the table's contents can be checked at the end.
 */
export function abandonEntrants(logTable: string, ours: OurPool, mysql2: BenchPool): AbandonEntrants {
  const insert = `INSERT INTO ${logTable} (id, who, abandoned) VALUES (?, ?, ?)`;
  let nextId = 1;
  const counts: Record<string, AbandonCounts> = {};
  const tally = (id: string): AbandonCounts => (counts[id] = { committed: 0, abandoned: 0 });
  const oursCounts = tally('ours');
  const explicitCounts = tally('oursExplicit');
  const mysql2Counts = tally('mysql2');
  const settle = (): Promise<void> => settled(ours);
  const entrants: Entrant[] = [
    {
      id: 'ours',
      label: 'rollback-pool, abandoned (`tx[Symbol.dispose]()`)',
      op: async (i) => {
        const abandon = abandons(i);
        const tx = await ours.begin();
        await tx.execute(insert, [nextId++, 1, abandon ? 1 : 0]);
        if (abandon) {
          tx[Symbol.dispose]();
          oursCounts.abandoned++;
          return;
        }
        await tx.commit();
        oursCounts.committed++;
      },
      settle,
    },
    {
      id: 'oursExplicit',
      label: 'rollback-pool, explicit `await tx.rollback()`',
      op: async (i) => {
        const abandon = abandons(i);
        const tx = await ours.begin();
        await tx.execute(insert, [nextId++, 2, abandon ? 1 : 0]);
        if (abandon) {
          await tx.rollback();
          explicitCounts.abandoned++;
          return;
        }
        await tx.commit();
        explicitCounts.committed++;
      },
    },
    {
      id: 'mysql2',
      label: 'mysql2 (default) by hand, explicit rollback',
      op: async (i) => {
        const abandon = abandons(i);
        const conn = await mysql2.getConnection();
        try {
          await conn.beginTransaction();
          await conn.execute(insert, [nextId++, 3, abandon ? 1 : 0]);
          if (abandon) {
            await conn.rollback();
            mysql2Counts.abandoned++;
            return;
          }
          await conn.commit();
          mysql2Counts.committed++;
        } finally {
          conn.release();
        }
      },
    },
  ];
  return { entrants, counts };
}

/**
 * Resolves once every transaction the pool saw abandoned has been rolled back
 * (or failed to), listening to its events only while some are pending: no
 * polling to add CPU time, no listener on the hot path.
 */
export function settled(pool: OurPool): Promise<void> {
  const done = (): boolean => {
    const stats = pool.stats();
    return stats.rolledBack + stats.rollbackFailures >= stats.abandoned;
  };
  if (done()) return Promise.resolve();
  return new Promise((resolve) => {
    const check = (): void => {
      if (!done()) return;
      pool.off('rollback', check);
      pool.off('rollbackError', check);
      resolve();
    };
    pool.on('rollback', check);
    pool.on('rollbackError', check);
  });
}

export interface LogCountRow extends RowDataPacket {
  who: number;
  committed: number | string;
  abandoned: number | string;
}

/** Rows in the log table, by `who`: those meant to commit, and those meant to be abandoned (must be 0). */
export async function countLog(side: Connection, logTable: string): Promise<Map<number, AbandonCounts>> {
  const [rows] = await side.query<LogCountRow[]>(
    `SELECT who, SUM(abandoned = 0) AS committed, SUM(abandoned = 1) AS abandoned FROM ${logTable} GROUP BY who`,
  );
  return new Map(rows.map((row) => [Number(row.who), { committed: Number(row.committed), abandoned: Number(row.abandoned) }]));
}
