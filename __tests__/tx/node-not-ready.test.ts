/**
 * What a cluster node throws, classified on a single pool (on the shared
 * server: a proxy turns statements into the errors a Galera node answers,
 * with SIGNAL, so the error packets come from the real server):
 *
 * - 1047 (a node not synced with a primary component refuses every table
 *   statement, BEGIN and ROLLBACK included): a refused BEGIN is no abandon and
 *   its refused ROLLBACK no `rollbackError`; the connection is closed quietly,
 *   with a `destroy` whose reason names the node state; a clean lease that
 *   met a 1047 goes back to the pool as usual;
 * - 1213 at COMMIT (a Galera certification failure): the handle ends
 *   `endedByServer`, as after a deadlock on a statement, and no ROLLBACK is sent;
 * - a scope whose COMMIT got 1213 lists that connection under `rolledBack`.
 *
 * The real thing, on a real Galera cluster: __tests__/galera/.
 */
import type { Pool, ScopeCommitError } from '../../src/index';
import { startProxy, type Proxy } from '../support/fault-proxy';
import { mysqlUrl, sideConnection } from '../support/db';
import { ids, rejection, scalar, sideDb, testPool, waitUntil } from './helpers';

const db = sideDb('tx_node_not_ready');

const NOT_READY = "SIGNAL SQLSTATE '08S01' SET MYSQL_ERRNO = 1047, MESSAGE_TEXT = 'WSREP has not yet prepared node for application use'";
/** A COMMIT that fails as Galera's certification does: the server rolls the transaction back and answers 1213. */
const FAIL_COMMIT = `rp_certification_failure_${process.pid}`;
const CERTIFICATION_FAILURE = `CALL ${FAIL_COMMIT}()`;

let proxy: Proxy;
/** Statements the proxy refuses as a node that lost its primary component would. */
let refuse: (sql: string) => string | undefined = () => undefined;

beforeAll(async () => {
  const setup = await sideConnection();
  await setup.query(
    `CREATE PROCEDURE ${FAIL_COMMIT}() BEGIN ROLLBACK; ` +
      "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found when trying to get lock; try restarting transaction'; END",
  );
  await setup.end();
  proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql) => {
      const rewrite = refuse(sql);
      return rewrite === undefined ? 'forward' : { rewrite };
    },
  });
});
afterAll(async () => {
  await proxy.close();
  const teardown = await sideConnection();
  await teardown.query(`DROP PROCEDURE IF EXISTS ${FAIL_COMMIT}`);
  await teardown.end();
});
beforeEach(() => {
  refuse = () => undefined;
});

/** Every event of the kinds that would be false alarms, and the destroys with their reasons. */
function watch(pool: Pool): string[] {
  const seen: string[] = [];
  pool.on('abandon', ({ reason }) => seen.push(`abandon:${reason}`));
  pool.on('rollbackError', () => seen.push('rollbackError'));
  pool.on('destroy', ({ reason }) => seen.push(`destroy:${reason}`));
  return seen;
}

const QUIET_DESTROY = /^destroy:node not ready \(1047 WSREP has not yet prepared node for application use\)/;

test('a BEGIN refused with 1047 (and its ROLLBACK): no abandon, no rollbackError; the connection is closed quietly, naming the node state', async () => {
  const pool = testPool({ connectionLimit: 2 }, proxy.url);
  const seen = watch(pool);
  try {
    const held = await pool.getConnection();
    refuse = (sql) => (sql.startsWith('START TRANSACTION') || sql === 'ROLLBACK' ? NOT_READY : undefined);

    expect((await rejection(pool.transaction(async () => 'never'))).errno).toBe(1047);
    expect((await rejection(pool.begin())).errno).toBe(1047);
    expect((await rejection(pool.begin({ isolationLevel: 'READ COMMITTED' }))).errno).toBe(1047);
    expect((await rejection(held.beginTransaction())).errno).toBe(1047); // a lease the caller keeps
    expect((await rejection(held.begin())).errno).toBe(1047);
    held.release();

    // transaction(), begin(), begin() with an isolation level, and the held lease at its release.
    await waitUntil(() => seen.length >= 4, 5_000);
    expect(seen).toHaveLength(4);
    for (const event of seen) expect(event).toMatch(QUIET_DESTROY);
    expect(pool.stats()).toMatchObject({ abandoned: 0, rollbackFailures: 0, leased: 0, pendingRollback: 0 });

    refuse = () => undefined; // the node is back: the pool serves at once
    expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
  } finally {
    await pool.end();
  }
});

test('a clean lease that met a 1047 goes back to the pool as usual; a real abandon is still one', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  const seen = watch(pool);
  try {
    const threadId = await scalar(pool, 'SELECT CONNECTION_ID()');
    refuse = (sql) => (sql.startsWith('SELECT') && sql.includes('refused') ? NOT_READY : undefined);
    expect((await rejection(pool.query("SELECT 'refused'"))).errno).toBe(1047); // autocommit, nothing open
    expect(await scalar(pool, 'SELECT CONNECTION_ID()')).toBe(threadId);

    refuse = () => undefined;
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    await conn.query(`INSERT INTO ${table} (id) VALUES (1)`);
    conn.release(); // walked away inside a transaction: that is an abandon, rolled back
    await waitUntil(() => seen.length > 0 && pool.stats().rolledBack === 1, 5_000);
    expect(seen).toEqual(['abandon:released-in-transaction']);
    expect(await ids(db.side(), table)).toEqual([]);
  } finally {
    await pool.end();
  }
});

test('1213 at COMMIT (a certification failure): the handle ends endedByServer and no ROLLBACK is sent', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  const seen = watch(pool);
  try {
    const tx = await pool.begin();
    await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
    const sent = proxy.queries.length;
    refuse = (sql) => (sql === 'COMMIT' ? CERTIFICATION_FAILURE : undefined);
    const error = await rejection(tx.commit());
    expect(error.errno).toBe(1213);
    expect(tx.state).toBe('endedByServer');
    expect(proxy.queries.slice(sent).map((q) => q.sql)).toEqual(['COMMIT']); // no ROLLBACK after it
    expect(seen).toEqual([]);
    refuse = () => undefined;
    expect((await rejection(tx.commit())).code).toBe('ERR_TX_ENDED_BY_SERVER');
    expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
    expect(await ids(db.side(), table)).toEqual([]);
  } finally {
    await pool.end();
  }
});

test('a scope whose COMMIT got 1213 lists that connection under rolledBack', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 2 }, proxy.url);
  try {
    let threadId = 0;
    refuse = (sql) => (sql === 'COMMIT' ? CERTIFICATION_FAILURE : undefined);
    const error: ScopeCommitError = await rejection(
      pool.withScope(async () => {
        const conn = await pool.getConnection();
        threadId = conn.threadId;
        await conn.query(`INSERT INTO ${table} (id) VALUES (1)`);
        conn.release();
      }),
    );
    expect(error.code).toBe('ERR_SCOPE_COMMIT_FAILED');
    expect(error.rolledBack).toEqual([threadId]);
    expect(error.failed).toEqual([]);
    expect((error.cause as { errno?: number }).errno).toBe(1213);
    expect(await ids(db.side(), table)).toEqual([]);
  } finally {
    refuse = () => undefined;
    await pool.end();
  }
});
