/**
 * A pending ROLLBACK that exceeds rollbackTimeoutMs destroys its connection and
 * emits rollbackError; whoever waits for a connection gets another one, never
 * an error caused by someone else's transaction.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type RollbackErrorEvent } from '../../src/index';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { nextEvent } from './helpers';

const table = uniqueTable('rbtimeout');
let side: Awaited<ReturnType<typeof sideConnection>>;

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
});

afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
});

test('a ROLLBACK stuck behind a slow statement times out: connection destroyed, rollbackError, the waiter gets a fresh clean connection', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, rollbackTimeoutMs: 200 });
  try {
    const conn = await pool.getConnection();
    const dirtyThread = conn.threadId;
    await conn.beginTransaction();
    await conn.query(`INSERT INTO ${table} VALUES (1)`);
    const slow = conn.query('SELECT SLEEP(3)').catch((error: unknown) => error); // in flight at release
    const failed = nextEvent(pool, 'rollbackError', 5_000);
    conn.release();

    const startedAt = Date.now();
    const next = await pool.getConnection(); // waits for the only slot
    const waitedMs = Date.now() - startedAt;
    const [event] = (await failed) as [RollbackErrorEvent];
    expect(event.threadId).toBe(dirtyThread);
    expect(event.error.code).toBe('ERR_ROLLBACK_FAILED');
    expect(next.threadId).not.toBe(dirtyThread);
    expect(waitedMs).toBeLessThan(2_500); // not held hostage by the 3 s statement
    const [rows] = await next.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
    expect(rows[0]?.t).toBe(0);
    next.release();
    await slow;
    const [visible] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table}`);
    expect(visible).toEqual([]); // the abandoned insert never committed
    expect(pool.stats()).toMatchObject({ rollbackFailures: 1, abandoned: 1 });
  } finally {
    await pool.end();
  }
});
