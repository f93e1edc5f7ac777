/**
 * The bug rollback-pool exists to kill: a connection released inside a transaction
 * must be rolled back before it serves anything else, however the transaction was
 * opened (our API, raw SQL, a prepared `begin`, `SET autocommit=0`, a pool-level
 * query, a statement still in flight at release).
 *
 * Every scenario is also the proof that it can fail: the same steps run against
 * mysql2's own pool lose the write (or commit the abandoned one).
 */
import * as mysql2 from 'mysql2/promise';
import { createPool, type Pool, type PoolConnection } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { nextEvent, scalar, visible, scenarioTable } from './helpers';

const { table, side, insert } = scenarioTable('deferred_rollback');

function singleConnectionPool(extra: Record<string, unknown> = {}): Pool {
  return createPool({ uri: mysqlUrl(), connectionLimit: 1, ...extra });
}

/** How a test opens the transaction it then abandons. */
const openers: Array<[string, (conn: PoolConnection) => Promise<unknown>]> = [
  ['beginTransaction()', (conn) => conn.beginTransaction()],
  ["query('START TRANSACTION')", (conn) => conn.query('START TRANSACTION')],
  ["execute('begin')", (conn) => conn.execute('begin')],
  ["query('SET autocommit=0')", (conn) => conn.query('SET autocommit=0')],
];

describe('the lost write (connectionLimit: 1)', () => {
  test.each(openers.map(([name, open], i) => [name, open, `lost_${i}`] as const))(
    'opened with %s, released without commit: the next autocommit INSERT is committed and the abandoned one is not',
    async (_name, open, scenario) => {
      const pool = singleConnectionPool();
      try {
        const conn = await pool.getConnection();
        const threadId = conn.threadId;
        await open(conn);
        await conn.query(insert(scenario, 1));
        conn.release(); // forgotten commit

        await pool.query(insert(scenario, 2));
        expect(await visible(side, table, scenario)).toEqual([2]);

        // It was the same physical connection, rolled back rather than replaced.
        expect(await scalar(pool, 'SELECT CONNECTION_ID()')).toBe(threadId);
        expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
        expect(await scalar(pool, 'SELECT @@autocommit')).toBe(1);
        expect(pool.stats()).toMatchObject({ total: 1, abandoned: 1, rolledBack: 1, destroyed: 0 });
      } finally {
        await pool.end();
      }
      expect(await visible(side, table, scenario)).toEqual([2]);
    },
  );

  test("control: mysql2's own pool loses the write (row 2 joins the abandoned transaction)", async () => {
    const scenario = 'lost_mysql2';
    const pool = mysql2.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(insert(scenario, 1));
      conn.release();

      await pool.query(insert(scenario, 2)); // reports success...
      expect(await visible(side, table, scenario)).toEqual([]); // ...but is not committed
    } finally {
      await pool.end();
    }
    // Closing the connection rolled the whole thing back: the write is lost for good.
    expect(await visible(side, table, scenario)).toEqual([]);
  });

  test("the next user's START TRANSACTION does not commit the abandoned one (no ghost rows)", async () => {
    const scenario = 'ghost';
    const pool = singleConnectionPool();
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(insert(scenario, 1));
      conn.release();

      const next = await pool.getConnection();
      await next.beginTransaction();
      await next.query(insert(scenario, 2));
      await next.commit();
      next.release();
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([2]);
  });

  test("control: with mysql2's own pool the abandoned row becomes permanent (ghost row)", async () => {
    const scenario = 'ghost_mysql2';
    const pool = mysql2.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(insert(scenario, 1));
      conn.release();

      const next = await pool.getConnection();
      await next.beginTransaction(); // implicitly commits row 1
      await next.query(insert(scenario, 2));
      await next.commit();
      next.release();
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([1, 2]);
  });
});

describe('other ways to end up in a transaction at release', () => {
  test.each([
    ["pool.query('START TRANSACTION')", 'pool_level_query', (pool: Pool) => pool.query('START TRANSACTION')],
    ["pool.execute('begin')", 'pool_level_execute', (pool: Pool) => pool.execute('begin')],
    ["pool.query('SET autocommit=0')", 'pool_level_autocommit', (pool: Pool) => pool.query('SET autocommit=0')],
  ])('%s at pool level (auto-released inside a transaction) is rolled back', async (_name, scenario, open) => {
    const pool = singleConnectionPool();
    try {
      const rolledBack = nextEvent(pool, 'rollback');
      await open(pool);
      await rolledBack;
      expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
      expect(await scalar(pool, 'SELECT @@autocommit')).toBe(1);
      await pool.query(insert(scenario, 1));
      expect(await visible(side, table, scenario)).toEqual([1]);
      expect(pool.stats()).toMatchObject({ total: 1, abandoned: 1, rolledBack: 1 });
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([1]);
  });

  test('a statement in flight at release (SELECT SLEEP after an INSERT in a transaction) still leads to a rollback', async () => {
    const scenario = 'in_flight_sleep';
    const pool = singleConnectionPool();
    try {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(insert(scenario, 1));
      const sleeping = conn.query('SELECT SLEEP(0.3) AS slept');
      const rolledBack = nextEvent(pool, 'rollback');
      conn.release(); // while SLEEP runs
      expect(pool.stats().pendingRollback).toBe(1);

      // The statement that was already sent completes normally, then the ROLLBACK runs.
      await expect(sleeping).resolves.toBeDefined();
      await rolledBack;
      await pool.query(insert(scenario, 2));
      expect(await visible(side, table, scenario)).toEqual([2]);
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([2]);
  });

  test('released while a raw START TRANSACTION and an INSERT are still in flight (only uncertainty knows): rolled back', async () => {
    const scenario = 'in_flight_begin';
    const pool = singleConnectionPool();
    try {
      const conn = await pool.getConnection();
      // Neither reply has arrived when release() runs: no API call and no server status says "transaction".
      const begun = conn.query('START TRANSACTION');
      const inserted = conn.query(insert(scenario, 1));
      conn.release();
      await Promise.all([begun, inserted]);

      await pool.query(insert(scenario, 2));
      expect(await visible(side, table, scenario)).toEqual([2]);
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, destroyed: 0 });
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([2]);
  });

  test('SET autocommit=0 on a lease is reset to 1 for the next lease', async () => {
    const pool = singleConnectionPool();
    try {
      const conn = await pool.getConnection();
      const threadId = conn.threadId;
      await conn.query('SET autocommit=0');
      conn.release();

      const next = await pool.getConnection();
      expect(next.threadId).toBe(threadId);
      expect(await scalar(next, 'SELECT @@autocommit')).toBe(1);
      expect(await scalar(next, 'SELECT @@in_transaction')).toBe(0);
      next.release();
    } finally {
      await pool.end();
    }
  });

  test.each([
    ['SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED', 'READ UNCOMMITTED'],
    ['  set transaction read only', 'READ ONLY'],
  ])('a pending %s (for the next transaction, whoever starts it) does not reach the next lease', async (statement, leaked) => {
    const pool = singleConnectionPool();
    try {
      const conn = await pool.getConnection();
      const threadId = conn.threadId;
      await conn.query(statement);
      conn.release();

      const next = await pool.getConnection();
      expect(next.threadId).toBe(threadId); // the same connection, cleaned rather than replaced
      await next.beginTransaction();
      await next.query(`SELECT COUNT(*) FROM ${table}`); // reads InnoDB: the transaction shows in innodb_trx
      const [rows] = await next.query(
        'SELECT trx_isolation_level AS level, trx_is_read_only AS readOnly FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()',
      );
      const [trx] = rows as Array<{ level: string; readOnly: number }>;
      expect(leaked === 'READ ONLY' ? (trx?.readOnly === 1 ? 'READ ONLY' : 'read write') : trx?.level).not.toBe(leaked);
      await next.query(insert('set_transaction', statement.length)); // a read-only one would refuse this
      await next.commit();
      next.release();
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  test('a transaction committed by the user is a clean release: nothing abandoned, the row stays', async () => {
    const scenario = 'committed';
    const pool = singleConnectionPool();
    try {
      const conn = await pool.getConnection();
      await conn.query('START TRANSACTION');
      await conn.query(insert(scenario, 1));
      await conn.query('COMMIT');
      conn.release();
      expect(pool.stats()).toMatchObject({ abandoned: 0, pendingRollback: 0, idle: 1 });
    } finally {
      await pool.end();
    }
    expect(await visible(side, table, scenario)).toEqual([1]);
  });
});
