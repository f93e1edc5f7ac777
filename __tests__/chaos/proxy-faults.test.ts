/**
 * Network faults from the fault proxy (__tests__/support/fault-proxy.ts), one at a
 * time, against the real server: latency, a dropped connection (idle, inside a
 * transaction, during the pool's pending ROLLBACK), a black hole (new connections
 * never answered; an established connection going silent), and a connection cut
 * half way through a result. After each: nothing acknowledged is lost, nothing
 * uncommitted is visible, the server has no transaction left behind, and the pool
 * is back at full size with clean connections.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { startProxy, type Proxy, type QueryAction } from '../support/fault-proxy';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { codeOf, ids, nextEvent, rejection, sideDb, testPool, threadAlive, waitUntil } from '../tx/helpers';
import { READ_ROWS, readsDdl } from '../../soak/workload';
import { expectWhole, settled, since } from './helpers';

const db = sideDb('chaos_proxy');
const reads = uniqueTable('chaos_reads');

let proxy: Proxy;
/** What the proxy does with the next statement matching `hook.match` (reset before each test). */
const hook: { match: (sql: string) => boolean; action: QueryAction } = { match: () => false, action: 'forward' };

beforeAll(async () => {
  for (const sql of readsDdl(reads)) await db.side().query(sql);
  proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql) => {
      if (!hook.match(sql)) return 'forward';
      hook.match = () => false; // once
      return hook.action;
    },
  });
});
afterAll(async () => {
  await proxy.close();
  const side = await sideConnection(); // sideDb's own connection is closed by its afterAll, which runs first
  await side.query(`DROP TABLE IF EXISTS ${reads}`);
  await side.end();
});
beforeEach(() => {
  hook.match = () => false;
  proxy.latencyMs = 0;
  proxy.blackHoleNew = false;
});

function liveConnection(threadId: number) {
  const conn = proxy.live().find((c) => c.threadId === threadId);
  if (!conn) throw new Error(`no proxied connection for thread ${threadId}`);
  return conn;
}

describe('latency', () => {
  test('40 ms each way: statements are slower, commits all land, abandoned work never does, the pool is whole', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 3 }, proxy.url);
    try {
      await expectWhole(pool, 3);
      proxy.latencyMs = 40;
      const startedAt = Date.now();
      await pool.query('SELECT 1');
      expect(since(startedAt)).toBeGreaterThanOrEqual(70); // a round trip through the slowed link (2 x 40 ms)

      await Promise.all(Array.from({ length: 12 }, async (_, i) => {
        if (i % 2 === 0) {
          await pool.transaction((tx) => tx.query(`INSERT INTO ${table} (id) VALUES (?)`, [i]));
        } else {
          const conn = await pool.getConnection();
          await conn.beginTransaction();
          await conn.query(`INSERT INTO ${table} (id) VALUES (?)`, [i]);
          conn.release(); // without commit: rolled back by the pool, over the slow link
        }
      }));
      await settled(pool);
      proxy.latencyMs = 0;
      expect(await ids(db.side(), table)).toEqual([0, 2, 4, 6, 8, 10]);
      expect(pool.stats()).toMatchObject({ abandoned: 6, rolledBack: 6, rollbackFailures: 0, destroyed: 0 });
      await expectWhole(pool, 3);
    } finally {
      await pool.end();
    }
  });
});

describe('drop (connection reset)', () => {
  test('inside a transaction, noticed before COMMIT: the COMMIT is never sent (ERR_CONNECTION_LOST), nothing is committed, the pool reconnects', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 2 }, proxy.url);
    try {
      await pool.transaction((tx) => tx.query(`INSERT INTO ${table} (id) VALUES (1)`)); // committed before the fault
      const tx = await pool.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
      const destroyed = nextEvent(pool, 'destroy');
      liveConnection(tx.threadId).drop();
      await destroyed;
      expect(await rejection(tx.commit())).toMatchObject({ code: 'ERR_CONNECTION_LOST', neverSent: true });
      expect(tx.state).toBe('rolledBack');
      await waitUntil(async () => !(await threadAlive(db.side(), tx.threadId)), 10_000); // the server rolled it back
      expect(await ids(db.side(), table)).toEqual([1]);
      await expectWhole(pool, 2);
    } finally {
      await pool.end();
    }
  });

  test("during the pool's pending ROLLBACK: the connection is destroyed (rollbackError), nothing is committed, the pool is whole", async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(`INSERT INTO ${table} (id) VALUES (1)`);
      const threadId = conn.threadId;
      hook.match = (sql) => sql === 'ROLLBACK';
      hook.action = 'cut'; // the link goes down as the ROLLBACK is sent
      const failed = nextEvent(pool, 'rollbackError');
      conn.release();
      const [{ threadId: failedId }] = await failed;
      expect(failedId).toBe(threadId);
      await waitUntil(async () => !(await threadAlive(db.side(), threadId)), 10_000);
      expect(await ids(db.side(), table)).toEqual([]);
      const [next] = await expectWhole(pool, 1);
      expect(next).not.toBe(threadId);
      expect(pool.stats()).toMatchObject({ rolledBack: 0, rollbackFailures: 1 });
    } finally {
      await pool.end();
    }
  });

  test('idle connections dropped: none is handed out again, the pool refills with fresh ones', async () => {
    const pool = testPool({ connectionLimit: 3 }, proxy.url);
    try {
      const before = await expectWhole(pool, 3);
      const destroyed = new Set<number>();
      pool.on('destroy', (event) => destroyed.add(event.threadId));
      for (const conn of proxy.live()) if (before.includes(conn.threadId ?? -1)) conn.drop();
      await waitUntil(() => destroyed.size === 3, 10_000);
      const after = await expectWhole(pool, 3);
      expect(after.filter((id) => before.includes(id))).toEqual([]);
    } finally {
      await pool.end();
    }
  });
});

describe('black hole', () => {
  test('new connections accepted and never answered: checkouts fail within the bounds, then the pool fills again', async () => {
    const pool = testPool({ connectionLimit: 2, connectTimeout: 1_000, acquireTimeoutMs: 3_000 }, proxy.url);
    try {
      proxy.blackHoleNew = true;
      const accepted = proxy.connections;
      const startedAt = Date.now();
      const error = await rejection(pool.getConnection());
      expect(since(startedAt)).toBeLessThan(8_000);
      expect(['ETIMEDOUT', 'ERR_ACQUIRE_TIMEOUT']).toContain(codeOf(error));
      expect(proxy.connections).toBeGreaterThan(accepted); // it did reach the black hole
      expect(pool.stats()).toMatchObject({ total: 0, leased: 0, waiting: 0 });
      proxy.blackHoleNew = false;
      await expectWhole(pool, 2);
    } finally {
      await pool.end();
    }
  });

  test('an established connection goes silent mid-transaction: the timeout fences it, the stuck connection is destroyed, nothing is committed', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1, rollbackTimeoutMs: 1_000 }, proxy.url);
    try {
      let threadId = 0;
      const failed = nextEvent(pool, 'rollbackError', 15_000);
      const startedAt = Date.now();
      const error = await rejection(pool.transaction(async (tx) => {
        threadId = tx.threadId;
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        liveConnection(tx.threadId).blackHole();
        await tx.query('SELECT 1'); // never answered
      }, { timeoutMs: 500, onTimeout: 'kill' }));
      expect(codeOf(error)).toBe('ERR_TX_TIMEOUT');
      expect(since(startedAt)).toBeLessThan(5_000);
      await failed; // the ROLLBACK behind the silent statement timed out: destroyed, not reused
      await waitUntil(async () => !(await threadAlive(db.side(), threadId)), 10_000);
      expect(await ids(db.side(), table)).toEqual([]);
      const [next] = await expectWhole(pool, 1);
      expect(next).not.toBe(threadId);
    } finally {
      await pool.end();
    }
  });
});

describe('cut half way through a result', () => {
  const selectReads = `SELECT id, pad FROM ${reads} ORDER BY id`;

  test('in a transaction: the read fails, the callback rejects, nothing of it is committed, the pool is whole', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 2 }, proxy.url);
    try {
      // The result is ~40 KB; 1500 bytes is a few rows into it.
      const [full] = await pool.query<RowDataPacket[]>(selectReads);
      expect(full).toHaveLength(READ_ROWS);
      let threadId = 0;
      hook.match = (sql) => sql === selectReads;
      hook.action = { cutReplyAfter: 1_500 };
      const error = await rejection(pool.transaction(async (tx) => {
        threadId = tx.threadId;
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await tx.query(selectReads);
      }));
      expect((error as { fatal?: boolean }).fatal).toBe(true);
      await waitUntil(async () => !(await threadAlive(db.side(), threadId)), 10_000);
      await pool.transaction((tx) => tx.query(`INSERT INTO ${table} (id) VALUES (2)`));
      expect(await ids(db.side(), table)).toEqual([2]);
      await settled(pool);
      await expectWhole(pool, 2);
    } finally {
      await pool.end();
    }
  });

  test('a pool-level query cut mid-result rejects, and the next one gets a whole result on a healthy connection', async () => {
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      hook.match = (sql) => sql === selectReads;
      hook.action = { cutReplyAfter: 3_000 };
      const error = await rejection(pool.query(selectReads));
      expect((error as { fatal?: boolean }).fatal).toBe(true);
      const [rows] = await pool.query<RowDataPacket[]>(selectReads);
      expect(rows).toHaveLength(READ_ROWS);
      expect(pool.stats().destroyed).toBe(1);
      await expectWhole(pool, 1);
    } finally {
      await pool.end();
    }
  });
});
