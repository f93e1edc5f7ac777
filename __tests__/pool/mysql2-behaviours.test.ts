/**
 * Behaviours mysql2's pool has that users (and libraries such as TypeORM)
 * rely on: a read-only error destroys the connection, checkouts are traced on
 * `mysql2:pool:connect`, `gracefulEnd`, and mysql's legacy options accepted
 * with a warning instead of refused. Each checked side by side with mysql2's
 * own pool where it has the behaviour.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import * as mysql from 'mysql2/promise';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, type Pool } from '../../src';
import { startProxy, type Proxy } from '../support/fault-proxy';
import { isRowLocked, mysqlUrl, sideConnection, threadAlive, uniqueTable } from '../support/db';

const table = uniqueTable('mysql2_behaviours');
let side: Connection;
const pools: Array<{ end(): Promise<void> }> = [];

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB`);
});
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});
afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
});

function ours(options: Record<string, unknown> = {}): Pool {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, ...options });
  pools.push(pool);
  return pool;
}

function theirs(options: Record<string, unknown> = {}): mysql.Pool {
  const pool = mysql.createPool({ uri: mysqlUrl(), connectionLimit: 1, ...options });
  pools.push(pool);
  return pool;
}

async function threadOf(pool: { query(sql: string): Promise<unknown> }): Promise<number> {
  const [rows] = (await pool.query('SELECT CONNECTION_ID() AS id')) as [RowDataPacket[]];
  return Number(rows[0]?.id);
}

/** The warnings the pool emits (process.emitWarning) while `fn` runs, as `{ message, code }`. */
async function warningsDuring(fn: () => Promise<void> | void): Promise<Array<{ message: string; code?: string }>> {
  const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  try {
    await fn();
    return spy.mock.calls.map(([warning, options]) => ({
      message: String(warning),
      code: typeof options === 'object' && options !== null ? (options as { code?: string }).code : undefined,
    }));
  } finally {
    spy.mockRestore();
  }
}

describe('a read-only error (1290 / 1792 / 1836) from pool.query or pool.execute destroys that connection, as mysql2', () => {
  test.each(['query', 'execute'] as const)('pool.%s: the next statement gets a fresh connection that takes writes', async (method) => {
    for (const pool of [theirs(), ours()] as Array<Pick<Pool, 'query' | 'execute'>>) {
      const before = await threadOf(pool);
      // A session that refuses writes (as a server in read-only mode would): 1792.
      await pool.query('SET SESSION TRANSACTION READ ONLY');
      const refused = await pool[method](`INSERT INTO ${table} (id, v) VALUES (1, 'x')`).then(() => undefined, (e: unknown) => e);
      expect(refused).toMatchObject({ errno: 1792 });
      const after = await threadOf(pool);
      expect(after).not.toBe(before);
      await pool[method](`INSERT INTO ${table} (id, v) VALUES (?, 'written')`, [after]);
      await side.query(`DELETE FROM ${table} WHERE id = ?`, [after]);
    }
  });

  test('other errors keep the connection', async () => {
    const pool = ours();
    const before = await threadOf(pool);
    await expect(pool.query('SELECT * FROM no_such_table_here')).rejects.toMatchObject({ errno: 1146 });
    expect(await threadOf(pool)).toBe(before);
  });
});

describe('mysql2:pool:connect TracingChannel', () => {
  type Seen = Array<[string, Record<string, unknown>]>;
  function subscribe(): { seen: Seen; stop(): void } {
    const seen: Seen = [];
    const channel = tracingChannel<object, Record<string, unknown>>('mysql2:pool:connect');
    const handlers = {
      start: (ctx: Record<string, unknown>) => seen.push(['start', { ...ctx }]),
      end: (ctx: Record<string, unknown>) => seen.push(['end', { ...ctx }]),
      asyncStart: (ctx: Record<string, unknown>) => seen.push(['asyncStart', { ...ctx }]),
      asyncEnd: (ctx: Record<string, unknown>) => seen.push(['asyncEnd', { ...ctx }]),
      error: (ctx: Record<string, unknown>) => seen.push(['error', { ...ctx }]),
    };
    channel.subscribe(handlers);
    return { seen, stop: () => channel.unsubscribe(handlers) };
  }
  const url = new URL(mysqlUrl());
  const expected = {
    database: url.pathname.slice(1) || 'test',
    serverAddress: url.hostname || 'localhost',
    serverPort: Number(url.port || 3306),
  };

  test('getConnection, pool.query and pool.execute each publish one traced checkout with mysql2\'s context', async () => {
    const pool = ours({ connectionLimit: 2 });
    const trace = subscribe();
    try {
      (await pool.getConnection()).release();
      await pool.query('SELECT 1');
      await pool.execute('SELECT 2');
      (await pool.pool.promise().getConnection()).release();
    } finally {
      trace.stop();
    }
    const starts = trace.seen.filter(([kind]) => kind === 'start');
    expect(starts).toHaveLength(4);
    for (const [, ctx] of starts) expect(ctx).toMatchObject(expected);
    expect(trace.seen.filter(([kind]) => kind === 'asyncEnd')).toHaveLength(4);
    expect(trace.seen.filter(([kind]) => kind === 'error')).toHaveLength(0);
  });

  test('a failed checkout publishes error with the cause, as mysql2 does', async () => {
    const closedPort = `mysql://root@127.0.0.1:1/test`;
    for (const pool of [theirs({ uri: closedPort }), ours({ uri: closedPort })] as Array<Pool | mysql.Pool>) {
      const trace = subscribe();
      try {
        await expect(pool.getConnection()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      } finally {
        trace.stop();
      }
      const errors = trace.seen.filter(([kind]) => kind === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]?.[1]).toMatchObject({ serverPort: 1, error: expect.objectContaining({ code: 'ECONNREFUSED' }) });
    }
  });

  test('no subscriber: nothing is traced and the fast path stays', async () => {
    const channel = tracingChannel('mysql2:pool:connect');
    expect(channel.hasSubscribers).toBe(false);
  });
});

describe('gracefulEnd', () => {
  test('without it, conn.end() on a lease is a deprecated alias of release() (warned once per pool), as mysql2', async () => {
    const pool = ours();
    const first = await pool.getConnection();
    const id = first.threadId;
    const warnings = await warningsDuring(async () => {
      await first.end();
      const second = await pool.getConnection();
      expect(second.threadId).toBe(id); // the same connection, back in the pool
      await second.end();
    });
    expect(warnings.filter((w) => w.code === 'ROLLBACK_POOL_END_IS_RELEASE')).toHaveLength(1);
    await expect(first.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
  });

  test('with it, conn.end() closes that connection (open transaction rolled back first); the pool opens another', async () => {
    const pool = ours({ gracefulEnd: true });
    const lease = await pool.getConnection();
    const id = lease.threadId;
    await lease.beginTransaction();
    await lease.query(`INSERT INTO ${table} (id, v) VALUES (500, 'ended')`);
    await lease.end();
    expect(await isRowLocked(side, table, 500)).toBe(false);
    const [rows] = await side.query<RowDataPacket[]>(`SELECT * FROM ${table} WHERE id = 500`);
    expect(rows).toEqual([]);
    const deadline = Date.now() + 3_000;
    while (await threadAlive(side, id)) if (Date.now() > deadline) throw new Error('connection still open');
    const next = await pool.getConnection();
    expect(next.threadId).not.toBe(id);
    next.release();
    expect(pool.stats().total).toBe(1);
  });

  test('with it, the callback face\'s connection.end(cb) closes the connection too', async () => {
    const pool = ours({ gracefulEnd: true });
    const lease = await pool.getConnection();
    const id = lease.threadId;
    await new Promise<void>((resolve, reject) => lease.connection.end((err) => (err ? reject(err) : resolve())));
    const deadline = Date.now() + 3_000;
    while (await threadAlive(side, id)) if (Date.now() > deadline) throw new Error('connection still open');
    const next = await pool.getConnection();
    expect(next.threadId).not.toBe(id);
    next.release();
  });

  describe('idle eviction (maxIdle 0): COM_QUIT only with gracefulEnd, as mysql2', () => {
    let proxy: Proxy;
    beforeEach(async () => {
      proxy = await startProxy(mysqlUrl());
    });
    afterEach(async () => {
      await proxy.close();
    });

    test.each([
      [false, 0],
      [true, 1],
    ])('gracefulEnd %s: %i COM_QUIT', async (gracefulEnd, quits) => {
      const pool = ours({ uri: proxy.url, gracefulEnd, maxIdle: 0, idleTimeout: 100 });
      await pool.query('SELECT 1');
      const deadline = Date.now() + 5_000;
      while (pool.stats().total > 0) {
        if (Date.now() > deadline) throw new Error('idle connection not evicted');
        await new Promise((resolve) => setTimeout(resolve, 20)); // the trim runs on its own timer
      }
      while (proxy.live().length > 0) {
        if (Date.now() > deadline) throw new Error('evicted connection not closed');
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(proxy.quits).toBe(quits);
    });
  });
});

describe("mysql's legacy options: accepted with one warning per pool, as mysql2 accepts them", () => {
  test('acquireTimeout is used as acquireTimeoutMs, with a warning naming it', async () => {
    let pool: Pool | undefined;
    const warnings = await warningsDuring(() => {
      pool = ours({ acquireTimeout: 200 });
    });
    const legacy = warnings.filter((w) => w.code === 'ROLLBACK_POOL_LEGACY_OPTION');
    expect(legacy).toHaveLength(1);
    expect(legacy[0]?.message).toContain('acquireTimeout');
    expect(pool?.options.acquireTimeoutMs).toBe(200);
    const held = await (pool as Pool).getConnection();
    const started = Date.now();
    await expect((pool as Pool).getConnection()).rejects.toMatchObject({ code: 'ERR_ACQUIRE_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(2_000);
    held.release();
  });

  test('acquireTimeoutMs wins over acquireTimeout; the warning says so', async () => {
    let pool: Pool | undefined;
    const warnings = await warningsDuring(() => {
      pool = ours({ acquireTimeout: 200, acquireTimeoutMs: 1_000 });
    });
    expect(pool?.options.acquireTimeoutMs).toBe(1_000);
    expect(warnings.map((w) => w.message).join('\n')).toContain('acquireTimeoutMs is set and wins');
  });

  test('a key neither mysql2 nor we know stays ERR_INVALID_OPTION, naming it', () => {
    expect(() => createPool({ uri: mysqlUrl(), acquireTimeot: 200 } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('acquireTimeot') }),
    );
    expect(() => createPool({ uri: mysqlUrl(), acquireTimeout: 'soon' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
