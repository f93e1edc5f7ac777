/**
 * The begin guard: the connection counts as "in a transaction" before BEGIN is written,
 * so a begin that fails, times out or is aborted half way never leaves a transaction
 * (or a pending `SET TRANSACTION` characteristic) behind for the next user.
 *
 * A proxy (../support/fault-proxy.ts) holds START TRANSACTION for a while, so that the deadline or the
 * release lands while it is in flight, and the server really does open the transaction.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { mysqlUrl } from '../support/db';
import { codeOf, collect, ids, isRowLocked, nextEvent, rejection, scalar, sideDb, testPool } from './helpers';
import { startProxy, type Proxy, type QueryAction } from '../support/fault-proxy';

const db = sideDb('tx_begin_guard');

let proxy: Proxy;
/** What the proxy does with the next START TRANSACTION (reset before each test). */
let onStart: QueryAction = 'forward';

beforeAll(async () => {
  proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql) => (sql.startsWith('START TRANSACTION') ? onStart : 'forward'),
  });
});
afterAll(async () => {
  await proxy.close();
});
beforeEach(() => {
  onStart = 'forward';
});

const SLOW_START: QueryAction = { delayMs: 300 };

test('release while SET TRANSACTION is in flight: the next user gets a clean connection, at the default isolation level', async () => {
  const table = await db.table([1]);
  const pool = testPool({ connectionLimit: 1 });
  try {
    const conn = await pool.getConnection();
    const threadId = conn.threadId;
    const begin = conn.begin({ isolationLevel: 'SERIALIZABLE' });
    conn.release(); // before BEGIN is done
    expect(codeOf(await rejection(begin))).toBe('ERR_LEASE_RELEASED');

    const next = await pool.begin();
    expect(next.threadId).toBe(threadId);
    await next.query(`SELECT v FROM ${table} WHERE id = 1`);
    expect(await isRowLocked(db.side(), table, 1)).toBe(false); // not SERIALIZABLE
    await next.commit();
    expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, destroyed: 0 });
  } finally {
    await pool.end();
  }
});

test('release while START TRANSACTION is in flight: the transaction the server opened is rolled back before anyone else gets the connection', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const conn = await pool.getConnection();
    onStart = SLOW_START;
    const begin = conn.begin();
    begin.catch(() => undefined);
    const rolledBack = nextEvent(pool, 'rollback');
    conn.release();
    await rolledBack;
    onStart = 'forward';
    expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
    await pool.query(`INSERT INTO ${table} (id) VALUES (1)`); // autocommit: must not join anything
    expect(await ids(db.side(), table)).toEqual([1]);
    expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, destroyed: 0 });
  } finally {
    await pool.end();
  }
});

test.each([
  ['timeoutMs', 'timeout'],
  ['signal', 'aborted'],
] as const)('pool.transaction(): %s fires during BEGIN: the caller rejects at once, fn never runs, the opened transaction is rolled back', async (kind, reason) => {
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  const abandons = collect(pool, 'abandon');
  try {
    await pool.query('SELECT 1'); // open the connection first
    onStart = SLOW_START;
    const controller = new AbortController();
    const fn = jest.fn(async () => 'ran');
    const rolledBack = nextEvent(pool, 'rollback');
    const caller = pool.transaction(fn, kind === 'timeoutMs' ? { timeoutMs: 50 } : { signal: controller.signal });
    if (kind === 'signal') setTimeout(() => controller.abort(), 50);
    const error = await rejection(caller);
    // Rejected before START TRANSACTION came back: nothing has been abandoned or rolled back yet.
    expect(pool.stats()).toMatchObject({ abandoned: 0, rolledBack: 0, leased: 1 });
    expect(kind === 'timeoutMs' ? codeOf(error) : error.name).toBe(kind === 'timeoutMs' ? 'ERR_TX_TIMEOUT' : 'AbortError');

    await rolledBack;
    expect(fn).not.toHaveBeenCalled();
    expect(abandons).toEqual([[expect.objectContaining({ reason })]]);
    onStart = 'forward';
    expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, abandoned: 1, rolledBack: 1 });
  } finally {
    await pool.end();
  }
});

test('pool.begin(): the connection dies during START TRANSACTION: begin rejects, nothing is left behind, the pool recovers', async () => {
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    onStart = 'cut';
    const error = await rejection(pool.begin());
    expect(error.fatal).toBe(true);
    onStart = 'forward';
    expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0 });
  } finally {
    await pool.end();
  }
});

// Regression test (this was a bug): with an isolationLevel, BEGIN is two statements. The OK packet of
// `SET TRANSACTION ISOLATION LEVEL ...` reports IN_TRANS = 0, which clears the guard armed before
// it. If START TRANSACTION then fails without killing the connection, Transaction.begin() releases
// the lease and the session looks clean: no ROLLBACK is run, and the one-shot characteristic is
// handed to the next user, whose own next transaction silently runs SERIALIZABLE.
test('pool.begin({ isolationLevel }) whose START TRANSACTION fails does not pass the level on to the next user', async () => {
  const table = await db.table([1]);
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    onStart = { rewrite: "SIGNAL SQLSTATE 'HY000' SET MESSAGE_TEXT = 'START TRANSACTION failed (injected)'" };
    const error = await rejection(pool.begin({ isolationLevel: 'SERIALIZABLE' }));
    expect(error.message).toContain('injected');
    onStart = 'forward';

    const next = await pool.begin(); // default level asked for
    await next.query(`SELECT v FROM ${table} WHERE id = 1`);
    const lockedBySelect = await isRowLocked(db.side(), table, 1);
    await next.rollback();
    expect(lockedBySelect).toBe(false);
  } finally {
    await pool.end();
  }
});

// Regression test (this was a bug): conn.transaction(fn, { timeoutMs }) timing out while START TRANSACTION is in
// flight rejects the caller at once, but the ROLLBACK is only queued when BEGIN comes back
// (run.ts: `start().then(began => { if (stopped) interrupt(began, ...) })`). A caller that goes on
// using its lease right after the rejection has its statement queued *before* that ROLLBACK: it
// runs inside the abandoned transaction and is silently rolled back (the lost write this library
// exists to prevent). Same for tx.transaction(fn, { timeoutMs }) timing out during SAVEPOINT.
test("conn.transaction() timing out during BEGIN: the caller's next autocommit INSERT on its lease is kept", async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const conn = await pool.getConnection();
    onStart = SLOW_START;
    const error = await rejection(conn.transaction(async () => 'never runs', { timeoutMs: 50 }));
    expect(codeOf(error)).toBe('ERR_TX_TIMEOUT');
    const [result] = await conn.query(`INSERT INTO ${table} (id) VALUES (1)`); // reported as done...
    expect((result as { affectedRows: number }).affectedRows).toBe(1);
    const [rows] = await conn.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
    conn.release();
    expect({ committed: await ids(db.side(), table), inTransactionAfter: rows[0]!.t }).toEqual({ committed: [1], inTransactionAfter: 0 });
  } finally {
    await pool.end();
  }
});
