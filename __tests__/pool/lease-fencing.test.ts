/**
 * Fencing: once a lease is released (or destroyed), every call on the old handle
 * rejects with ERR_LEASE_RELEASED and nothing reaches the server, even though the
 * same physical connection may already serve someone else. mysql2 lets a released
 * connection keep querying; rollback-pool does not.
 *
 * "Nothing reaches the server" is proven with the connection's own session
 * counters, read through the next lease of the same single connection: between
 * two reads, the server received exactly the bytes of the second read.
 */
import * as mysql2 from 'mysql2/promise';
import { createPool, LeaseReleasedError, type PoolConnection } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { SESSION_STATUS_SQL, comQueryBytes, sessionStatus, visible, scenarioTable } from './helpers';

const { table, side, insert } = scenarioTable('lease_fencing');

/** Every server-touching method of a lease, called on `conn`. */
function everyMethod(conn: PoolConnection, scenario: string): Array<[string, () => Promise<unknown>]> {
  return [
    ['query', () => conn.query(insert(scenario, 1))],
    ['execute', () => conn.execute(insert(scenario, 2))],
    ['beginTransaction', () => conn.beginTransaction()],
    ['commit', () => conn.commit()],
    ['rollback', () => conn.rollback()],
    ['ping', () => conn.ping()],
  ];
}

async function expectAllFenced(conn: PoolConnection, scenario: string): Promise<void> {
  for (const [method, call] of everyMethod(conn, scenario)) {
    const error = await call().then(
      () => new Error(`${method}() on a released lease resolved`),
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(LeaseReleasedError);
    expect(error).toMatchObject({ code: 'ERR_LEASE_RELEASED' });
    expect((error as Error).message).toContain(method);
  }
}

test('every method of a released lease rejects with ERR_LEASE_RELEASED and sends nothing to the server', async () => {
  const scenario = 'released';
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const old = await pool.getConnection();
    const threadId = old.threadId;
    const before = await sessionStatus(old);
    old.release();
    expect(old.isReleased).toBe(true);

    await expectAllFenced(old, scenario);

    const next = await pool.getConnection();
    expect(next.threadId).toBe(threadId);
    const after = await sessionStatus(next);
    expect(after.Bytes_received - before.Bytes_received).toBe(comQueryBytes(SESSION_STATUS_SQL));
    expect(after.Questions - before.Questions).toBe(1);
    expect(after.Com_admin_commands - before.Com_admin_commands).toBe(0);
    next.release();

    // The fenced beginTransaction() did not mark the (shared) session: the next release was clean.
    expect(pool.stats()).toMatchObject({ abandoned: 0, pendingRollback: 0, idle: 1 });
  } finally {
    await pool.end();
  }
  expect(await visible(side, table, scenario)).toEqual([]);
});

test("control: mysql2's own released connection keeps querying (and its INSERT is committed)", async () => {
  const scenario = 'released_mysql2';
  const pool = mysql2.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const old = await pool.getConnection();
    old.release();
    await old.query(insert(scenario, 1));
  } finally {
    await pool.end();
  }
  expect(await visible(side, table, scenario)).toEqual([1]);
});

test("a stale handle cannot commit (or roll back) the next user's transaction on the same connection", async () => {
  const scenario = 'stale_commit';
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const old = await pool.getConnection();
    old.release();

    const next = await pool.getConnection();
    expect(next.threadId).toBe(old.threadId);
    await next.beginTransaction();
    await next.query(insert(scenario, 1));

    await expect(old.commit()).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
    expect(await visible(side, table, scenario)).toEqual([]); // still uncommitted

    await expect(old.rollback()).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
    await next.query(insert(scenario, 2)); // still inside next's transaction
    await next.commit();
    next.release();
  } finally {
    await pool.end();
  }
  expect(await visible(side, table, scenario)).toEqual([1, 2]);
});

test("a second release() is a no-op, even while the connection is leased to someone else", async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const old = await pool.getConnection();
    old.release();
    const next = await pool.getConnection();
    expect(next.threadId).toBe(old.threadId);

    expect(() => old.release()).not.toThrow();
    pool.releaseConnection(old); // mysql2's other spelling, also a no-op
    // next's connection was not handed back behind its back.
    expect(pool.stats()).toMatchObject({ leased: 1, idle: 0, total: 1 });
    expect(next.isReleased).toBe(false);
    await expect(next.query('SELECT 1')).resolves.toBeDefined();

    // And a waiter does not get it either until next releases.
    let waiterGotIt = false;
    const waiter = pool.getConnection().then((conn) => {
      waiterGotIt = true;
      return conn;
    });
    await next.query('SELECT 1'); // a full round trip for the waiter to (wrongly) resolve
    expect(waiterGotIt).toBe(false);
    next.release();
    (await waiter).release();
  } finally {
    await pool.end();
  }
});

test('destroy() fences the lease too; release() and destroy() after it are no-ops', async () => {
  const scenario = 'destroyed';
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const conn = await pool.getConnection();
    const threadId = conn.threadId;
    const destroys: Array<{ threadId: number; reason: string }> = [];
    pool.on('destroy', (event) => destroys.push(event));
    conn.destroy();
    expect(conn.isReleased).toBe(true);
    expect(destroys).toEqual([expect.objectContaining({ threadId, reason: expect.any(String) })]);

    await expectAllFenced(conn, scenario);
    expect(() => conn.release()).not.toThrow();
    expect(() => conn.destroy()).not.toThrow();
    expect(destroys).toHaveLength(1);

    const next = await pool.getConnection();
    expect(next.threadId).not.toBe(threadId);
    next.release();
  } finally {
    await pool.end();
  }
  expect(await visible(side, table, scenario)).toEqual([]);
});

test('destroy() after release() does not destroy the connection (it may already serve someone else)', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const old = await pool.getConnection();
    old.release();
    const next = await pool.getConnection();
    old.destroy();
    await expect(next.query('SELECT 1')).resolves.toBeDefined();
    expect(pool.stats()).toMatchObject({ destroyed: 0, leased: 1 });
    next.release();
  } finally {
    await pool.end();
  }
});
