/**
 * The callback runner: `pool.transaction(fn)`, `conn.transaction(fn)`. COMMIT when fn
 * resolves, ROLLBACK when it throws; when the ROLLBACK fails too, the caller still gets
 * the callback's own error (the same object) with a non-enumerable `rollbackError`.
 * `retries` re-runs the whole callback after a deadlock (1213) or a lock wait timeout (1205).
 */
import type { Transaction } from '../../src/index';
import {
  ER_LOCK_DEADLOCK,
  ER_LOCK_WAIT_TIMEOUT,
  codeOf,
  deferred,
  ids,
  isRowLocked,
  LOCK_POLL_MS,
  nextEvent,
  rejection,
  scalar,
  sideDb,
  testPool,
  valueOf,
  waitingForLock,
  waitUntil,
} from './helpers';

const db = sideDb('tx_runner');

describe('commit or roll back', () => {
  test('fn resolves: committed, its value returned, the connection back in the pool', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const result = await pool.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await tx.execute(`INSERT INTO ${table} (id) VALUES (?)`, [2]);
        expect(await ids(db.side(), table)).toEqual([]);
        return { ok: true };
      });
      expect(result).toEqual({ ok: true });
      expect(await ids(db.side(), table)).toEqual([1, 2]);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, abandoned: 0 });
    } finally {
      await pool.end();
    }
  });

  test('fn throws: rolled back before the caller resumes, and the caller gets the very same error', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      const boom = new Error('handler failed');
      let handle: Transaction | undefined;
      const error = await rejection(
        pool.transaction(async (tx) => {
          handle = tx;
          await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 1`);
          await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
          throw boom;
        }),
      );
      expect(error).toBe(boom);
      expect(Object.getOwnPropertyDescriptor(boom, 'rollbackError')).toBeUndefined();
      expect(handle?.state).toBe('rolledBack');
      expect(await isRowLocked(db.side(), table, 1)).toBe(false); // no waiting: already rolled back
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(await valueOf(db.side(), table, 1)).toBe(0);
      expect(pool.stats()).toMatchObject({ idle: 1, abandoned: 0, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  test('the rollback fails (connection killed inside the callback): the caller still gets its own error, with rollbackError attached', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const boom = new Error('handler failed after the connection died');
      const destroyed = nextEvent(pool, 'destroy');
      const error = await rejection(
        pool.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
          await db.side().query(`KILL ${tx.threadId}`);
          await destroyed; // the pool has seen the connection die
          throw boom;
        }),
      );
      expect(error).toBe(boom);
      expect(error.rollbackError).toBeDefined();
      expect(error.rollbackError.fatal).toBe(true);
      expect(Object.keys(error)).not.toContain('rollbackError');
      expect(Object.getOwnPropertyDescriptor(error, 'rollbackError')?.enumerable).toBe(false);
      expect(await ids(db.side(), table)).toEqual([]);
      // The dead connection is not reused; the pool opens a new one.
      expect(await scalar(pool, 'SELECT 1')).toBe(1);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0 });
    } finally {
      await pool.end();
    }
  });

  test('the callback may end the transaction itself: its choice stands, nothing is committed twice', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      await pool.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await tx.commit();
      });
      const result = await pool.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
        await tx.rollback();
        return 'rolled back by the callback';
      });
      expect(result).toBe('rolled back by the callback');
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    } finally {
      await pool.end();
    }
  });

  test('conn.transaction(fn): same rules, and the lease stays the caller\'s', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      await conn.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      });
      const boom = new Error('no');
      expect(
        await rejection(
          conn.transaction(async (tx) => {
            await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
            throw boom;
          }),
        ),
      ).toBe(boom);
      expect(conn.isReleased).toBe(false);
      expect(await scalar(conn, 'SELECT @@in_transaction')).toBe(0);
      await conn.query(`INSERT INTO ${table} (id) VALUES (3)`);
      expect(await ids(db.side(), table)).toEqual([1, 3]);
      conn.release();
    } finally {
      await pool.end();
    }
  });
});

describe('retries', () => {
  /** Two callbacks that take rows 1 and 2 in opposite orders, each waiting until the other holds its first row. */
  function crossedTransfers(pool: ReturnType<typeof testPool>, table: string, retries: number) {
    const aHolds1 = deferred();
    const bHolds2 = deferred();
    const attempts = { a: 0, b: 0 };
    const a = pool.transaction(
      async (tx) => {
        attempts.a++;
        await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
        aHolds1.resolve();
        await bHolds2.promise;
        await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`);
      },
      { retries },
    );
    const b = pool.transaction(
      async (tx) => {
        attempts.b++;
        await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`);
        bHolds2.resolve();
        await aHolds1.promise;
        await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
      },
      { retries },
    );
    return { a, b, attempts };
  }

  test('a real deadlock without retries: exactly one side gets 1213 and nothing of it is kept; the other commits', async () => {
    const table = await db.table([1, 2]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const { a, b, attempts } = crossedTransfers(pool, table, 0);
      const outcomes = await Promise.allSettled([a, b]);
      const rejected = outcomes.filter((o) => o.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected).toHaveLength(1);
      expect(codeOf(rejected[0]!.reason)).toBe(ER_LOCK_DEADLOCK);
      expect(attempts).toEqual({ a: 1, b: 1 });
      expect([await valueOf(db.side(), table, 1), await valueOf(db.side(), table, 2)]).toEqual([1, 1]);
      expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  test('a real deadlock with retries: the victim re-runs the whole callback and both commit', async () => {
    const table = await db.table([1, 2]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const { a, b, attempts } = crossedTransfers(pool, table, 2);
      await Promise.all([a, b]);
      expect(attempts.a + attempts.b).toBe(3); // one of them ran twice
      expect([await valueOf(db.side(), table, 1), await valueOf(db.side(), table, 2)]).toEqual([2, 2]);
    } finally {
      await pool.end();
    }
  });

  test('a lock wait timeout (innodb_lock_wait_timeout=1) is retried; the failed attempt\'s writes are rolled back', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    const side = db.side();
    await side.query('START TRANSACTION');
    await side.query(`UPDATE ${table} SET v = 100 WHERE id = 1`); // holds the row lock
    try {
      let attempts = 0;
      const result = await pool.transaction(
        async (tx) => {
          attempts++;
          await tx.query('SET SESSION innodb_lock_wait_timeout = 1');
          await tx.query(`INSERT INTO ${table} (id) VALUES (?)`, [100 + attempts]);
          try {
            await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
          } catch (error) {
            if (attempts === 1) await side.query('ROLLBACK'); // free the row for the next attempt
            throw error;
          }
          return attempts;
        },
        { retries: 1 },
      );
      expect(result).toBe(2);
      expect(await ids(side, table)).toEqual([1, 102]); // 101 was rolled back with attempt 1
      expect(await valueOf(side, table, 1)).toBe(1);
    } finally {
      await side.query('ROLLBACK');
      await pool.end();
    }
  });

  test('retries run out: the caller gets the last 1205 after retries + 1 attempts', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    const side = db.side();
    await side.query('START TRANSACTION');
    await side.query(`UPDATE ${table} SET v = 100 WHERE id = 1`);
    try {
      let attempts = 0;
      const error = await rejection(
        pool.transaction(
          async (tx) => {
            attempts++;
            await tx.query('SET SESSION innodb_lock_wait_timeout = 1');
            await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
          },
          { retries: 1 },
        ),
      );
      expect(codeOf(error)).toBe(ER_LOCK_WAIT_TIMEOUT);
      expect(attempts).toBe(2);
    } finally {
      await side.query('ROLLBACK');
      await pool.end();
    }
  });

  test('other errors are not retried', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      let attempts = 0;
      const error = await rejection(
        pool.transaction(
          async (tx) => {
            attempts++;
            await tx.query(`INSERT INTO ${table} (id) VALUES (1)`); // duplicate key
          },
          { retries: 3 },
        ),
      );
      expect(codeOf(error)).toBe(1062);
      expect(attempts).toBe(1);
    } finally {
      await pool.end();
    }
  });

  test('conn.transaction(fn) retries on its own lease', async () => {
    const table = await db.table([1, 2]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const conn = await pool.getConnection();
      const other = await pool.begin();
      await other.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`);
      let attempts = 0;
      const run = conn.transaction(
        async (tx) => {
          attempts++;
          await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
          await tx.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`); // waits for `other`
        },
        { retries: 1 },
      );
      await waitUntil(() => waitingForLock(db.side(), conn.threadId), 5_000, LOCK_POLL_MS);
      // `other` now asks for row 1: a deadlock; whichever the server picks, the runner's side recovers.
      const otherOutcome = await Promise.allSettled([other.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`)]);
      if (otherOutcome[0]!.status === 'fulfilled') await other.commit();
      else await other.rollback();
      await run;
      conn.release();
      const otherCommitted = otherOutcome[0]!.status === 'fulfilled' ? 1 : 0;
      expect(attempts).toBe(otherCommitted ? 2 : 1);
      expect([await valueOf(db.side(), table, 1), await valueOf(db.side(), table, 2)]).toEqual([1 + otherCommitted, 1 + otherCommitted]);
    } finally {
      await pool.end();
    }
  });
});
