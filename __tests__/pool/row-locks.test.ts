/**
 * Locks are not held hostage: the row locks of an abandoned transaction are freed
 * within about one round trip in the default `cleanup: 'release'` mode, while the
 * pool sits idle. In `cleanup: 'checkout'` mode they stay held until the next
 * checkout, which rolls back before it hands the connection out.
 *
 * The side connection probes with `SELECT ... FOR UPDATE NOWAIT`, which fails at
 * once with ER_LOCK_WAIT_TIMEOUT while another connection holds the row.
 */
import * as mysql2 from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { createPool, type PoolConnection } from '../../src/index';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { isRowLocked, nextEvent, pause, waitUntil } from './helpers';

const table = uniqueTable('row_locks');
let side: Connection;

beforeAll(async () => {
  side = await sideConnection();
  await side.query('SET SESSION innodb_lock_wait_timeout = 1'); // a safety net; NOWAIT should never wait
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  await side.query(`INSERT INTO ${table} (id, v) VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)`);
});

afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
});

/** Ways to take a row lock inside a transaction. */
const lockers: Array<[string, (conn: PoolConnection, id: number) => Promise<unknown>]> = [
  ['SELECT ... FOR UPDATE', (conn, id) => conn.query(`SELECT v FROM ${table} WHERE id = ? FOR UPDATE`, [id])],
  ['UPDATE', (conn, id) => conn.query(`UPDATE ${table} SET v = v + 1 WHERE id = ?`, [id])],
];

describe("cleanup: 'release' (default)", () => {
  test.each(lockers.map(([name, lock], i) => [name, lock, i + 1] as const))(
    'a row lock taken with %s and abandoned is freed within 2 s while the pool sits idle',
    async (_name, lock, id) => {
      const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
      try {
        const conn = await pool.getConnection();
        await conn.beginTransaction();
        await lock(conn, id);
        expect(await isRowLocked(side, table, id)).toBe(true); // the probe can see a held lock

        const rolledBack = nextEvent(pool, 'rollback');
        conn.release();
        // Nothing else touches the pool: only the background ROLLBACK can free the lock.
        const elapsed = await waitUntil(async () => !(await isRowLocked(side, table, id)), 2_000);
        expect(elapsed).toBeLessThan(2_000);
        await rolledBack; // the server frees the lock before its OK reaches the pool
        expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, pendingRollback: 0, idle: 1 });
        // The UPDATE was rolled back, not committed.
        const [rows] = await side.query<mysql2.RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = ?`, [id]);
        expect(rows[0]?.v).toBe(0);
      } finally {
        await pool.end();
      }
    },
  );

  test("control: with mysql2's own pool the abandoned lock is still held after 300 ms", async () => {
    const id = 3;
    const pool = mysql2.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(`SELECT v FROM ${table} WHERE id = ? FOR UPDATE`, [id]);
      conn.release();
      await pause(300);
      expect(await isRowLocked(side, table, id)).toBe(true);
    } finally {
      await pool.end();
    }
    await waitUntil(async () => !(await isRowLocked(side, table, id)), 2_000);
  });
});

describe("cleanup: 'checkout'", () => {
  test('the lock stays held while the pool is idle, and is freed before the next lease can run anything', async () => {
    const id = 4;
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, cleanup: 'checkout' });
    try {
      const conn = await pool.getConnection();
      const threadId = conn.threadId;
      await conn.beginTransaction();
      await conn.query(`SELECT v FROM ${table} WHERE id = ? FOR UPDATE`, [id]);
      conn.release();

      await pause(300);
      expect(await isRowLocked(side, table, id)).toBe(true);
      expect(pool.stats()).toMatchObject({ pendingRollback: 1, rolledBack: 0, idle: 0, leased: 0 });

      const order: string[] = [];
      pool.on('rollback', () => order.push('rollback'));
      pool.on('acquire', () => order.push('acquire'));
      const next = await pool.getConnection();
      order.push('getConnection resolved');
      expect(order).toEqual(['rollback', 'acquire', 'getConnection resolved']);
      expect(next.threadId).toBe(threadId);
      // Before the new lease sends anything, the row is already free.
      expect(await isRowLocked(side, table, id)).toBe(false);
      next.release();
      expect(pool.stats()).toMatchObject({ pendingRollback: 0, rolledBack: 1, idle: 1 });
    } finally {
      await pool.end();
    }
  });

  test('a pool-level query waiting for the flagged connection runs only after its ROLLBACK', async () => {
    const id = 5;
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, cleanup: 'checkout' });
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(`UPDATE ${table} SET v = 100 WHERE id = ?`, [id]);
      conn.release();
      expect(await isRowLocked(side, table, id)).toBe(true);

      const rolledBack = nextEvent(pool, 'rollback');
      // Runs on the same connection: it sees the committed value, so the UPDATE was undone first.
      const [rows] = await pool.query<mysql2.RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = ?`, [id]);
      await rolledBack;
      expect(rows[0]?.v).toBe(0);
      expect(await isRowLocked(side, table, id)).toBe(false);
    } finally {
      await pool.end();
    }
  });
});
