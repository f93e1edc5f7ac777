/**
 * Honest `destroy()` and `end()`: closing our socket does not stop a statement
 * on the server. A statement in flight when its connection is destroyed is
 * killed there (KILL CONNECTION) and its caller is told it may have run
 * (`neverSent` false); `end()` lets what was sent finish, rolls back what is
 * still open, and only then quits, so nothing is left running or locked when
 * it resolves.
 */
import { randomBytes } from 'node:crypto';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, type Pool } from '../../src';
import { isRowLocked, mysqlUrl, sideConnection, threadAlive, uniqueTable } from '../support/db';

const table = uniqueTable('honest_destroy');
let side: Connection;
const pools: Pool[] = [];

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB`);
  await side.query(`INSERT INTO ${table} (id, v) VALUES (1, 'seed')`);
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});
afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
});

function pool(options: Record<string, unknown> = {}): Pool {
  const made = createPool({ uri: mysqlUrl(), connectionLimit: 2, ...options });
  pools.push(made);
  return made;
}

function marker(): string {
  return `m_${randomBytes(4).toString('hex')}`;
}

/** Polls the server until a statement containing `tag` runs there (never a fixed sleep). */
async function untilRunning(tag: string): Promise<void> {
  const deadline = Date.now() + 3_000;
  for (;;) {
    const [rows] = await side.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE CONCAT('%', ?, '%') AND INFO NOT LIKE '%PROCESSLIST%'",
      [tag],
    );
    if (Number(rows[0]?.n) > 0) return;
    if (Date.now() > deadline) throw new Error(`statement ${tag} never ran`);
  }
}

async function untilGone(threadId: number, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await threadAlive(side, threadId)) {
    if (Date.now() > deadline) throw new Error(`thread ${threadId} still on the server after ${timeoutMs} ms`);
  }
}

async function rowCount(id: number): Promise<number> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table} WHERE id = ?`, [id]);
  return Number(rows[0]?.n);
}

describe('destroy() with a statement in flight', () => {
  test('an autocommit write is stopped on the server: the caller hears "may have run", and the row never commits', async () => {
    const p = pool();
    const lease = await p.getConnection();
    const threadId = lease.threadId;
    const tag = marker();
    const writing = lease
      .query(`INSERT INTO ${table} (id, v) SELECT 10, '${tag}' FROM (SELECT SLEEP(0.5)) t`)
      .then(() => undefined, (error: unknown) => error);
    await untilRunning(tag);
    lease.destroy();
    expect(await writing).toMatchObject({ code: 'ERR_CONNECTION_LOST', neverSent: false });
    await untilGone(threadId);
    // Were the statement left to run on (the socket merely closed), it would commit here, 0.5 s later.
    expect(await rowCount(10)).toBe(0);
    const [again] = await side.query<RowDataPacket[]>(`SELECT SLEEP(0.7) AS s, (SELECT COUNT(*) FROM ${table} WHERE id = 10) AS n`);
    expect(Number(again[0]?.n)).toBe(0);
    // The slot was given back: the pool still serves.
    await expect(p.query('SELECT 1 AS one')).resolves.toEqual([[{ one: 1 }], expect.anything()]);
  });

  test('a destroy with nothing in flight is immediate and sends no KILL (the thread leaves by itself)', async () => {
    const p = pool();
    const lease = await p.getConnection();
    const threadId = lease.threadId;
    lease.destroy();
    await untilGone(threadId);
    await expect(lease.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
  });

  test("onTimeout: 'destroy' stops the running statement on the server too", async () => {
    const p = pool();
    const tag = marker();
    let threadId = 0;
    const outcome = await p
      .transaction(
        async (tx) => {
          const [me] = await tx.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
          threadId = Number(me[0]?.id);
          await tx.query(`UPDATE ${table} SET v = '${tag}' WHERE id = 1 AND SLEEP(5) = 0`);
        },
        { timeoutMs: 100, onTimeout: 'destroy' },
      )
      .then(() => undefined, (error: unknown) => error);
    expect(outcome).toMatchObject({ code: 'ERR_TX_TIMEOUT' });
    // Without the KILL the thread would sleep on for 5 s, holding the row lock.
    await untilGone(threadId, 2_000);
    expect(await isRowLocked(side, table, 1)).toBe(false);
    const [rows] = await side.query<RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = 1`);
    expect(rows).toEqual([{ v: 'seed' }]);
  });
});

describe('end()', () => {
  test('a lease still inside a transaction is rolled back before end() resolves: row lock free, row never visible', async () => {
    const p = pool();
    const lease = await p.getConnection();
    await lease.beginTransaction();
    await lease.query(`INSERT INTO ${table} (id, v) VALUES (20, 'abandoned at end')`);
    expect(await isRowLocked(side, table, 20)).toBe(true);
    let rolledBack = 0;
    p.on('rollback', () => rolledBack++);
    await p.end();
    // Checked at once, no polling: the ROLLBACK was answered before end() resolved.
    expect(await isRowLocked(side, table, 20)).toBe(false);
    expect(await rowCount(20)).toBe(0);
    expect(rolledBack).toBe(1);
    await expect(lease.commit()).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
  });

  test('a lazily flagged connection (cleanup: checkout) is rolled back before end() resolves', async () => {
    const p = pool({ cleanup: 'checkout' });
    const lease = await p.getConnection();
    await lease.beginTransaction();
    await lease.query(`INSERT INTO ${table} (id, v) VALUES (21, 'flagged')`);
    lease.release();
    expect(p.stats().pendingRollback).toBe(1);
    await p.end();
    expect(await isRowLocked(side, table, 21)).toBe(false);
    expect(await rowCount(21)).toBe(0);
  });

  test('queued acquirers fail at once with ERR_POOL_CLOSED while a statement already sent finishes', async () => {
    const p = pool({ connectionLimit: 1 });
    const tag = marker();
    const running = p.query(`SELECT SLEEP(0.3) AS slept, '${tag}' AS tag`);
    await untilRunning(tag);
    const queued = p.getConnection().then(() => 'served', (error: unknown) => error);
    await new Promise<void>((resolve) => {
      const check = (): void => (p.stats().waiting === 1 ? resolve() : void setImmediate(check));
      check();
    });
    const ending = p.end();
    expect(await queued).toMatchObject({ code: 'ERR_POOL_CLOSED' });
    const [rows] = await running;
    expect(rows).toEqual([{ slept: 0, tag }]);
    await ending;
  });
});
