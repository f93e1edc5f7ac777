/**
 * The callback face (`createCallbackPoolCluster`, for `require('rollback-pool/mysql2')`):
 * mysql2's callback API over the promise cluster. Connections are
 * `CallbackConnection`s (fenced and tracked: a transaction left open on one
 * is rolled back), events are forwarded, `promise()` is the same cluster,
 * `end(cb)` and `using` end it, and a callback that throws is an uncaught
 * exception, never an unhandled rejection (checked in a child process).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2';
import { CallbackPoolCluster, createCallbackPoolCluster, PoolCluster } from '../../src/cluster/index';
import type { CallbackConnection } from '../../src/index';
import { isRowLocked, mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { aliveThreads, deadUrl, recordEvents, servedBy, startNodeProxy, waitUntil, type NodeProxy } from './helpers';

const table = uniqueTable('cluster_cb');
let side: Connection;
let proxies: NodeProxy[] = [];
let cluster: CallbackPoolCluster;

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  await side.query(`INSERT INTO ${table} VALUES (1, 0)`);
  proxies = await Promise.all([0, 1].map(() => startNodeProxy()));
});

afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

beforeEach(() => {
  cluster = createCallbackPoolCluster();
  cluster.add('a', { uri: proxies[0]!.url, connectionLimit: 2 });
  cluster.add('b', { uri: proxies[1]!.url, connectionLimit: 2 });
});

afterEach(async () => {
  await cluster.promise().end();
});

/** getConnection's callback as a promise, for the test's own sequencing. */
function take(...args: unknown[]): Promise<CallbackConnection> {
  return new Promise((resolve, reject) => {
    (cluster.getConnection as (...a: unknown[]) => void)(...args, (err: Error | null, conn: CallbackConnection) => (err ? reject(err) : resolve(conn)));
  });
}

function statement(run: (cb: (err: Error | null, rows?: unknown) => void) => void): Promise<RowDataPacket[]> {
  return new Promise((resolve, reject) => run((err, rows) => (err ? reject(err) : resolve(rows as RowDataPacket[]))));
}

describe('the callback API', () => {
  test('getConnection(cb), (pattern, cb), (pattern, selector, cb) pick nodes as the promise face', async () => {
    const served: number[] = [];
    for (const args of [[], [], ['b'], ['*', 'ORDER'], ['*', 'ORDER'], ['*']]) {
      const conn = await take(...args);
      served.push(servedBy(proxies, conn.threadId));
      const rows = await statement((cb) => conn.query('SELECT CONNECTION_ID() AS id', cb));
      expect(Number(rows[0]!.id)).toBe(conn.threadId);
      conn.release();
    }
    expect(served).toEqual([0, 1, 1, 0, 0, 0]);
    await expect(take('nobody')).rejects.toMatchObject({ code: 'POOL_NOEXIST' });
    expect(() => cluster.getConnection('*', 'FASTEST' as never, () => undefined)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  test('namespace query and execute, with and without values; errors go to the callback alone', async () => {
    const namespace = cluster.of('b');
    expect(cluster.of('b')).toBe(namespace);
    const byQuery = await statement((cb) => namespace.query('SELECT CONNECTION_ID() AS id', cb));
    expect(servedBy(proxies, Number(byQuery[0]!.id))).toBe(1);
    expect(await statement((cb) => namespace.query('SELECT ? AS x', [7], cb))).toEqual([{ x: 7 }]);
    expect(await statement((cb) => cluster.of('a').execute('SELECT ? AS x', [8], cb))).toEqual([{ x: 8 }]);
    const args: unknown[] = await new Promise((resolve) => namespace.query('SELECT * FROM no_such_table_cb', (...got: unknown[]) => resolve(got)));
    expect(args).toHaveLength(1);
    expect(args[0]).toMatchObject({ code: 'ER_NO_SUCH_TABLE' });
    expect(() => namespace.query('SELECT 1', undefined as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'callback' }));
    expect(namespace.promise()).toBe(cluster.promise().of('b'));
  });

  test('a transaction left open on a callback connection is rolled back by its node\'s pool', async () => {
    const conn = await take('a');
    await new Promise<void>((resolve, reject) => conn.beginTransaction((err) => (err ? reject(err) : resolve())));
    await statement((cb) => conn.query(`UPDATE ${table} SET v = 5 WHERE id = 1`, cb));
    expect(await isRowLocked(side, table, 1)).toBe(true);
    conn.release();
    await waitUntil(async () => !(await isRowLocked(side, table, 1)));
    const [rows] = await side.query<RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = 1`);
    expect(rows).toEqual([{ v: 0 }]);
    // Fenced: the released connection sends nothing.
    const error = await statement((cb) => conn.query('SELECT 1', cb)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_LEASE_RELEASED' });
  });

  test('events are forwarded with mysql2\'s arguments; promise() is the same cluster', async () => {
    const failing = createCallbackPoolCluster({ removeNodeErrorCount: 1 });
    try {
      const events = recordEvents(failing);
      failing.add('dead', await deadUrl());
      failing.add('a', { uri: proxies[0]!.url, connectionLimit: 1 });
      const promise = failing.promise();
      expect(promise).toBeInstanceOf(PoolCluster);
      const conn = await new Promise<CallbackConnection>((resolve, reject) => failing.getConnection((err, c) => (err ? reject(err) : resolve(c))));
      conn.release();
      expect(events).toEqual(['remove:dead', 'warn:ECONNREFUSED']);
      expect(promise.toJSON().nodes.map((node) => node.id)).toEqual(['a']);
      expect(failing.config).toBe(promise.config);
    } finally {
      await failing.promise().end();
    }
  });

  test('end(cb) closes every node (no thread left); afterwards callbacks get ERR_POOL_CLOSED', async () => {
    await take('a').then((conn) => conn.release());
    await take('b').then((conn) => conn.release());
    const threads = proxies.flatMap((proxy) => [...proxy.threadIds]);
    expect(await aliveThreads(side, threads)).not.toEqual([]);
    const endArgs: unknown[] = await new Promise((resolve) => cluster.end((...args: unknown[]) => resolve(args)));
    expect(endArgs).toEqual([]);
    expect(cluster.closed).toBe(true);
    await waitUntil(async () => (await aliveThreads(side, threads)).length === 0);
    await expect(take()).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
  });

  test('using ends the cluster at the end of the block, as mysql2\'s Symbol.dispose', async () => {
    let disposed: CallbackPoolCluster | undefined;
    {
      using scoped = createCallbackPoolCluster();
      disposed = scoped;
      scoped.add('a', { uri: proxies[0]!.url, connectionLimit: 1 });
    }
    expect(disposed.closed).toBe(true);
    {
      await using scoped = createCallbackPoolCluster();
      disposed = scoped;
    }
    expect(disposed.closed).toBe(true);
  });
});

describe('a callback that throws is an uncaught exception, never an unhandled rejection', () => {
  const script = path.join(__dirname, 'fixtures', 'throwing-callback.ts');

  function runFixture(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', script, ...args], { env: { ...process.env, MYSQL_URL: mysqlUrl() }, encoding: 'utf8', timeout: 20_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr });
      });
    });
  }

  test.each(['getConnection', 'query', 'execute', 'end'])('from a %s callback', async (scenario) => {
    const { code, stdout, stderr } = await runFixture(scenario, proxies[0]!.url);
    expect(stdout).toContain(`reached ${scenario}`);
    expect(stderr).not.toContain('UNHANDLED REJECTION');
    expect(stderr).toContain(`Error: thrown by the ${scenario} callback`);
    expect(code).toBe(1); // Node's exit code for an uncaught exception
  });

  test('an error handed to the callback and rethrown by it', async () => {
    const { code, stdout, stderr } = await runFixture('error', proxies[0]!.url);
    expect(stdout).toContain('reached error POOL_NOEXIST');
    expect(stderr).not.toContain('UNHANDLED REJECTION');
    expect(stderr).toContain('Pool does Not exist.');
    expect(code).toBe(1);
  });

  test('a throwing cluster listener does not stop the failover; its error is uncaught on the next tick', async () => {
    const { code, stdout } = await runFixture('listener', proxies[0]!.url, await deadUrl());
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      served: true,
      removed: ['dead'],
      warned: ['ECONNREFUSED'], // the retry happened after the throwing listener
      nodes: ['a'],
      uncaught: ['bug in a logging listener'],
    });
  });
});
