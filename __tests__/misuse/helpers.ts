/**
 * Shared by the misuse tests (not a test file: jest only runs *.test.ts).
 *
 * Every misuse case ends with the same question: was anything lost or left
 * open? `expectNothingLeftOpen` answers it from outside the pool (a side
 * connection: committed rows, row locks) and from inside (pool.stats(), and
 * every idle connection probed for an open transaction). Nothing here sleeps to
 * win a race: waits are bounded polls on a condition.
 */
import type { Connection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { createPool, RollbackPoolError, type Pool, type PoolConnection, type PoolOptions, type PoolStats } from '../../src/index';
import { isRowLocked, mysqlUrl, sideConnection, threadAlive, uniqueTable } from '../support/db';

export { isRowLocked, threadAlive };
export { deferred, rejection, settle } from '../support/async';

/** mysql2's OK-packet flag: the session is inside a transaction. */
const SERVER_STATUS_IN_TRANS = 0x0001;
/** mysql2's OK-packet flag: autocommit is on. */
const SERVER_STATUS_AUTOCOMMIT = 0x0002;



/** Polls `check` until true; rejects after `timeoutMs` (a generous bound, not a race). */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}


/**
 * One side connection and one `(id INT PRIMARY KEY, v INT)` table per test file,
 * created before its tests and dropped after. Cases use disjoint id ranges
 * (`rows(base)`), so they never see each other's rows.
 */
export function misuseTable(prefix: string): { side: () => Connection; table: () => string } {
  const table = uniqueTable(prefix);
  let side: Connection | undefined;
  beforeAll(async () => {
    side = await sideConnection();
    await side.query(`CREATE TABLE ${table} (id INT NOT NULL PRIMARY KEY, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    if (!side) return;
    await side.query(`DROP TABLE IF EXISTS ${table}`);
    await side.end();
  });
  return {
    side: () => {
      if (!side) throw new Error('side connection not open yet');
      return side;
    },
    table: () => table,
  };
}

/** The committed ids in [base, base + 100), as another connection sees them. */
export async function committedIds(side: Connection, table: string, base: number): Promise<number[]> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table} WHERE id >= ? AND id < ? ORDER BY id`, [base, base + 100]);
  return rows.map((row) => Number(row.id) - base);
}

let nextBase = 1_000;
/** A fresh id range for one case: ids base + 0 .. base + 99. */
export function freshBase(): number {
  nextBase += 100;
  return nextBase;
}

/** A pool on the test server; `uri` first so that explicit options win. */
export function testPool(extra: PoolOptions = {}): Pool {
  return createPool({ uri: mysqlUrl(), acquireTimeoutMs: 10_000, ...extra });
}


/**
 * Fails unless the lease's session is outside any transaction: the server's
 * own status flags on a no-op statement (exact, MySQL and MariaDB alike), and
 * INNODB_TRX for this connection. INNODB_TRX is a cache refreshed at most every
 * 100 ms (other workers read it too), so it is polled a few times: a real
 * leaked transaction never goes away while we hold the connection, a stale
 * cache row does.
 */
export async function expectNotInTransaction(lease: PoolConnection): Promise<void> {
  const [ok] = await lease.query<ResultSetHeader>('DO 0');
  expect({ threadId: lease.threadId, inTrans: (ok.serverStatus & SERVER_STATUS_IN_TRANS) !== 0 }).toEqual({ threadId: lease.threadId, inTrans: false });
  expect({ threadId: lease.threadId, autocommit: (ok.serverStatus & SERVER_STATUS_AUTOCOMMIT) !== 0 }).toEqual({ threadId: lease.threadId, autocommit: true });
  let trx: RowDataPacket[] = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    [trx] = await lease.query<RowDataPacket[]>('SELECT trx_id FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()');
    if (trx.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  expect({ threadId: lease.threadId, trx }).toEqual({ threadId: lease.threadId, trx: [] });
}

export interface Leftovers {
  /** Offsets (from `base`) that must be committed, and nothing else in the range. */
  committed: number[];
  /** Offsets that must not be row-locked by anyone (default: every committed offset plus 0..9). */
  unlocked?: number[];
  /** How many idle connections the pool must settle at (total === idle). */
  idle: number;
  /** Counters the case expects, e.g. `{ abandoned: 1, rolledBack: 1 }`. */
  counters?: Partial<PoolStats>;
}

/**
 * Nothing lost or left open: the committed rows are exactly `committed`, no row
 * lock is held, the pool is back to `idle` idle connections with nothing
 * leased, waiting or pending a rollback, and every one of those connections is
 * outside any transaction.
 */
export async function expectNothingLeftOpen(pool: Pool, side: Connection, table: string, base: number, expected: Leftovers): Promise<void> {
  expect(await committedIds(side, table, base)).toEqual(expected.committed);
  const unlocked = expected.unlocked ?? [...new Set([...expected.committed, ...Array.from({ length: 10 }, (_, i) => i)])];
  for (const offset of unlocked) {
    expect({ row: offset, locked: await isRowLocked(side, table, base + offset) }).toEqual({ row: offset, locked: false });
  }
  await waitUntil('the pool to settle (nothing leased, waiting or pending a rollback)', () => {
    const s = pool.stats();
    return s.leased === 0 && s.waiting === 0 && s.pendingRollback === 0;
  });
  expect(pool.stats()).toMatchObject({ total: expected.idle, idle: expected.idle, leased: 0, waiting: 0, pendingRollback: 0, ...(expected.counters ?? {}) });
  // Every idle connection, not just the warmest: take them all at once (LIFO idle stack), probe, give back.
  const leases: PoolConnection[] = [];
  try {
    for (let i = 0; i < expected.idle; i++) leases.push(await pool.getConnection());
    for (const lease of leases) await expectNotInTransaction(lease);
  } finally {
    for (const lease of leases) lease.release();
  }
  expect(pool.stats()).toMatchObject({ total: expected.idle, idle: expected.idle, leased: 0, pendingRollback: 0 });
}

/** Asserts a rollback-pool error: its class, its stable code, and that it is a RollbackPoolError. */
export function expectPoolError(error: unknown, cls: abstract new (...args: never[]) => Error, code: string): void {
  expect(error).toBeInstanceOf(cls);
  expect(error).toBeInstanceOf(RollbackPoolError);
  expect(error).toMatchObject({ code });
}
