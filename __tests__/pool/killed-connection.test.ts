/**
 * A connection that dies while it sits in the pool (KILL from another session) is
 * never handed out again: a flagged one is destroyed instead of rolled back, a
 * clean idle one is dropped, and the pool refills on demand with a healthy
 * connection that is not in a transaction.
 */
import { createPool, type Pool, type PoolConnection } from '../../src/index';
import type { DestroyEvent } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { scalar, visible, scenarioTable } from './helpers';

const { table, side } = scenarioTable('killed_connection');

/** Resolves when the pool reports the connection with `threadId` destroyed. */
function destroyedEvent(pool: Pool, threadId: number, timeoutMs = 5_000): Promise<DestroyEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection ${threadId} not destroyed within ${timeoutMs} ms`)), timeoutMs);
    const listener = (event: DestroyEvent): void => {
      if (event.threadId !== threadId) return;
      clearTimeout(timer);
      pool.removeListener('destroy', listener);
      resolve(event);
    };
    pool.on('destroy', listener);
  });
}

/** The lease is a healthy connection with no transaction open (MariaDB's @@in_transaction and InnoDB's view agree). */
async function expectHealthyAndClean(conn: PoolConnection): Promise<void> {
  expect(await scalar(conn, 'SELECT 1')).toBe(1);
  expect(await scalar(conn, 'SELECT @@in_transaction')).toBe(0);
  expect(await scalar(conn, 'SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()')).toBe(0);
}

async function abandonWithRow(pool: Pool, scenario: string): Promise<number> {
  const conn = await pool.getConnection();
  await conn.beginTransaction();
  await conn.query(`INSERT INTO ${table} (scenario, n) VALUES (?, 1)`, [scenario]);
  const threadId = conn.threadId;
  conn.release();
  return threadId;
}

describe('killed while pending rollback (cleanup: checkout, so it sits flagged)', () => {
  test('is destroyed once the pool notices, and the next lease is a different, clean connection', async () => {
    const scenario = 'killed_pending_after_event';
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, cleanup: 'checkout' });
    try {
      const killedId = await abandonWithRow(pool, scenario);
      expect(pool.stats().pendingRollback).toBe(1);

      const destroyed = destroyedEvent(pool, killedId);
      await side.query(`KILL ${killedId}`);
      await destroyed;

      const next = await pool.getConnection();
      expect(next.threadId).not.toBe(killedId);
      await expectHealthyAndClean(next);
      next.release();
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, pendingRollback: 0, rolledBack: 0 });
      expect(pool.stats().destroyed).toBeGreaterThanOrEqual(1);
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([]);
  });

  test('a checkout right after the KILL (before the pool may have noticed) also gets a different, clean connection', async () => {
    const scenario = 'killed_pending_at_once';
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, cleanup: 'checkout' });
    try {
      const killedId = await abandonWithRow(pool, scenario);
      const destroys: number[] = [];
      const rollbacks: number[] = [];
      pool.on('destroy', (event) => destroys.push(event.threadId));
      pool.on('rollback', (event) => rollbacks.push(event.threadId));

      await side.query(`KILL ${killedId}`);
      const next = await pool.getConnection();
      // Whichever came first (the socket close, or the failed ROLLBACK), it was destroyed before the checkout resolved.
      expect(destroys).toContain(killedId);
      expect(rollbacks).toEqual([]); // a dead connection's "rollback" is never reported as a success
      expect(next.threadId).not.toBe(killedId);
      await expectHealthyAndClean(next);
      next.release();
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([]);
  });
});

describe('killed while idle and clean', () => {
  test('is never handed out again; the pool refills on demand', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 2 });
    try {
      const a = await pool.getConnection();
      const b = await pool.getConnection();
      const [killedId, survivorId] = [a.threadId, b.threadId];
      a.release();
      b.release();
      expect(pool.stats()).toMatchObject({ total: 2, idle: 2 });

      const destroyed = destroyedEvent(pool, killedId);
      await side.query(`KILL ${killedId}`);
      await destroyed;

      const c = await pool.getConnection();
      const d = await pool.getConnection();
      const ids = [c.threadId, d.threadId];
      expect(ids).not.toContain(killedId);
      expect(ids).toContain(survivorId);
      await expectHealthyAndClean(c);
      await expectHealthyAndClean(d);
      c.release();
      d.release();
      expect(pool.stats()).toMatchObject({ total: 2, idle: 2, leased: 0 });
    } finally {
      await pool.end();
    }
  });

  test('pool.query after the only connection was killed runs on a fresh one', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const killedId = Number(await scalar(pool, 'SELECT CONNECTION_ID()'));
      const destroyed = destroyedEvent(pool, killedId);
      await side.query(`KILL ${killedId}`);
      await destroyed;

      const freshId = Number(await scalar(pool, 'SELECT CONNECTION_ID()'));
      expect(freshId).not.toBe(killedId);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1 });
    } finally {
      await pool.end();
    }
  });
});

describe('killed while leased', () => {
  test('later statements on the lease reject with ERR_CONNECTION_LOST, send nothing, and the slot comes back', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(`INSERT INTO ${table} (scenario, n) VALUES ('killed_leased', 1)`);
      const destroyed = destroyedEvent(pool, conn.threadId);
      await side.query(`KILL ${conn.threadId}`);
      await destroyed; // the pool saw the socket close

      for (const attempt of [() => conn.query('SELECT 1'), () => conn.execute('SELECT ?', [1]), () => conn.commit()]) {
        const error = await attempt().then(
          () => new Error('resolved'),
          (e: unknown) => e,
        );
        expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST', name: 'ConnectionLostError' });
        expect((error as Error).cause).toBeDefined(); // mysql2's own reason
      }
      conn.release();
      expect(await visible(side, table, 'killed_leased')).toEqual([]); // the server rolled it back with the connection
      const next = await pool.getConnection(); // the only slot is free again: a fresh connection
      expect(next.threadId).not.toBe(conn.threadId);
      await expectHealthyAndClean(next);
      next.release();
    } finally {
      await pool.end();
    }
  });
});
