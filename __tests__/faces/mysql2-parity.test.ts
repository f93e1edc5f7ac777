/**
 * Small things mysql2's own pool tests rely on (run with the pool swapped:
 * see the note of issue 10): `connection.state`, `pool.Promise`, mysql2's
 * pool events emitted on the callback face reaching the promise pool's
 * listeners, the deprecation `warn` of `connection.end()`, and a server whose
 * answer to the pool's connect-time query has no rows.
 */
import { createPool, createPoolCluster, type Pool } from '../../src';
import { startProxy } from '../support/fault-proxy';
import { mysqlUrl } from '../support/db';

const pools: Pool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});
function pool(options: Record<string, unknown> = {}): Pool {
  const made = createPool({ uri: mysqlUrl(), connectionLimit: 1, ...options });
  pools.push(made);
  return made;
}

test("connection.state: 'authenticated' while up, 'disconnected' once destroyed (as mysql2)", async () => {
  const p = pool();
  const lease = await p.getConnection();
  expect(lease.connection.state).toBe('authenticated');
  lease.connection.destroy();
  expect(lease.connection.state).toBe('disconnected');
});

test('pool.Promise is the class of what the pool returns', async () => {
  const p = pool();
  const query = p.query('SELECT 1');
  expect(query).toBeInstanceOf(p.Promise);
  await query;
  const ending = p.end();
  expect(ending).toBeInstanceOf(p.Promise);
  await ending;
});

test("mysql2's pool events emitted on pool.pool reach the promise pool's listeners (with the promise pool as this)", () => {
  const p = pool();
  const seen: string[] = [];
  for (const event of ['acquire', 'connection', 'enqueue', 'release'] as const) {
    expect(p.pool.listenerCount(event)).toBe(0);
    p.once(event, function (this: unknown) {
      expect(this).toBe(p);
      seen.push(event);
    });
  }
  for (const event of ['acquire', 'connection', 'enqueue', 'release'] as const) (p.pool.emit as (e: string) => boolean)(event);
  expect(seen).toEqual(['acquire', 'connection', 'enqueue', 'release']);
  for (const event of ['acquire', 'connection', 'enqueue', 'release'] as const) expect(p.pool.listenerCount(event)).toBe(0);
});

test("connection.end() without gracefulEnd emits mysql2's deprecation warn, releases and calls back", async () => {
  const p = pool();
  const lease = await p.getConnection();
  const warnings: Error[] = [];
  lease.connection.on('warn', (warning: Error) => warnings.push(warning));
  await new Promise<void>((resolve) => lease.connection.end(() => resolve()));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]?.message).toMatch(/^Calling conn\.end\(\) to release a pooled connection is deprecated/);
  expect(p.stats()).toMatchObject({ idle: 1, leased: 0 });
});

test("a connect-time query answered without rows: the pool uses its defaults, nothing throws in mysql2's callback", async () => {
  // Through a proxy that turns the pool's connect-time SELECT into a statement that returns an OK packet.
  const proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql) => (sql.includes('@@innodb_rollback_on_timeout') ? { rewrite: 'DO 1' } : 'forward'),
  });
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown): void => {
    uncaught.push(error);
  };
  process.on('uncaughtException', onUncaught);
  try {
    const p = pool({ uri: proxy.url, acquireTimeoutMs: 2_000 });
    await expect(p.query('SELECT 1 AS one')).resolves.toEqual([[{ one: 1 }], expect.anything()]);
    expect(uncaught).toEqual([]);
  } finally {
    process.off('uncaughtException', onUncaught);
    await Promise.all(pools.splice(0).map((made) => made.end()));
    await proxy.close();
  }
});

test('a connect-time query the server refuses (a node in read-only failover answers 1290): the connection serves with the defaults', async () => {
  const proxy = await startProxy(mysqlUrl(), {
    // A statement that fails with a plain server error (1146), standing in for the refused SELECT.
    onQuery: (sql) => (sql.includes('@@innodb_rollback_on_timeout') ? { rewrite: 'SELECT * FROM rp_no_such_table_anywhere' } : 'forward'),
  });
  try {
    const p = pool({ uri: proxy.url, acquireTimeoutMs: 2_000 });
    await expect(p.query('SELECT 2 AS two')).resolves.toEqual([[{ two: 2 }], expect.anything()]);
  } finally {
    await Promise.all(pools.splice(0).map((made) => made.end()));
    await proxy.close();
  }
});

test("the promise cluster's poolCluster and a namespace's poolNamespace are the callback faces (mysql2/promise's names); events emitted there reach the promise listeners", async () => {
  const cluster = createPoolCluster();
  try {
    expect(cluster.poolCluster.promise()).toBe(cluster);
    expect(cluster.poolCluster).toBe(cluster.poolCluster);
    const namespace = cluster.of('*');
    expect(namespace.poolNamespace.promise()).toBe(namespace);
    const seen: unknown[] = [];
    cluster.once('warn', function (this: unknown, error: Error) {
      seen.push(this === cluster, error.message);
    });
    (cluster.poolCluster.emit as (event: string, ...args: unknown[]) => boolean)('warn', new Error('w'));
    expect(seen).toEqual([true, 'w']);
  } finally {
    await cluster.end();
  }
});
