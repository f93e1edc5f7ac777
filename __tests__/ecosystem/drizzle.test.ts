/**
 * Drizzle ORM (drizzle-orm 0.45.4, `drizzle-orm/mysql2`) on our pool, for real.
 *
 * What Drizzle calls (node_modules/drizzle-orm/mysql2/session.js):
 * - on the pool: `query(options, params)`, `execute(sql, params)`,
 *   `getConnection()` (and `"getConnection" in client` to tell a pool from a connection);
 * - on a lease: `query`, `release()`;
 * - `db.transaction()` takes a lease and sends a *raw* `begin` / `commit` / `rollback`
 *   (not beginTransaction()), nested ones `savepoint spN` / `release savepoint spN` /
 *   `rollback to savepoint spN`; our pool only learns about the transaction from the
 *   OK packet's status flags;
 * - the streaming iterator reads `(await pool.getConnection()).connection`, mysql2's
 *   callback connection, and calls `.query(...).stream()` and `.end()` on it.
 *
 * Typing: `drizzle({ client: pool })` does not accept our Pool without a cast (see
 * types-compat.ts); at runtime both `drizzle({ client: pool })` and `drizzle(pool)` work.
 */
import { asc, eq, sql } from 'drizzle-orm';
import type { Logger } from 'drizzle-orm/logger';
import { int, mysqlTable, varchar } from 'drizzle-orm/mysql-core';
import { drizzle } from 'drizzle-orm/mysql2';
import * as mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type AbandonEvent, type Pool, type PoolConnection } from '../../src';
import { isRowLocked, mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent } from '../pool/helpers';

const T = uniqueTable('drizzle');
const { side, committed } = ownerTable(T);
const items = mysqlTable(T, {
  id: int('id').primaryKey(),
  owner: varchar('owner', { length: 32 }).notNull(),
  n: int('n').notNull().default(0),
});

/** The one cast Drizzle needs: its `client` is typed as mysql2's own Pool | Connection. */
function asClient(client: Pool | PoolConnection): mysql.Pool {
  return client as unknown as mysql.Pool;
}

let pool: Pool;

beforeAll(() => {
  pool = createPool({ uri: mysqlUrl(), connectionLimit: 2 });
});

afterAll(async () => {
  await pool?.end();
});

async function seed(id: number, owner: string, n = 0): Promise<void> {
  await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (?, ?, ?)`, [id, owner, n]);
}

function connectionIdOf(result: unknown): number {
  return Number((result as [RowDataPacket[]])[0][0]?.id);
}

describe('queries and transactions', () => {
  test('both constructor forms run select / insert / update / delete; writes are committed at once', async () => {
    const db = drizzle({ client: asClient(pool) });
    const db2 = drizzle(asClient(pool));
    await db.insert(items).values([{ id: 1, owner: 'q' }, { id: 2, owner: 'q', n: 5 }]);
    await db.update(items).set({ n: 7 }).where(eq(items.id, 1));
    await db2.insert(items).values({ id: 3, owner: 'q' });
    await db2.delete(items).where(eq(items.id, 3));
    expect(await committed('q')).toEqual([{ id: 1, n: 7 }, { id: 2, n: 5 }]);
    const rows = await db.select().from(items).where(eq(items.owner, 'q')).orderBy(asc(items.id));
    expect(rows).toEqual([{ id: 1, owner: 'q', n: 7 }, { id: 2, owner: 'q', n: 5 }]);
    // raw SQL through db.execute (pool.query with a QueryOptions object and values) works too
    const [raw] = (await db.execute(sql`SELECT COUNT(*) AS c FROM ${items} WHERE ${items.owner} = ${'q'}`)) as unknown as [RowDataPacket[]];
    expect(Number(raw[0]?.c)).toBe(2);
    expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 0 });
  });

  test('db.transaction commits on resolve: invisible to others until COMMIT, then visible; one connection throughout', async () => {
    const db = drizzle({ client: asClient(pool) });
    const seenInside: Array<{ id: number; n: number }[]> = [];
    const ids = new Set<number>();
    const result = await db.transaction(async (tx) => {
      ids.add(connectionIdOf(await tx.execute(sql`SELECT CONNECTION_ID() AS id`)));
      await tx.insert(items).values({ id: 10, owner: 'commit' });
      await tx.update(items).set({ n: 1 }).where(eq(items.id, 10));
      seenInside.push(await committed('commit'));
      ids.add(connectionIdOf(await tx.execute(sql`SELECT CONNECTION_ID() AS id`)));
      return 'done';
    });
    expect(result).toBe('done');
    expect(ids.size).toBe(1);
    expect(seenInside).toEqual([[]]);
    expect(await committed('commit')).toEqual([{ id: 10, n: 1 }]);
    expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 0 });
  });

  test('db.transaction rolls back on a throw and on tx.rollback(); the pool has nothing left to do', async () => {
    const db = drizzle({ client: asClient(pool) });
    await seed(20, 'rb', 0);
    const boom = new Error('boom');
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(items).values({ id: 21, owner: 'rb' });
        await tx.update(items).set({ n: 99 }).where(eq(items.id, 20));
        throw boom;
      }),
    ).rejects.toBe(boom);
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(items).values({ id: 22, owner: 'rb' });
        tx.rollback();
      }),
    ).rejects.toThrow('Rollback');
    expect(await committed('rb')).toEqual([{ id: 20, n: 0 }]);
    expect(await isRowLocked(side, T, 20)).toBe(false);
    // Drizzle's own ROLLBACK ran: the connections went back clean, no pool rollback was needed.
    expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 0 });
  });

  test('nested transactions are savepoints: a failed inner one is undone alone, the rest commits', async () => {
    const db = drizzle({ client: asClient(pool) });
    await db.transaction(async (tx) => {
      await tx.insert(items).values({ id: 30, owner: 'nested' });
      await expect(
        tx.transaction(async (sp) => {
          await sp.insert(items).values({ id: 31, owner: 'nested' });
          throw new Error('inner');
        }),
      ).rejects.toThrow('inner');
      await tx.transaction(async (sp) => {
        await sp.insert(items).values({ id: 32, owner: 'nested' });
        await sp.transaction(async (sp2) => {
          await sp2.update(items).set({ n: 2 }).where(eq(items.id, 32));
        });
      });
      expect(await committed('nested')).toEqual([]); // nothing visible before the outer COMMIT
    });
    expect(await committed('nested')).toEqual([{ id: 30, n: 0 }, { id: 32, n: 2 }]);
    expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0 });
  });

  test("Drizzle's raw `begin` through db.execute at pool level is rolled back at once: the next statement autocommits", async () => {
    // With mysql2's own pool the connection would go back with the transaction open and the
    // next INSERT on it would join it (invisible, then lost).
    const solo = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const db = drizzle({ client: asClient(solo) });
      const abandoned = nextEvent(solo, 'abandon');
      const first = connectionIdOf(await db.execute(sql`SELECT CONNECTION_ID() AS id`));
      await db.execute(sql`begin`);
      await abandoned;
      await db.insert(items).values({ id: 40, owner: 'rawbegin' });
      const second = connectionIdOf(await db.execute(sql`SELECT CONNECTION_ID() AS id`));
      expect(second).toBe(first); // same connection both times
      expect(await committed('rawbegin')).toEqual([{ id: 40, n: 0 }]);
      expect(solo.stats()).toMatchObject({ abandoned: 1, rolledBack: 1 });
    } finally {
      await solo.end();
    }
  });

  test('a statement sent on a Drizzle transaction after it ended is fenced: rejected, nothing reaches the server', async () => {
    const db = drizzle({ client: asClient(pool) });
    let escaped: Parameters<Parameters<typeof db.transaction>[0]>[0] | undefined;
    await db.transaction(async (tx) => {
      escaped = tx;
      await tx.insert(items).values({ id: 50, owner: 'stray' });
    });
    // With mysql2's pool this INSERT would run on a connection someone else may hold now.
    // (Drizzle wraps every driver error in DrizzleQueryError, the driver's error as `cause`.)
    await expect(escaped!.insert(items).values({ id: 51, owner: 'stray' })).rejects.toMatchObject({
      cause: { code: 'ERR_LEASE_RELEASED' },
    });
    expect(await committed('stray')).toEqual([{ id: 50, n: 0 }]);
  });
});

describe('streaming iterator', () => {
  // Drizzle's iterator streams on the lease's callback face: `(await pool.getConnection()).connection`,
  // `conn.query(...).stream()`, then `conn.end()` to give it back.
  test('db.select().from(t).iterator() streams rows; afterwards the connection is back in the pool, clean', async () => {
    const solo = createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 2_000 });
    try {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (60, 'iter', 0), (61, 'iter', 1), (62, 'iter', 2)`);
      const db = drizzle({ client: asClient(solo) });
      const seen: number[] = [];
      for await (const row of db.select().from(items).where(eq(items.owner, 'iter')).orderBy(asc(items.id)).iterator()) {
        seen.push(row.id);
      }
      expect(seen).toEqual([60, 61, 62]);
      expect(solo.stats()).toMatchObject({ leased: 0, pendingRollback: 0 });
      // The one connection serves the next user, outside any transaction: its write commits on its own.
      await db.insert(items).values({ id: 63, owner: 'iter' });
      expect((await committed('iter')).map((r) => r.id)).toEqual([60, 61, 62, 63]);
    } finally {
      await solo.end();
    }
  });

  // Inside a transaction the client is the lease itself: its `.connection` streams on the transaction's connection.
  test('tx.select().from(t).iterator() inside db.transaction streams rows', async () => {
    const db = drizzle({ client: asClient(pool) });
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (70, 'iter-tx', 0), (71, 'iter-tx', 1)`);
    const seen = await db.transaction(async (tx) => {
      const out: number[] = [];
      for await (const row of tx.select().from(items).where(eq(items.owner, 'iter-tx')).orderBy(asc(items.id)).iterator()) {
        out.push(row.id);
      }
      return out;
    });
    expect(seen).toEqual([70, 71]);
  });
});

describe('a Drizzle transaction cut off before its rollback cannot leak', () => {
  /**
   * A logger whose sink fails part way through (a closed file, a full disk, a transport
   * that throws). Drizzle calls `logger.logQuery` before every statement, including its
   * own `rollback`, so from that moment on the ROLLBACK is never sent; Drizzle's `finally`
   * still releases the connection, with `begin` and the writes open on it.
   */
  class BreakingLogger implements Logger {
    broken = false;
    logQuery(): void {
      if (this.broken) throw new Error('log sink closed');
    }
  }

  /** Runs the scenario on `client`; resolves with the connection id the transaction used. */
  async function abandonedDrizzleTransaction(client: mysql.Pool, logger: BreakingLogger, base: number, owner: string): Promise<number> {
    const db = drizzle({ client, logger });
    let threadId = 0;
    await expect(
      db.transaction(async (tx) => {
        threadId = connectionIdOf(await tx.execute(sql`SELECT CONNECTION_ID() AS id`));
        await tx.update(items).set({ n: 1 }).where(eq(items.id, base)); // row lock on the seeded row
        await tx.insert(items).values({ id: base + 1, owner });
        logger.broken = true;
        await tx.insert(items).values({ id: base + 2, owner }); // throws before reaching the server
      }),
    ).rejects.toThrow('log sink closed'); // ...and so does Drizzle's `rollback`: it is never sent
    logger.broken = false;
    return threadId;
  }

  test('control: on mysql2 own pool the same code leaks (the next autocommit write joins the open transaction)', async () => {
    await seed(100, 'ctl', 0);
    const native = mysql.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const logger = new BreakingLogger();
      const threadId = await abandonedDrizzleTransaction(native, logger, 100, 'ctl');
      const db = drizzle({ client: native });
      const next = connectionIdOf(await db.execute(sql`SELECT CONNECTION_ID() AS id`));
      expect(next).toBe(threadId);
      await db.insert(items).values({ id: 109, owner: 'ctl-next' });
      expect(await committed('ctl-next')).toEqual([]); // the next user's "committed" write is not
      expect(await isRowLocked(side, T, 100)).toBe(true); // the abandoned row lock is still held
    } finally {
      await native.end(); // closing the connection makes the server roll all of it back
    }
    expect(await committed('ctl')).toEqual([{ id: 100, n: 0 }]);
    expect(await committed('ctl-next')).toEqual([]); // lost with it
  });

  test('on our pool: rolled back at release, locks freed, the next user (same connection) commits on its own', async () => {
    await seed(200, 'cut', 0);
    const solo = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const abandons: AbandonEvent[] = [];
    solo.on('abandon', (event) => abandons.push(event));
    try {
      const rolledBack = nextEvent(solo, 'rollback');
      const threadId = await abandonedDrizzleTransaction(asClient(solo), new BreakingLogger(), 200, 'cut');
      await rolledBack;
      expect(abandons).toEqual([expect.objectContaining({ threadId, reason: 'released-in-transaction' })]);
      expect(await isRowLocked(side, T, 200)).toBe(false);
      expect(await committed('cut')).toEqual([{ id: 200, n: 0 }]);

      const db = drizzle({ client: asClient(solo) });
      const next = connectionIdOf(await db.execute(sql`SELECT CONNECTION_ID() AS id`));
      expect(next).toBe(threadId); // the very connection the transaction was abandoned on
      await db.insert(items).values({ id: 209, owner: 'cut-next' });
      expect(await committed('cut-next')).toEqual([{ id: 209, n: 0 }]);
      expect(solo.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0, leased: 0 });
    } finally {
      await solo.end();
    }
    expect(await committed('cut')).toEqual([{ id: 200, n: 0 }]);
    expect(await committed('cut-next')).toEqual([{ id: 209, n: 0 }]);
  });

  test('Drizzle on a lease released mid-transaction (a request timeout): rolled back at once; its later statements never run', async () => {
    await seed(300, 'timeout', 0);
    const solo = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const conn = await solo.getConnection();
      const threadId = conn.threadId;
      const db = drizzle({ client: asClient(conn) });
      const outcome = deferred<string>();
      let resumeCallback!: () => void;
      const slowCall = new Promise<void>((resolve) => (resumeCallback = resolve));
      const reachedSlowCall = new Promise<void>((resolve) => {
        void db
          .transaction(async (tx) => {
            await tx.update(items).set({ n: 1 }).where(eq(items.id, 300));
            await tx.insert(items).values({ id: 301, owner: 'timeout' });
            resolve();
            await slowCall; // a slow external call; meanwhile the request times out
            await tx.insert(items).values({ id: 302, owner: 'timeout' });
          })
          .then(
            () => outcome.resolve('committed'),
            (error: { query?: string; cause?: { code?: string } }) => outcome.resolve(`${error.query}: ${error.cause?.code}`),
          );
      });
      await reachedSlowCall;
      expect(await isRowLocked(side, T, 300)).toBe(true); // the transaction really is open

      const rolledBack = nextEvent(solo, 'rollback');
      conn.release(); // the timeout handler gives the connection back
      await rolledBack;
      expect(await isRowLocked(side, T, 300)).toBe(false);
      expect(await committed('timeout')).toEqual([{ id: 300, n: 0 }]);

      // The next user gets the same connection and writes in autocommit mode...
      const next = drizzle({ client: asClient(solo) });
      expect(connectionIdOf(await next.execute(sql`SELECT CONNECTION_ID() AS id`))).toBe(threadId);
      await next.insert(items).values({ id: 309, owner: 'timeout-next' });
      // ...while the cut-off callback resumes: its INSERT and then Drizzle's ROLLBACK are fenced
      // (Drizzle reports the last one: the failed `rollback`).
      resumeCallback();
      expect(await outcome.promise).toBe('rollback: ERR_LEASE_RELEASED');
      expect(await committed('timeout')).toEqual([{ id: 300, n: 0 }]);
      expect(await committed('timeout-next')).toEqual([{ id: 309, n: 0 }]);
      expect(solo.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, leased: 0 });
    } finally {
      await solo.end();
    }
  });
});

describe('transaction characteristics', () => {
  // `SET TRANSACTION ISOLATION LEVEL ...` (what Drizzle sends before `start transaction` for
  // db.transaction(fn, { isolationLevel })) is a one-shot setting for the connection's *next*
  // transaction, whoever starts it; it changes no status flag. Sent on its own (here at pool level,
  // or on a connection released between it and the BEGIN), it must not reach the next user: the
  // pool sees the statement and consumes the setting (START TRANSACTION + ROLLBACK) before reuse.
  test('a pending SET TRANSACTION left on a connection does not reach the next user', async () => {
    const solo = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const writer = await sideConnection();
    try {
      const db = drizzle({ client: asClient(solo) });
      await db.execute(sql`set transaction isolation level read uncommitted`);
      await writer.query('START TRANSACTION');
      await writer.query(`INSERT INTO ${T} (id, owner) VALUES (500, 'dirty')`); // never committed
      const seen = await db.transaction(async (tx) => tx.select().from(items).where(eq(items.id, 500)));
      expect(seen).toEqual([]); // REPEATABLE READ (the server default) cannot see it
    } finally {
      await writer.query('ROLLBACK');
      await writer.end();
      await solo.end();
    }
  });
});

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
