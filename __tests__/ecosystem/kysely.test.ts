/**
 * Kysely 0.29.9 on our pool: `new MysqlDialect({ pool: pool.pool })`.
 *
 * Kysely's MysqlDriver (node_modules/kysely/dist/dialect/mysql/mysql-driver.js) takes a
 * connection with `pool.getConnection(cb)`, runs statements with `connection.query(sql,
 * params, cb)`, streams with `connection.query(sql, params).stream({ objectMode: true })`,
 * gives it back with `connection.release()` and ends with `pool.end(cb)`. With `pool.pool`
 * all of it goes through our leases: fenced, and with the server's transaction status read
 * from every OK packet.
 *
 * Types: `pool.pool` type-checks as Kysely's `MysqlPool` with no cast (types-compat.ts, section 6).
 *
 * Loading: kysely 0.29 is ESM only ("type": "module", no CJS build) and jest 30 on Node 20
 * refuses `require(esm)` (it does it natively only on Node 24.9+; a transform would need
 * `transformIgnorePatterns` in jest.config.js). Node 20.19+ itself does `require(esm)`, so
 * Kysely is loaded with Node's own `createRequire` (jest's `node:module` replaces
 * `createRequire` with its own; the real one is on the parent class). Kysely then runs
 * outside jest's module registry, which changes nothing here: it only calls our pool.
 */
import * as nodeModule from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as KyselyModule from 'kysely';
import type { Kysely as KyselyDb, MysqlPool } from 'kysely';
import { createPool as createMysql2CallbackPool } from 'mysql2';
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type AbandonEvent, type CallbackConnection, type Pool } from '../../src';
import { isRowLocked, mysqlUrl, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent, waitUntil } from '../pool/helpers';

const nodeRequire = (Object.getPrototypeOf(nodeModule.Module) as typeof nodeModule.Module).createRequire(__filename);
const { Kysely, MysqlDialect, sql } = nodeRequire('kysely') as typeof KyselyModule;

const T = uniqueTable('kysely');
const { side, committed } = ownerTable(T);

interface ItemTable {
  id: number;
  owner: string;
  n: number;
}
interface Database {
  [T]: ItemTable;
}
type Db = KyselyDb<Database>;





/** What a user writes: `new MysqlDialect({ pool: pool.pool })`, no cast. */
function asKyselyPool(pool: Pool): MysqlPool {
  return pool.pool;
}

/** Kysely over a fresh pool of ours; `db.destroy()` ends our pool (Kysely calls `pool.end(cb)`). */
async function withKysely<R>(fn: (db: Db, pool: Pool) => Promise<R>, options: { connectionLimit?: number; leakDetectionMs?: number } = {}): Promise<R> {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: options.connectionLimit ?? 1, leakDetectionMs: options.leakDetectionMs ?? 0 });
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: asKyselyPool(pool) }) });
  try {
    return await fn(db, pool);
  } finally {
    await db.destroy();
    expect(pool.closed).toBe(true);
  }
}

async function threadIdOf(db: KyselyDb<Database>): Promise<number> {
  const { rows } = await sql<{ id: number }>`SELECT CONNECTION_ID() AS id`.execute(db);
  return Number(rows[0]?.id);
}

describe('Kysely with MysqlDialect({ pool: pool.pool })', () => {
  test('queries: insertInto / updateTable / selectFrom / deleteFrom, committed at once, the connection back after each', async () => {
    await withKysely(async (db, pool) => {
      const inserted = await db.insertInto(T).values([{ id: 1, owner: 'q', n: 0 }, { id: 2, owner: 'q', n: 5 }]).executeTakeFirst();
      expect(inserted.numInsertedOrUpdatedRows).toBe(2n);
      const updated = await db.updateTable(T).set({ n: 7 }).where('id', '=', 1).executeTakeFirst();
      expect(updated.numUpdatedRows).toBe(1n);
      await db.insertInto(T).values({ id: 3, owner: 'q', n: 0 }).execute();
      expect((await db.deleteFrom(T).where('id', '=', 3).executeTakeFirst()).numDeletedRows).toBe(1n);
      const rows = await db.selectFrom(T).select(['id', 'n']).where('owner', '=', 'q').orderBy('id').execute();
      expect(rows).toEqual([{ id: 1, n: 7 }, { id: 2, n: 5 }]);
      expect(await committed('q')).toEqual([{ id: 1, n: 7 }, { id: 2, n: 5 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
    });
  });

  test('transaction().execute commits when the callback resolves: invisible to others until then, one connection throughout', async () => {
    await withKysely(async (db, pool) => {
      const seenInside: Array<Array<{ id: number; n: number }>> = [];
      const threads = await db.transaction().execute(async (trx) => {
        const first = await threadIdOf(trx);
        await trx.insertInto(T).values({ id: 10, owner: 'commit', n: 0 }).execute();
        await trx.updateTable(T).set({ n: 1 }).where('id', '=', 10).execute();
        seenInside.push(await committed('commit'));
        expect(await isRowLocked(side, T, 10)).toBe(true);
        return [first, await threadIdOf(trx)];
      });
      expect(new Set(threads).size).toBe(1);
      expect(seenInside).toEqual([[]]);
      expect(await committed('commit')).toEqual([{ id: 10, n: 1 }]);
      expect(await isRowLocked(side, T, 10)).toBe(false);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0, rolledBack: 0 });
    });
  });

  test('transaction().execute rolls back when the callback throws (Kysely\'s own ROLLBACK: nothing for the pool to clean up)', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (20, 'rb', 0)`);
    await withKysely(async (db, pool) => {
      const boom = new Error('boom');
      await expect(
        db.transaction().execute(async (trx) => {
          await trx.insertInto(T).values({ id: 21, owner: 'rb', n: 0 }).execute();
          await trx.updateTable(T).set({ n: 99 }).where('id', '=', 20).execute();
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await committed('rb')).toEqual([{ id: 20, n: 0 }]);
      expect(await isRowLocked(side, T, 20)).toBe(false);
      expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 0 });
    });
  });

  test('savepoints: not on transaction().execute in 0.29 (only on controlled transactions), where rollbackToSavepoint undoes its part alone', async () => {
    await withKysely(async (db, pool) => {
      await db.transaction().execute(async (trx) => {
        expect('savepoint' in trx).toBe(false); // Kysely 0.29's Transaction has no savepoint API
      });
      const trx = await db.startTransaction().execute();
      await trx.insertInto(T).values({ id: 30, owner: 'sp', n: 0 }).execute();
      const afterFirst = await trx.savepoint('after_first').execute();
      await afterFirst.insertInto(T).values({ id: 31, owner: 'sp', n: 0 }).execute();
      const back = await afterFirst.rollbackToSavepoint('after_first').execute();
      await back.insertInto(T).values({ id: 32, owner: 'sp', n: 0 }).execute();
      expect(await committed('sp')).toEqual([]);
      await back.commit().execute();
      expect(trx.isCommitted).toBe(true);
      expect(await committed('sp')).toEqual([{ id: 30, n: 0 }, { id: 32, n: 0 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  test('stream(): rows arrive one by one from a streamed statement on a lease; the connection goes back when the stream ends', async () => {
    const rows = Array.from({ length: 300 }, (_, i) => [1_000 + i, 'stream', i]);
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES ?`, [rows]);
    await withKysely(async (db, pool) => {
      let count = 0;
      let sum = 0;
      let leasedWhileStreaming = -1;
      for await (const row of db.selectFrom(T).selectAll().where('owner', '=', 'stream').orderBy('id').stream()) {
        if (count === 0) leasedWhileStreaming = pool.stats().leased;
        count++;
        sum += row.n;
      }
      expect(count).toBe(300);
      expect(sum).toBe((299 * 300) / 2);
      expect(leasedWhileStreaming).toBe(1);
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
      // The same (only) connection serves the next query normally.
      expect(await db.selectFrom(T).select('id').where('id', '=', 1_000).execute()).toEqual([{ id: 1_000 }]);
    });
  });

  test('stream() left early (break): the unread rest of the result keeps the statement in flight at release, so the pool rolls back to be sure before reusing the connection', async () => {
    const rows = Array.from({ length: 2_000 }, (_, i) => [10_000 + i, 'early', i]);
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES ?`, [rows]);
    await withKysely(async (db, pool) => {
      const rolledBack = nextEvent(pool, 'rollback');
      let count = 0;
      // ~4 MB of rows: far more than socket buffers hold while mysql2's stream applies backpressure.
      const query = db.selectFrom(T).select(['id', sql<string>`REPEAT('x', 2000)`.as('pad')]).where('owner', '=', 'early');
      for await (const row of query.stream()) {
        expect(row.pad).toHaveLength(2_000);
        if (++count === 10) break;
      }
      expect(count).toBe(10);
      // Kysely released the connection while mysql2 was still reading the result (destroying the
      // stream resumes the socket and the command runs to its end). The pool cannot know that
      // statement's outcome, so it treats the release like one inside a transaction: a ROLLBACK
      // (harmless here) runs after the statement, before the connection serves anyone else.
      const [event] = await rolledBack;
      expect(event.durationMs).toBeGreaterThanOrEqual(0);
      expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 1, rolledBack: 1, rollbackFailures: 0, destroyed: 0 });
      expect(await db.selectFrom(T).select('id').where('id', '=', 10_000).execute()).toEqual([{ id: 10_000 }]);
    });
  });
});

describe('Kysely controlled transactions (startTransaction)', () => {
  test('commit() and rollback(): visible only after commit; rollback frees the locks; the connection is held from start to end', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (40, 'ctl', 0)`);
    await withKysely(async (db, pool) => {
      const trx = await db.startTransaction().execute();
      await trx.insertInto(T).values({ id: 41, owner: 'ctl', n: 0 }).execute();
      expect(pool.stats().leased).toBe(1);
      expect(await committed('ctl')).toEqual([{ id: 40, n: 0 }]);
      await trx.commit().execute();
      expect(await committed('ctl')).toEqual([{ id: 40, n: 0 }, { id: 41, n: 0 }]);
      expect(pool.stats().leased).toBe(0);

      const undo = await db.startTransaction().execute();
      await undo.updateTable(T).set({ n: 5 }).where('id', '=', 40).execute();
      expect(await isRowLocked(side, T, 40)).toBe(true);
      await undo.rollback().execute();
      expect(undo.isRolledBack).toBe(true);
      expect(await isRowLocked(side, T, 40)).toBe(false);
      expect(await committed('ctl')).toEqual([{ id: 40, n: 0 }, { id: 41, n: 0 }]);
      // A statement on an ended controlled transaction is refused by Kysely itself.
      await expect(undo.insertInto(T).values({ id: 42, owner: 'ctl', n: 0 }).execute()).rejects.toThrow('Transaction is already rolled back');
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  test('one left open (neither commit nor rollback): Kysely holds its connection; locks held and rows invisible while it is (as on mysql2); leakDetectionMs reports it; db.destroy() ends it with nothing committed', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (50, 'open', 0)`);
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 2, leakDetectionMs: 200 });
    const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: asKyselyPool(pool) }) });
    let forgotten: Awaited<ReturnType<ReturnType<Db['startTransaction']>['execute']>> | undefined;
    try {
      const leak = nextEvent(pool, 'leak');
      forgotten = await db.startTransaction().execute();
      await forgotten.updateTable(T).set({ n: 1 }).where('id', '=', 50).execute();
      await forgotten.insertInto(T).values({ id: 51, owner: 'open', n: 0 }).execute();
      const threadId = await threadIdOf(forgotten);
      // Kysely's provideControlledConnection keeps the lease until commit()/rollback(): nothing releases it.
      const [event] = await leak;
      expect(event.threadId).toBe(threadId);
      expect(event.heldMs).toBeGreaterThanOrEqual(150);
      expect(pool.stats()).toMatchObject({ leased: 1, abandoned: 0 });
      expect(await isRowLocked(side, T, 50)).toBe(true);
      expect(await committed('open')).toEqual([{ id: 50, n: 0 }]);
      // The rest of the application is served by the other connection, in autocommit, on its own.
      expect(await threadIdOf(db)).not.toBe(threadId);
      await db.insertInto(T).values({ id: 59, owner: 'open-other', n: 0 }).execute();
      expect(await committed('open-other')).toEqual([{ id: 59, n: 0 }]);
    } finally {
      forgotten = undefined;
      await db.destroy(); // pool.end(cb): the lease still out is fenced and rolled back (ROLLBACK answered) before it quits
    }
    // Checked at once, never polled: end() resolved only after the server answered the ROLLBACK.
    expect(await isRowLocked(side, T, 50)).toBe(false);
    expect(await committed('open')).toEqual([{ id: 50, n: 0 }]);
  });

  test('one left open and dropped by its owner: once it is garbage collected, the pool rolls it back and gets its connection back', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (55, 'dropped', 0)`);
    await withKysely(async (db, pool) => {
      const abandoned = new Promise<AbandonEvent>((resolve) => pool.once('abandon', resolve));
      const threadId = await (async () => {
        const trx = await db.startTransaction().execute(); // never committed, never rolled back: just dropped
        await trx.updateTable(T).set({ n: 1 }).where('id', '=', 55).execute();
        return threadIdOf(trx);
      })();
      expect(await isRowLocked(side, T, 55)).toBe(true);
      let event: AbandonEvent | undefined;
      void abandoned.then((e) => (event = e));
      await waitUntil(() => {
        gc();
        return event !== undefined;
      }, 10_000);
      expect(event).toMatchObject({ threadId, reason: 'garbage-collected' });
      await waitUntil(async () => !(await isRowLocked(side, T, 55)), 5_000);
      expect(await committed('dropped')).toEqual([{ id: 55, n: 0 }]);
      // The only connection serves the next user, outside any transaction.
      expect(await threadIdOf(db)).toBe(threadId);
      await db.insertInto(T).values({ id: 56, owner: 'dropped-next', n: 0 }).execute();
      expect(await committed('dropped-next')).toEqual([{ id: 56, n: 0 }]);
    });
  });

  test('one dropped right after startTransaction (nothing run in it): its connection comes back once it is collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await withKysely(async (db, pool) => {
      let event: AbandonEvent | undefined;
      pool.once('abandon', (e) => (event = e));
      await (async () => {
        await db.startTransaction().execute(); // Kysely's raw `start transaction`, then dropped
      })();
      await waitUntil(() => {
        gc();
        return event !== undefined;
      }, 10_000);
      expect(event?.reason).toBe('garbage-collected');
      await db.insertInto(T).values({ id: 57, owner: 'dropped-early', n: 0 }).execute(); // the only connection is back
      expect(await committed('dropped-early')).toEqual([{ id: 57, n: 0 }]);
    });
  });

  test('one left open and rolled back late: the locks go at that moment, not before; the next user of that connection commits alone', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (60, 'late', 0)`);
    await withKysely(async (db, pool) => {
      const trx = await db.startTransaction().execute();
      await trx.updateTable(T).set({ n: 1 }).where('id', '=', 60).execute();
      const threadId = await threadIdOf(trx);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await isRowLocked(side, T, 60)).toBe(true);
      await trx.rollback().execute();
      expect(await isRowLocked(side, T, 60)).toBe(false);
      expect(await threadIdOf(db)).toBe(threadId);
      await db.insertInto(T).values({ id: 61, owner: 'late-next', n: 0 }).execute();
      expect(await committed('late-next')).toEqual([{ id: 61, n: 0 }]);
      expect(await committed('late')).toEqual([{ id: 60, n: 0 }]);
      expect(pool.stats()).toMatchObject({ abandoned: 0 });
    });
  });

  test("a controlled transaction's connection released behind Kysely's back (a request timeout): rolled back at once; its later statements, COMMIT included, are fenced", async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (70, 'cut', 0)`);
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const handedOut: CallbackConnection[] = [];
    const spying: MysqlPool = {
      getConnection: (cb) =>
        pool.pool.getConnection((err, connection) => {
          if (connection) handedOut.push(connection);
          cb(err, connection as never);
        }),
      end: (cb) => pool.pool.end(cb),
    };
    const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: spying }) });
    try {
      const trx = await db.startTransaction().execute();
      await trx.updateTable(T).set({ n: 1 }).where('id', '=', 70).execute();
      await trx.insertInto(T).values({ id: 71, owner: 'cut', n: 0 }).execute();
      expect(await isRowLocked(side, T, 70)).toBe(true);
      expect(handedOut).toHaveLength(1);

      const rolledBack = nextEvent(pool, 'rollback');
      handedOut[0]!.release();
      await rolledBack;
      expect(await isRowLocked(side, T, 70)).toBe(false);
      expect(await committed('cut')).toEqual([{ id: 70, n: 0 }]);

      await expect(trx.insertInto(T).values({ id: 72, owner: 'cut', n: 0 }).execute()).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      await expect(trx.commit().execute()).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      // Kysely keeps the transaction "active" after a failed COMMIT; its rollback() is fenced too, then lets go.
      await expect(trx.rollback().execute()).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });

      // The next user (same, only connection) commits alone.
      await db.insertInto(T).values({ id: 79, owner: 'cut-next', n: 0 }).execute();
      expect(await committed('cut-next')).toEqual([{ id: 79, n: 0 }]);
      expect(await committed('cut')).toEqual([{ id: 70, n: 0 }]);
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0 });
    } finally {
      await db.destroy();
    }
  });
});

describe('transactions Kysely gives back open are rolled back before the connection serves anyone else', () => {
  /** A raw BEGIN on a connection Kysely hands back when the callback ends (db.connection()), then the next user. */
  async function scenario(db: Db, id: number, nextOwner: string): Promise<{ opened: number; next: number }> {
    const opened = await db.connection().execute(async (conn) => {
      await sql`START TRANSACTION`.execute(conn);
      await conn.updateTable(T).set({ n: 1 }).where('id', '=', id).execute();
      return threadIdOf(conn);
    });
    await db.insertInto(T).values({ id: id + 9, owner: nextOwner, n: 0 }).execute();
    return { opened, next: await threadIdOf(db) };
  }

  test("control: on mysql2's own callback pool, the open transaction reaches the next user", async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (80, 'ctl-raw', 0)`);
    const native = createMysql2CallbackPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: native }) });
    try {
      const { opened, next } = await scenario(db, 80, 'ctl-raw-next');
      expect(next).toBe(opened);
      expect(await committed('ctl-raw-next')).toEqual([]); // the next user's "autocommit" INSERT joined the open transaction
      expect(await isRowLocked(side, T, 80)).toBe(true); // and the UPDATE's lock sits on an idle pooled connection
    } finally {
      await db.destroy(); // the server rolls it all back when the connection closes
    }
    expect(await committed('ctl-raw')).toEqual([{ id: 80, n: 0 }]);
  });

  test('our pool: rolled back at release (abandon + rollback events); the next user of the same connection commits alone', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (90, 'raw', 0)`);
    await withKysely(async (db, pool) => {
      const abandoned = nextEvent(pool, 'abandon');
      const rolledBack = nextEvent(pool, 'rollback');
      const { opened, next } = await scenario(db, 90, 'raw-next');
      const [[abandon], [rollback]] = await Promise.all([abandoned, rolledBack]);
      expect(abandon.threadId).toBe(opened);
      expect(rollback.threadId).toBe(opened);
      expect(next).toBe(opened);
      expect(await committed('raw')).toEqual([{ id: 90, n: 0 }]); // the UPDATE was rolled back
      expect(await committed('raw-next')).toEqual([{ id: 99, n: 0 }]); // the next user's write committed alone
      expect(await isRowLocked(side, T, 90)).toBe(false);
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0, leased: 0 });
    });
  });
});

describe("Kysely's cancellation (execute({ signal, inflightQueryAbortStrategy }))", () => {
  test("'cancel query': Kysely's KILL QUERY (over another pooled connection) stops the statement; the connection comes back clean", async () => {
    await withKysely(
      async (db, pool) => {
        const controller = new AbortController();
        const startedAt = Date.now();
        const running = db
          .selectNoFrom(sql<number>`SLEEP(20)`.as('slept'))
          .execute({ signal: controller.signal, inflightQueryAbortStrategy: 'cancel query' });
        await waitUntil(async () => {
          const [rows] = await side.query<RowDataPacket[]>("SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO = 'select SLEEP(20) as `slept`'");
          return rows.length === 1;
        }, 5_000);
        // Kysely logs "`query` failed in the background after abortion: ... interrupted" with its
        // own (Node's, not jest's) console: the killed SLEEP's error, expected here.
        controller.abort(new Error('client went away'));
        await expect(running).rejects.toThrow('client went away');
        await waitUntil(() => pool.stats().leased === 0 && pool.stats().idle === 2, 5_000);
        expect(Date.now() - startedAt).toBeLessThan(10_000);
        const [rows] = await side.query<RowDataPacket[]>("SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO LIKE 'select SLEEP(20)%'");
        expect(rows).toHaveLength(0);
        expect(pool.stats()).toMatchObject({ rollbackFailures: 0, destroyed: 0 });
      },
      { connectionLimit: 2 },
    );
  });
});

describe("Kysely's inflightQueryAbortStrategy: 'kill session' (its cancellation test)", () => {
  test('an autocommit write aborted in flight never commits: the lease is destroyed and its statement killed on the server', async () => {
    await withKysely(
      async (db) => {
        const controller = new AbortController();
        const write = sql`INSERT INTO ${sql.table(T)} (id, owner, n) SELECT 90, 'killed', 0 FROM (SELECT SLEEP(0.5)) t`
          .execute(db, { signal: controller.signal, inflightQueryAbortStrategy: 'kill session' })
          .then(() => 'committed', (error: unknown) => error);
        await waitUntil(async () => {
          const [rows] = await side.query<RowDataPacket[]>(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SELECT 90, ''killed''%' AND INFO NOT LIKE '%PROCESSLIST%'",
          );
          return Number(rows[0]?.n) > 0;
        }, 3_000);
        controller.abort();
        expect(await write).not.toBe('committed');
        // Past the statement's own end (0.5 s): had it run on, the row would be there now.
        await side.query('SELECT SLEEP(0.7)');
        expect(await committed('killed')).toEqual([]);
        // The pool is still whole: another statement runs.
        expect(await threadIdOf(db)).toBeGreaterThan(0);
      },
      { connectionLimit: 2 },
    );
  });
});
