/**
 * Transactions the server ended by itself: after a deadlock (1213) the server has rolled
 * the whole transaction back; after DDL it has implicitly committed it. Either way the
 * handle moves to `endedByServer`, and later statements on it reject with
 * ERR_TX_ENDED_BY_SERVER instead of silently running in autocommit mode (which is what a
 * plain mysql2 connection does: each control below shows the write that would escape).
 */
import * as mysql2 from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import type { Transaction } from '../../src/index';
import { mysqlUrl, uniqueTable } from '../support/db';
import {
  ER_LOCK_DEADLOCK,
  ER_LOCK_WAIT_TIMEOUT,
  LOCK_POLL_MS,
  codeOf,
  ids,
  rejection,
  scalar,
  sideDb,
  testPool,
  valueOf,
  waitingForLock,
  waitUntil,
} from './helpers';

const db = sideDb('tx_server_ended');

/** Anything that can run an UPDATE and has a thread id: a transaction handle or a mysql2 connection. */
interface Runner {
  threadId: number;
  query(sql: string): Promise<unknown>;
}

/**
 * A real deadlock: `a` holds row 1, `b` holds row 2, `a` asks for row 2 (and waits), then `b`
 * asks for row 1. The server picks a victim and rolls its whole transaction back (1213).
 */
async function deadlock(a: Runner, b: Runner, table: string): Promise<{ victim: Runner; survivor: Runner }> {
  await a.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
  await b.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`);
  const aWaits = a.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`);
  aWaits.catch(() => undefined);
  await waitUntil(() => waitingForLock(db.side(), a.threadId), 5_000, LOCK_POLL_MS);
  const [first, second] = await Promise.allSettled([aWaits, b.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`)]);
  const failed = [first, second].filter((o) => o.status === 'rejected') as PromiseRejectedResult[];
  expect(failed).toHaveLength(1);
  expect(codeOf(failed[0]!.reason)).toBe(ER_LOCK_DEADLOCK);
  return first.status === 'rejected' ? { victim: a, survivor: b } : { victim: b, survivor: a };
}

describe('deadlock (1213)', () => {
  test('the victim handle is endedByServer: a later INSERT rejects and never reaches the server; commit() rejects too', async () => {
    const table = await db.table([1, 2]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const tx1 = await pool.begin();
      const tx2 = await pool.begin();
      const { victim, survivor } = (await deadlock(tx1, tx2, table)) as { victim: Transaction; survivor: Transaction };
      expect(victim.state).toBe('endedByServer');
      expect(survivor.state).toBe('active');

      const late = await rejection(victim.query(`INSERT INTO ${table} (id) VALUES (99)`));
      expect(codeOf(late)).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(codeOf(await rejection(victim.execute(`INSERT INTO ${table} (id) VALUES (?)`, [98])))).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(codeOf(await rejection(victim.begin()))).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(codeOf(await rejection(victim.commit()))).toBe('ERR_TX_ENDED_BY_SERVER');

      await survivor.commit();
      expect(await ids(db.side(), table)).toEqual([1, 2]); // 98 and 99 never ran
      expect([await valueOf(db.side(), table, 1), await valueOf(db.side(), table, 2)]).toEqual([1, 1]);
      // commit() on the ended handle gave its connection back, clean.
      expect(pool.stats()).toMatchObject({ total: 2, idle: 2, leased: 0, destroyed: 0 });
      expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
    } finally {
      await pool.end();
    }
  });

  test('rollback() after a deadlock is allowed (it is what the caller wants anyway) and returns the connection', async () => {
    const table = await db.table([1, 2]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const tx1 = await pool.begin();
      const tx2 = await pool.begin();
      const { victim, survivor } = (await deadlock(tx1, tx2, table)) as { victim: Transaction; survivor: Transaction };
      await victim.rollback();
      await survivor.rollback();
      expect(pool.stats()).toMatchObject({ idle: 2, leased: 0 });
    } finally {
      await pool.end();
    }
  });

  test('control: on a plain mysql2 connection the victim\'s next INSERT runs in autocommit mode and is committed', async () => {
    const table = await db.table([1, 2]);
    const a = await mysql2.createConnection(mysqlUrl());
    const b = await mysql2.createConnection(mysqlUrl());
    try {
      await a.query('START TRANSACTION');
      await b.query('START TRANSACTION');
      const { victim, survivor } = await deadlock(a, b, table);
      await victim.query(`INSERT INTO ${table} (id) VALUES (99)`);
      await survivor.query('ROLLBACK');
      await victim.query('ROLLBACK'); // too late: 99 was committed on its own
      expect(await ids(db.side(), table)).toEqual([1, 2, 99]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  test('a callback that swallows the deadlock and returns: the caller gets ERR_TX_ENDED_BY_SERVER, not a success', async () => {
    const table = await db.table([1, 2]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const heavy = await pool.begin();
      // Many row locks make `heavy` the more expensive one to roll back: the server picks the callback's transaction.
      for (let id = 10; id < 30; id++) await heavy.query(`INSERT INTO ${table} (id) VALUES (${id})`);
      let handle: Transaction | undefined;
      let victimWasCallback = false;
      let lateCode: unknown;
      const error = await rejection(
        pool.transaction(async (tx) => {
          handle = tx;
          const { victim } = await deadlock(heavy, tx, table);
          victimWasCallback = victim === tx;
          // "Handle" the deadlock by carrying on: this must not silently run in autocommit mode.
          lateCode = codeOf(await rejection(tx.query(`INSERT INTO ${table} (id) VALUES (99)`)));
          return 'looks fine';
        }),
      );
      expect(victimWasCallback).toBe(true);
      expect(lateCode).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(handle?.state).not.toBe('active');
      expect(codeOf(error)).toBe('ERR_TX_ENDED_BY_SERVER');
      await heavy.rollback();
      expect(await ids(db.side(), table)).toEqual([1, 2]);
      expect(pool.stats()).toMatchObject({ leased: 0 });
    } finally {
      await pool.end();
    }
  });
});

describe('implicit commit by DDL', () => {
  test('DDL inside the transaction: the handle is endedByServer at once; later statements reject and never run', async () => {
    const table = await db.table();
    const ddlTable = uniqueTable('tx_ddl');
    const pool = testPool({ connectionLimit: 1 });
    try {
      const tx = await pool.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      await tx.query(`CREATE TABLE ${ddlTable} (id INT) ENGINE=InnoDB`);
      expect(tx.state).toBe('endedByServer');
      // The server committed row 1 with the DDL: a fact the handle reports rather than hides.
      expect(await ids(db.side(), table)).toEqual([1]);

      expect(codeOf(await rejection(tx.query(`INSERT INTO ${table} (id) VALUES (2)`)))).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(codeOf(await rejection(tx.commit()))).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    } finally {
      await pool.end();
      await db.side().query(`DROP TABLE IF EXISTS ${ddlTable}`);
    }
  });

  test('on a lease (conn.begin): rollback() is allowed afterwards and the lease stays usable', async () => {
    const table = await db.table();
    const ddlTable = uniqueTable('tx_ddl');
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      await tx.query(`CREATE TABLE ${ddlTable} (id INT) ENGINE=InnoDB`);
      expect(tx.state).toBe('endedByServer');
      expect(codeOf(await rejection(tx.execute(`INSERT INTO ${table} (id) VALUES (?)`, [2])))).toBe('ERR_TX_ENDED_BY_SERVER');
      await tx.rollback();
      await conn.query(`INSERT INTO ${table} (id) VALUES (3)`);
      expect(await ids(db.side(), table)).toEqual([3]);
      conn.release();
    } finally {
      await pool.end();
      await db.side().query(`DROP TABLE IF EXISTS ${ddlTable}`);
    }
  });

  test('in a callback: the caller gets ERR_TX_ENDED_BY_SERVER and the statements after the DDL never ran', async () => {
    const table = await db.table();
    const ddlTable = uniqueTable('tx_ddl');
    const pool = testPool({ connectionLimit: 1 });
    try {
      const error = await rejection(
        pool.transaction(async (tx) => {
          await tx.query(`CREATE TABLE ${ddlTable} (id INT) ENGINE=InnoDB`);
          await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        }),
      );
      expect(codeOf(error)).toBe('ERR_TX_ENDED_BY_SERVER');
      expect(await ids(db.side(), table)).toEqual([]);
      expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    } finally {
      await pool.end();
      await db.side().query(`DROP TABLE IF EXISTS ${ddlTable}`);
    }
  });
});

describe('lock wait timeout (1205), innodb_lock_wait_timeout=1 on the transaction\'s connection', () => {
  test('only the statement is undone (innodb_rollback_on_timeout OFF): the handle stays active and its earlier work commits', async () => {
    const table = await db.table([1]);
    const [[{ onTimeout }]] = (await db.side().query('SELECT @@innodb_rollback_on_timeout AS onTimeout')) as unknown as [[{ onTimeout: number }]];
    const pool = testPool({ connectionLimit: 1 });
    const side = db.side();
    await side.query('START TRANSACTION');
    await side.query(`UPDATE ${table} SET v = 100 WHERE id = 1`);
    try {
      const tx = await pool.begin();
      await tx.query('SET SESSION innodb_lock_wait_timeout = 1');
      await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
      const error = await rejection(tx.query(`UPDATE ${table} SET v = 1 WHERE id = 1`));
      expect(codeOf(error)).toBe(ER_LOCK_WAIT_TIMEOUT);
      await side.query('ROLLBACK');
      if (Number(onTimeout) === 1) {
        // The server rolled the whole transaction back: the handle must say so.
        expect(tx.state).toBe('endedByServer');
        expect(codeOf(await rejection(tx.query(`INSERT INTO ${table} (id) VALUES (3)`)))).toBe('ERR_TX_ENDED_BY_SERVER');
        await tx.rollback();
        expect(await ids(side, table)).toEqual([1]);
      } else {
        expect(tx.state).toBe('active');
        const [rows] = await tx.query(`SELECT id FROM ${table} ORDER BY id`);
        expect((rows as RowDataPacket[]).map((r) => r.id)).toEqual([1, 2]); // row 2 is still in the transaction
        expect(await ids(side, table)).toEqual([1]); // and still uncommitted
        await tx.commit();
        expect(await ids(side, table)).toEqual([1, 2]);
        expect(await valueOf(side, table, 1)).toBe(0);
      }
    } finally {
      await side.query('ROLLBACK');
      await pool.end();
    }
  });
});
