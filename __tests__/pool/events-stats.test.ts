/**
 * Events and stats: mysql2's own events (`connection`, `acquire`, `release`,
 * `enqueue`) fire as they do in mysql2, and ours (`abandon`, `rollback`, `destroy`)
 * and `pool.stats()` describe what happened to abandoned transactions.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as mysql2 from 'mysql2/promise';
import { createPool, type AbandonEvent, type Pool, type RollbackEvent } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { nextEvent } from './helpers';

type Recorded = Array<[name: string, threadId: number | undefined]>;

/** Records mysql2's four events with the thread id of the connection they carry. */
function recordMysql2Events(pool: { on(event: string, listener: (...args: never[]) => void): unknown }): Recorded {
  const seen: Recorded = [];
  for (const name of ['connection', 'acquire', 'release', 'enqueue']) {
    pool.on(name, (connection?: { threadId?: number }) => seen.push([name, connection?.threadId ?? undefined]));
  }
  return seen;
}

describe("mysql2's events", () => {
  test('connection, acquire and release fire in the same order as with mysql2, carrying the connection', async () => {
    async function scenario(pool: { getConnection(): Promise<{ threadId: number; release(): void; query(sql: string): Promise<unknown> }>; query(sql: string): Promise<unknown> }): Promise<number> {
      const conn = await pool.getConnection();
      await conn.query('SELECT 1');
      const threadId = conn.threadId;
      conn.release();
      await pool.query('SELECT 1');
      const again = await pool.getConnection();
      again.release();
      return threadId;
    }

    const ours = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const theirs = mysql2.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const oursSeen = recordMysql2Events(ours as never);
      const theirsSeen = recordMysql2Events(theirs as never);
      const ourId = await scenario(ours);
      const theirId = await scenario(theirs);

      expect(oursSeen.map(([name]) => name)).toEqual(theirsSeen.map(([name]) => name));
      expect(oursSeen.map(([name]) => name)).toEqual(['connection', 'acquire', 'release', 'acquire', 'release', 'acquire', 'release']);
      expect(oursSeen.every(([, threadId]) => threadId === ourId)).toBe(true);
      expect(theirsSeen.every(([, threadId]) => threadId === theirId)).toBe(true);
    } finally {
      await Promise.all([ours.end(), theirs.end()]);
    }
  });

  test('enqueue fires when a checkout has to wait, and the waiter gets the connection on release', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const seen = recordMysql2Events(pool as never);
      const first = await pool.getConnection();
      const waiting = pool.getConnection();
      expect(seen.filter(([name]) => name === 'enqueue')).toHaveLength(1);
      expect(pool.stats().waiting).toBe(1);
      first.release();
      const second = await waiting;
      expect(second.threadId).toBe(first.threadId);
      expect(pool.stats()).toMatchObject({ waiting: 0, leased: 1 });
      second.release();
      expect(seen.filter(([name]) => name === 'connection')).toHaveLength(1);
    } finally {
      await pool.end();
    }
  });
});

describe('abandon and rollback events', () => {
  async function abandon(pool: Pool): Promise<number> {
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    const threadId = conn.threadId;
    conn.release();
    return threadId;
  }

  test("abandon: reason 'released-in-transaction', with the stack of the checkout when captureStacks is on", async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, captureStacks: true });
    try {
      const abandoned = nextEvent(pool, 'abandon');
      const threadId = await abandon(pool);
      const [event] = await abandoned;
      expect(event).toMatchObject<Partial<AbandonEvent>>({ threadId, reason: 'released-in-transaction' });
      expect(typeof event.stack).toBe('string');
      expect(event.stack).toContain('events-stats.test'); // points at the caller's getConnection()
    } finally {
      await pool.end();
    }
  });

  test('abandon carries no stack when captureStacks is off (the default)', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const abandoned = nextEvent(pool, 'abandon');
      await abandon(pool);
      const [event] = await abandoned;
      expect(event.reason).toBe('released-in-transaction');
      expect(event.stack).toBeUndefined();
    } finally {
      await pool.end();
    }
  });

  test('abandon fires synchronously inside release(), rollback follows with a duration', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const order: string[] = [];
      pool.on('abandon', () => order.push('abandon'));
      const rolledBack = nextEvent(pool, 'rollback');
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      const threadId = conn.threadId;
      conn.release();
      order.push('release() returned');
      const [event] = await rolledBack;
      expect(order).toEqual(['abandon', 'release() returned']);
      expect(event).toMatchObject<Partial<RollbackEvent>>({ threadId });
      expect(typeof event.durationMs).toBe('number');
      expect(Number.isFinite(event.durationMs)).toBe(true);
      expect(event.durationMs).toBeGreaterThanOrEqual(0);
      expect(event.durationMs).toBeLessThan(5_000);
    } finally {
      await pool.end();
    }
  });

  test('a clean release fires neither abandon nor rollback', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const ours: string[] = [];
      for (const name of ['abandon', 'rollback', 'rollbackError', 'destroy'] as const) pool.on(name, () => ours.push(name));
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.commit();
      conn.release();
      await pool.query('SELECT 1');
      expect(ours).toEqual([]);
    } finally {
      await pool.end();
    }
  });
});

describe('pool.stats()', () => {
  test("cleanup: 'release': pendingRollback right after release, then rolledBack once the ROLLBACK is done", async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 2 });
    try {
      expect(pool.stats()).toMatchObject({ total: 0, idle: 0, leased: 0, waiting: 0, pendingRollback: 0, abandoned: 0, rolledBack: 0 });
      const a = await pool.getConnection();
      const b = await pool.getConnection();
      expect(pool.stats()).toMatchObject({ total: 2, idle: 0, leased: 2 });

      await a.beginTransaction();
      const rolledBack = nextEvent(pool, 'rollback');
      a.release();
      expect(pool.stats()).toMatchObject({ total: 2, idle: 0, leased: 1, pendingRollback: 1, abandoned: 1, rolledBack: 0 });
      await rolledBack;
      expect(pool.stats()).toMatchObject({ total: 2, idle: 1, leased: 1, pendingRollback: 0, abandoned: 1, rolledBack: 1 });

      b.release();
      expect(pool.stats()).toMatchObject({ total: 2, idle: 2, leased: 0, pendingRollback: 0, rollbackFailures: 0, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  test("cleanup: 'checkout': the connection stays flagged (pendingRollback) until the next checkout", async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, cleanup: 'checkout' });
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      conn.release();
      expect(pool.stats()).toMatchObject({ total: 1, idle: 0, leased: 0, pendingRollback: 1, abandoned: 1, rolledBack: 0 });

      const next = await pool.getConnection();
      expect(pool.stats()).toMatchObject({ total: 1, idle: 0, leased: 1, pendingRollback: 0, abandoned: 1, rolledBack: 1 });
      next.release();
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0, pendingRollback: 0 });
    } finally {
      await pool.end();
    }
  });

  test('counters add up over several abandons', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        const rolledBack = nextEvent(pool, 'rollback');
        const conn = await pool.getConnection();
        await conn.query('START TRANSACTION');
        conn.release();
        await rolledBack;
      }
      expect(pool.stats()).toMatchObject({ total: 1, abandoned: 5, rolledBack: 5, rollbackFailures: 0, destroyed: 0, pendingRollback: 0 });
    } finally {
      await pool.end();
    }
  });

  test("destroy event and counter for a lease's destroy()", async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      const destroyed = nextEvent(pool, 'destroy');
      conn.destroy();
      const [event] = await destroyed;
      expect(event.threadId).toBe(conn.threadId);
      expect(event.reason).toMatch(/destroy/);
      expect(pool.stats()).toMatchObject({ destroyed: 1, leased: 0 });
    } finally {
      await pool.end();
    }
  });
});

describe('listeners', () => {
  /*
   * A listener that throws (a bug in a logging listener) must not interrupt the
   * pool half way: the session's rollback is already under way and release()
   * stays synchronous and silent; the listener's error surfaces as an uncaught
   * exception on the next tick, as from any listener in asynchronous code.
   */
  test('a throwing abandon listener does not leak the connection or its transaction', () => {
    const script = path.join(__dirname, 'fixtures', 'throwing-listener.ts');
    const out = execFileSync(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, MYSQL_URL: mysqlUrl() },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(JSON.parse(out)).toEqual({
      releaseThrew: false,
      sameConnection: true, // not leaked: the one connection came back...
      inTransaction: 0, // ...rolled back
      uncaught: ['bug in a logging listener'], // and the listener's error was not swallowed
    });
  });
});
