/**
 * knex 3.3.0 on our pool: `knex({ client: 'mysql2', connectionPool: pool })`.
 *
 * knex 3.3.0 takes an external pool through `connectionPool` (lib/client.js
 * initializePool / initializeExternalPool, CHANGELOG "add connectionPool option", #6414).
 * A pool that is not tarn-compatible goes to the dialect's `wrapNativePool`
 * (lib/dialects/mysql2/index.js:39-42 takes `nativePool.pool || nativePool`, as for
 * mysql2/promise's pool), and lib/dialects/mysql/index.js:117-152 then drives it with
 * mysql2's callback API: `getConnection((err, connection) => ...)`, `connection.query(options,
 * bindings, callback)` (:179-198), `connection.query(options, bindings).stream()` (:157-176),
 * `connection.release()` (or `destroy()` for a connection knex disposed).
 *
 * Our Pool now has that callback face as `pool.pool` (src/pool/callback.ts), so passing the
 * Pool itself works, with no adapter: every statement knex runs goes through a lease (fenced
 * once released, transaction status read from every OK packet). Before `pool.pool` existed,
 * knex reached our promise `getConnection()`, which ignored the callback, and waited forever;
 * a user-side tarn-compatible adapter was needed. It no longer is, and is gone from here.
 */
import { knex, type Knex } from 'knex';
import * as mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type CallbackConnection, type Pool } from '../../src';
import { isRowLocked, mysqlUrl, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent } from '../pool/helpers';

const T = uniqueTable('knex');
const { side, committed } = ownerTable(T);

/**
 * What knex is given: our Pool itself. For the test that cuts a connection behind knex's back,
 * `handedOut` records the callback connections `pool.pool.getConnection(cb)` hands knex.
 */
function spied(pool: Pool): { pool: Pool; handedOut: Set<CallbackConnection> } {
  const handedOut = new Set<CallbackConnection>();
  const original = pool.pool.getConnection.bind(pool.pool);
  pool.pool.getConnection = (callback) =>
    original((err, connection) => {
      if (connection) handedOut.add(connection);
      callback(err, connection);
    });
  return { pool, handedOut };
}





/** Runs `fn` with knex over a fresh pool of ours (connectionLimit 1 unless told), then closes both. */
async function withKnex<T>(fn: (db: Knex, pool: Pool, handedOut: Set<CallbackConnection>) => Promise<T>, connectionLimit = 1): Promise<T> {
  const { pool, handedOut } = spied(createPool({ uri: mysqlUrl(), connectionLimit }));
  const db = knex({ client: 'mysql2', connectionPool: pool });
  try {
    return await fn(db, pool, handedOut);
  } finally {
    await db.destroy();
    await pool.end();
  }
}

async function threadIdOf(db: Knex | Knex.Transaction): Promise<number> {
  const [rows] = (await db.raw('SELECT CONNECTION_ID() AS id')) as [RowDataPacket[]];
  return Number(rows[0]?.id);
}

// Was `test.failing` before `pool.pool` existed (knex then called our promise getConnection(),
// which ignored its callback: knex waited forever). Not spied: the plain Pool, as users pass it.
test('knex({ connectionPool: pool }) on our Pool itself runs a query through pool.pool and gives the connection back', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  const db = knex({ client: 'mysql2', connectionPool: pool });
  const acquired = jest.fn();
  pool.on('acquire', acquired);
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = await Promise.race([
      db.raw('SELECT 1 AS one'),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer within 1.5 s')), 1_500);
      }),
    ]);
    expect((result as [RowDataPacket[]])[0][0]?.one).toBe(1);
    expect(acquired).toHaveBeenCalledTimes(1); // one lease of ours, taken through pool.pool.getConnection(cb)
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
  } finally {
    clearTimeout(timer);
    await db.destroy(); // knex does not own an external pool: a no-op for the pool
    expect(pool.closed).toBe(false);
    await pool.end();
  }
});

describe('knex({ connectionPool: pool }) on our Pool', () => {
  test('queries: insert / update / select / delete, committed at once', async () => {
    await withKnex(async (db, pool) => {
      await db(T).insert([{ id: 1, owner: 'q' }, { id: 2, owner: 'q', n: 5 }]);
      expect(await db(T).where({ id: 1 }).update({ n: 7 })).toBe(1);
      await db(T).insert({ id: 3, owner: 'q' });
      expect(await db(T).where({ id: 3 }).del()).toBe(1);
      expect(await db(T).select('id', 'n').where({ owner: 'q' }).orderBy('id')).toEqual([{ id: 1, n: 7 }, { id: 2, n: 5 }]);
      expect(await committed('q')).toEqual([{ id: 1, n: 7 }, { id: 2, n: 5 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  test('.stream(): knex streams through the lease (connection.query(options, bindings).stream()); the connection goes back after', async () => {
    const rows = Array.from({ length: 500 }, (_, i) => [1_000 + i, 'stream', i]);
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES ?`, [rows]);
    await withKnex(async (db, pool) => {
      let count = 0;
      let sum = 0;
      let leasedWhileStreaming = -1;
      for await (const row of db(T).select('n').where({ owner: 'stream' }).orderBy('id').stream()) {
        if (count === 0) leasedWhileStreaming = pool.stats().leased;
        sum += (row as { n: number }).n;
        count++;
      }
      expect(count).toBe(500);
      expect(sum).toBe((499 * 500) / 2);
      expect(leasedWhileStreaming).toBe(1);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
      expect(await db(T).count({ c: '*' }).where({ owner: 'stream' })).toEqual([{ c: 500 }]);
    });
  });

  test('knex.transaction commits on resolve: invisible to others until COMMIT, one connection throughout', async () => {
    await withKnex(async (db, pool) => {
      const inside: Array<Array<{ id: number; n: number }>> = [];
      const ids = await db.transaction(async (trx) => {
        const first = await threadIdOf(trx);
        await trx(T).insert({ id: 10, owner: 'commit' });
        await trx(T).where({ id: 10 }).update({ n: 1 });
        inside.push(await committed('commit'));
        return [first, await threadIdOf(trx)];
      });
      expect(new Set(ids).size).toBe(1);
      expect(inside).toEqual([[]]);
      expect(await committed('commit')).toEqual([{ id: 10, n: 1 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    }, 2);
  });

  test('knex.transaction rolls back on a throw and on trx.rollback(); nested savepoints undo alone', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (20, 'rb', 0)`);
    await withKnex(async (db, pool) => {
      const boom = new Error('boom');
      await expect(
        db.transaction(async (trx) => {
          await trx(T).insert({ id: 21, owner: 'rb' });
          await trx(T).where({ id: 20 }).update({ n: 99 });
          throw boom;
        }),
      ).rejects.toBe(boom);
      const trx = await db.transaction();
      await trx(T).insert({ id: 22, owner: 'rb' });
      await trx.rollback(new Error('explicit')).catch(() => undefined);
      expect(await committed('rb')).toEqual([{ id: 20, n: 0 }]);
      expect(await isRowLocked(side, T, 20)).toBe(false);

      await db.transaction(async (outer) => {
        await outer(T).insert({ id: 23, owner: 'rb' });
        await expect(
          outer.transaction(async (inner) => {
            await inner(T).insert({ id: 24, owner: 'rb' });
            throw new Error('inner');
          }),
        ).rejects.toThrow('inner');
      });
      expect(await committed('rb')).toEqual([{ id: 20, n: 0 }, { id: 23, n: 0 }]);
      // knex's own ROLLBACKs ran: nothing for the pool to clean up.
      expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, abandoned: 0 });
    });
  });

  test('a statement on a knex transaction after it ended is refused (by knex itself): nothing reaches the server', async () => {
    await withKnex(async (db) => {
      const trx = await db.transaction();
      await trx(T).insert({ id: 30, owner: 'stray' });
      await trx.commit();
      await expect(trx(T).insert({ id: 31, owner: 'stray' })).rejects.toThrow('Transaction query already complete');
      expect(await committed('stray')).toEqual([{ id: 30, n: 0 }]);
    });
  });
});

describe('transactions knex gives up on are rolled back before the connection serves anyone else', () => {
  /**
   * A raw `START TRANSACTION` through knex at pool level (knex takes a connection, runs it,
   * gives the connection back with the transaction open), then the same connection's next
   * user writes; `SET autocommit = 0` the same way.
   */
  async function scenario(db: Knex, opener: string, id: number, nextOwner: string): Promise<{ opened: number; next: number }> {
    const opened = await threadIdOf(db);
    await db.raw(opener);
    await db.raw(`UPDATE ${T} SET n = 1 WHERE id = ?`, [id]);
    await db(T).insert({ id: id + 9, owner: nextOwner });
    return { opened, next: await threadIdOf(db) };
  }

  test('control: on mysql2 own pool, knex.raw("START TRANSACTION") leaks into the next users', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (100, 'ctl', 0)`);
    const native = mysql.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const db = knex({ client: 'mysql2', connectionPool: native });
    try {
      const { opened, next } = await scenario(db, 'START TRANSACTION', 100, 'ctl-next');
      expect(next).toBe(opened);
      expect(await committed('ctl-next')).toEqual([]); // the "autocommit" INSERT joined the open transaction
      expect(await isRowLocked(side, T, 100)).toBe(true); // and the UPDATE's lock is held by an idle pooled connection
    } finally {
      await db.destroy();
      await native.end(); // the server rolls it all back when the connection closes
    }
    expect(await committed('ctl')).toEqual([{ id: 100, n: 0 }]);
  });

  test.each([
    ['START TRANSACTION', 'begin'],
    ['SET autocommit = 0', 'autocommit'],
  ])('our pool: knex.raw(%j) is rolled back at release; the next statements autocommit on the same connection', async (opener, owner) => {
    const id = owner === 'begin' ? 200 : 300;
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (?, ?, 0)`, [id, owner]);
    await withKnex(async (db, pool) => {
      const abandoned = nextEvent(pool, 'abandon');
      const { opened, next } = await scenario(db, opener, id, `${owner}-next`);
      await abandoned;
      expect(next).toBe(opened); // one connection throughout
      // Each statement ran in autocommit mode: the UPDATE and the next user's INSERT are committed, no lock is left.
      expect(await committed(owner)).toEqual([{ id, n: 1 }]);
      expect(await committed(`${owner}-next`)).toEqual([{ id: id + 9, n: 0 }]);
      expect(await isRowLocked(side, T, id)).toBe(false);
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0, leased: 0 });
    });
  });

  test('a knex transaction whose connection is given back mid-way (a request timeout) is rolled back at once; its later statements never run', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (400, 'cut', 0)`);
    await withKnex(async (db, pool, handedOut) => {
      const trx = await db.transaction();
      await trx(T).where({ id: 400 }).update({ n: 1 });
      await trx(T).insert({ id: 401, owner: 'cut' });
      const threadId = await threadIdOf(trx);
      expect(await isRowLocked(side, T, 400)).toBe(true);

      // The timeout handler gives the connection back behind knex's back.
      expect(handedOut.size).toBe(1);
      const [held] = [...handedOut];
      const rolledBack = nextEvent(pool, 'rollback');
      held!.release();
      await rolledBack;
      expect(await isRowLocked(side, T, 400)).toBe(false);
      expect(await committed('cut')).toEqual([{ id: 400, n: 0 }]);

      // The next user gets that connection and commits on its own...
      const other = await db.transaction();
      expect(await threadIdOf(other)).toBe(threadId);
      await other(T).insert({ id: 409, owner: 'cut-next' });
      await other.commit();
      // ...while the cut-off transaction's next statement and its COMMIT are fenced.
      await expect(trx(T).insert({ id: 402, owner: 'cut' })).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      await trx.commit(); // knex reports a failed COMMIT on the transaction's promise, not on commit()
      await expect(trx.executionPromise).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1 }); // knex gave its (already released) connection back: a no-op
      expect(await committed('cut')).toEqual([{ id: 400, n: 0 }]);
      expect(await committed('cut-next')).toEqual([{ id: 409, n: 0 }]);
    });
  });
});
