/**
 * Commit failure: if COMMIT fails, a ROLLBACK is tried and the commit error is thrown,
 * with the rollback error attached when that fails too; if the connection is lost
 * during COMMIT the outcome is unknown and we say so (ERR_COMMIT_OUTCOME_UNKNOWN).
 *
 * MariaDB has no natural way to make a plain COMMIT fail without losing the connection,
 * so a TCP proxy (../support/fault-proxy.ts) injects the faults at exact points: it rewrites the COMMIT
 * into a SIGNAL (the error packet comes from the real server), cuts the connection at the
 * ROLLBACK, or lets COMMIT reach the server and drops its reply. An error reply to COMMIT is
 * a refusal (1105 here), except 1180 ER_ERROR_DURING_COMMIT: Galera answers it when the write
 * set's replication failed part way, and it may have committed elsewhere (outcome unknown).
 */
import type { RollbackPoolError } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { codeOf, ids, isRowLocked, nextEvent, rejection, scalar, sideDb, testPool, waitUntil } from './helpers';
import { startProxy, type Proxy, type QueryAction } from '../support/fault-proxy';

const db = sideDb('tx_commit_fail');

const FAILING_COMMIT = "SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1105, MESSAGE_TEXT = 'COMMIT refused (injected by the test proxy)'";
const COMMIT_1180 = "SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1180, MESSAGE_TEXT = 'Got error 6 during COMMIT (injected by the test proxy)'";

let proxy: Proxy;
/** What the proxy does with the next COMMIT / ROLLBACK (reset before each test). */
let onCommit: QueryAction = 'forward';
let onRollback: QueryAction = 'forward';

beforeAll(async () => {
  proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql) => (sql === 'COMMIT' ? onCommit : sql === 'ROLLBACK' ? onRollback : 'forward'),
  });
});
afterAll(async () => {
  await proxy.close();
});
beforeEach(() => {
  onCommit = 'forward';
  onRollback = 'forward';
});

test('COMMIT fails, the ROLLBACK works: the commit error is thrown, nothing is committed, the connection is reused', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const tx = await pool.begin();
    const threadId = tx.threadId;
    await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
    onCommit = { rewrite: FAILING_COMMIT };

    const error = await rejection(tx.commit());
    expect(codeOf(error)).toBe(1105);
    expect(error.rollbackError).toBeUndefined();
    expect(tx.state).toBe('rolledBack');
    expect(codeOf(await rejection(tx.query('SELECT 1')))).toBe('ERR_TX_CLOSED');

    expect(await ids(db.side(), table)).toEqual([]);
    onCommit = 'forward';
    expect(await scalar(pool, 'SELECT CONNECTION_ID()')).toBe(threadId);
    expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, destroyed: 0 });
  } finally {
    await pool.end();
  }
});

test('COMMIT fails and the ROLLBACK fails too: the commit error is thrown with the rollback error attached (non-enumerable)', async () => {
  const table = await db.table([1]);
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const tx = await pool.begin();
    const threadId = tx.threadId;
    await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 1`);
    await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
    onCommit = { rewrite: FAILING_COMMIT };
    onRollback = 'cut';
    const destroyed = nextEvent(pool, 'destroy');

    const error = await rejection(tx.commit());
    expect(codeOf(error)).toBe(1105); // the commit error stays the primary one
    expect(error.rollbackError).toBeDefined();
    expect(error.rollbackError.fatal).toBe(true);
    expect(Object.keys(error)).not.toContain('rollbackError');
    expect(Object.getOwnPropertyDescriptor(error, 'rollbackError')?.enumerable).toBe(false);
    expect(tx.state).toBe('rolledBack');

    // The connection is destroyed, never reused; the server rolls back when it sees it go.
    await destroyed;
    expect(pool.stats()).toMatchObject({ total: 0, leased: 0 });
    await waitUntil(async () => !(await isRowLocked(db.side(), table, 1)), 5_000);
    expect(await ids(db.side(), table)).toEqual([1]);
    onCommit = 'forward';
    onRollback = 'forward';
    expect(await scalar(pool, 'SELECT CONNECTION_ID()')).not.toBe(threadId);
  } finally {
    await pool.end();
  }
});

test('connection lost during COMMIT: ERR_COMMIT_OUTCOME_UNKNOWN, not a guess (here the server did commit)', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const tx = await pool.begin();
    await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
    onCommit = 'lose-reply';

    const error: RollbackPoolError = await rejection(tx.commit());
    expect(codeOf(error)).toBe('ERR_COMMIT_OUTCOME_UNKNOWN');
    expect((error?.cause as { fatal?: boolean }).fatal).toBe(true);
    // A library that guessed "rolled back" would be wrong: the row is committed.
    await waitUntil(async () => (await ids(db.side(), table)).length === 1, 5_000);
    expect(await ids(db.side(), table)).toEqual([1]);
    // The handle is closed, and its connection is gone for good.
    expect(codeOf(await rejection(tx.query('SELECT 1')))).toBe('ERR_TX_CLOSED');
    expect(pool.stats()).toMatchObject({ total: 0, leased: 0, destroyed: 1 });
  } finally {
    await pool.end();
  }
});

// Regression test (this was a bug): after ERR_COMMIT_OUTCOME_UNKNOWN the handle's state is 'rolledBack'
// (transaction.ts commit(): `this.end('rolledBack')` on a fatal COMMIT error), which is the guess the
// error exists to avoid; here the server had in fact committed.
test('after ERR_COMMIT_OUTCOME_UNKNOWN, tx.state does not claim the transaction was rolled back', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const tx = await pool.begin();
    await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
    onCommit = 'lose-reply';
    expect(codeOf(await rejection(tx.commit()))).toBe('ERR_COMMIT_OUTCOME_UNKNOWN');
    await waitUntil(async () => (await ids(db.side(), table)).length === 1, 5_000);
    expect(tx.state).not.toBe('rolledBack');
  } finally {
    await pool.end();
  }
});

test('connection killed before COMMIT (no proxy): the COMMIT is never sent, ERR_CONNECTION_LOST (certain: not committed), the pool recovers', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
    const destroyed = nextEvent(pool, 'destroy');
    await db.side().query(`KILL ${tx.threadId}`);
    await destroyed; // the pool noticed the connection go

    const error = await rejection(tx.commit());
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST', neverSent: true, fatal: true });
    expect(tx.state).toBe('rolledBack'); // by the server, when the connection went: no guess
    expect(await ids(db.side(), table)).toEqual([]);
    expect(await scalar(pool, 'SELECT 1')).toBe(1);
  } finally {
    await pool.end();
  }
});

test('pool.transaction(): a failing COMMIT rejects the caller with the commit error and commits nothing', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    onCommit = { rewrite: FAILING_COMMIT };
    const error = await rejection(
      pool.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        return 'done';
      }),
    );
    expect(codeOf(error)).toBe(1105);
    expect(await ids(db.side(), table)).toEqual([]);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, destroyed: 0 });
  } finally {
    await pool.end();
  }
});

test('COMMIT answered 1180 (Galera: replication failed part way): ERR_COMMIT_OUTCOME_UNKNOWN, no ROLLBACK sent, the connection closed', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  const seen: string[] = [];
  try {
    const tx = await pool.begin();
    const threadId = tx.threadId;
    await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
    onCommit = { rewrite: COMMIT_1180 };
    onRollback = 'cut'; // a ROLLBACK sent after it would be seen here
    pool.on('abandon', () => seen.push('abandon'));
    pool.on('rollbackError', () => seen.push('rollbackError'));
    pool.on('destroy', ({ reason }) => seen.push(`destroy:${reason}`));

    const error: RollbackPoolError = await rejection(tx.commit());
    expect(codeOf(error)).toBe('ERR_COMMIT_OUTCOME_UNKNOWN');
    expect(codeOf(error.cause)).toBe(1180);
    expect(tx.state).toBe('outcomeUnknown');
    expect(seen).toEqual(['destroy:COMMIT failed with 1180 (ER_ERROR_DURING_COMMIT): outcome unknown']);
    onCommit = 'forward';
    onRollback = 'forward';
    expect(await scalar(pool, 'SELECT CONNECTION_ID()')).not.toBe(threadId);
    await waitUntil(async () => !(await isRowLocked(db.side(), table, 1)), 5_000);
    expect(await ids(db.side(), table)).toEqual([]);
  } finally {
    await pool.end();
  }
});
