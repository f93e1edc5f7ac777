/**
 * `using` / `await using` with a lease: the connection goes back to the pool at
 * the end of the block, however the block is left (normally, by return, by a
 * throw), and a transaction left open in it is rolled back. TypeScript downlevels
 * the declarations (target ES2022, lib ESNext.Disposable).
 */
import { createPool, type Pool, type PoolConnection } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { nextEvent, visible, scenarioTable } from './helpers';

const { table, side, insert } = scenarioTable('using_lease');

test('using: the lease is released at the end of the block and fenced afterwards', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    let escaped: PoolConnection | undefined;
    {
      using conn = await pool.getConnection();
      escaped = conn;
      await conn.query('SELECT 1');
      expect(pool.stats()).toMatchObject({ leased: 1, idle: 0 });
    }
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
    expect(escaped.isReleased).toBe(true);
    await expect(escaped.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
  } finally {
    await pool.end();
  }
});

test('await using: the lease is released at the end of the block', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    {
      await using conn = await pool.getConnection();
      await conn.query('SELECT 1');
      expect(pool.stats().leased).toBe(1);
    }
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
  } finally {
    await pool.end();
  }
});

test('using: a block left by a throw releases the lease; its open transaction is rolled back', async () => {
  const scenario = 'using_throw';
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const rolledBack = nextEvent(pool, 'rollback');
    const work = async (): Promise<void> => {
      using conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(insert(scenario, 1));
      throw new Error('validation failed'); // before the commit
    };
    await expect(work()).rejects.toThrow('validation failed');
    await rolledBack;
    await pool.query(insert(scenario, 2));
    expect(await visible(side, table, scenario)).toEqual([2]);
  } finally {
    await pool.end();
  }
  expect(await visible(side, table, scenario)).toEqual([2]);
});

test('await using: an early return without commit rolls back, and the single connection is free for the next caller', async () => {
  const scenario = 'await_using_return';
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  async function handler(p: Pool, bail: boolean): Promise<string> {
    await using conn = await p.getConnection();
    await conn.beginTransaction();
    await conn.query(insert(scenario, bail ? 1 : 2));
    if (bail) return 'bailed'; // forgot to commit or roll back
    await conn.commit();
    return 'committed';
  }
  try {
    await expect(handler(pool, true)).resolves.toBe('bailed');
    await expect(handler(pool, false)).resolves.toBe('committed');
    expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, leased: 0, total: 1 });
  } finally {
    await pool.end();
  }
  expect(await visible(side, table, scenario)).toEqual([2]);
});

test('using after an explicit release() in the block: the dispose is a no-op', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const other: PoolConnection[] = [];
    {
      using conn = await pool.getConnection();
      conn.release();
      other.push(await pool.getConnection()); // same connection, now someone else's
    }
    // The block's dispose did not hand the other lease's connection back.
    expect(pool.stats()).toMatchObject({ leased: 1, idle: 0 });
    other[0]!.release();
  } finally {
    await pool.end();
  }
});
