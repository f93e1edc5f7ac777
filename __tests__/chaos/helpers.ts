/**
 * Helpers shared by the chaos tests (not a test file: jest only runs *.test.ts).
 * "Back to full size" is checked by demand, not by reading counters alone: every
 * slot is checked out at once, each must be a live connection outside any
 * transaction, and then the pool must hold exactly that many idle connections.
 */
import type { Pool, PoolConnection } from '../../src/index';
import { waitUntil } from '../tx/helpers';

/** What the server says about a lease's session, read through the lease itself. */
export async function sessionState(conn: PoolConnection): Promise<{ inTransaction: number; innodbTrx: number; autocommit: number }> {
  const [rows] = (await conn.query(
    'SELECT @@in_transaction AS t, @@autocommit AS a, ' +
      '(SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()) AS n',
  )) as unknown as [Array<{ t: number; a: number; n: number }>];
  return { inTransaction: Number(rows[0]!.t), innodbTrx: Number(rows[0]!.n), autocommit: Number(rows[0]!.a) };
}

/**
 * Checks out `size` connections at once (the pool reconnects what it lost),
 * asserts each is clean, releases them, and asserts the pool is whole again:
 * `size` connections, all idle, nothing pending. Returns the thread ids.
 */
export async function expectWhole(pool: Pool, size: number): Promise<number[]> {
  const leases = await Promise.all(Array.from({ length: size }, () => pool.getConnection()));
  try {
    for (const lease of leases) {
      expect(await sessionState(lease)).toEqual({ inTransaction: 0, innodbTrx: 0, autocommit: 1 });
    }
  } finally {
    for (const lease of leases) lease.release();
  }
  expect(pool.stats()).toMatchObject({ total: size, idle: size, leased: 0, pendingRollback: 0, waiting: 0 });
  return leases.map((lease) => lease.threadId);
}

/** Waits (bounded) until nothing is leased or pending rollback any more. */
export async function settled(pool: Pool, timeoutMs = 10_000): Promise<void> {
  await waitUntil(() => {
    const s = pool.stats();
    return s.leased === 0 && s.pendingRollback === 0 && s.waiting === 0;
  }, timeoutMs);
}

/**
 * `INSERT ... SELECT` of `n` (<= 10000) rows into `(id, v)`, ids from `from`: a transaction with
 * that many row locks and undo records (its ROLLBACK takes a while). A cross join keeps the
 * recursion under MySQL's default cte_max_recursion_depth of 1000.
 */
export function bulkInsertSql(table: string, from: number, n: number): string {
  return `INSERT INTO ${table} (id, v) WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k < 99) ` +
    `SELECT ${from} + a.k * 100 + b.k, 1 FROM s a CROSS JOIN s b WHERE a.k * 100 + b.k < ${n}`;
}

/** Millisecond timer. */
export function since(startedAt: number): number {
  return Date.now() - startedAt;
}
