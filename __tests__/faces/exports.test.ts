/**
 * The module faces (src/index.ts for `rollback-pool`, src/mysql2/index.ts for
 * `rollback-pool/mysql2`) against mysql2's own modules: every runtime export
 * of `mysql2/promise` and of `mysql2` exists on ours, except the documented
 * few below; what is mysql2's own is mysql2's object; what creates a pool
 * creates ours. (The published shape, `require`/`import` of the built package
 * by name, is in __tests__/package.test.ts.)
 */
import * as mysql2 from 'mysql2';
import * as mysql2Promise from 'mysql2/promise';
import * as promiseModule from '../../src';
import * as callbackModule from '../../src/mysql2';
import { CallbackConnection, CallbackPool, Pool, PoolConnection } from '../../src';
import { mysqlUrl } from '../support/db';

/**
 * Runtime exports of mysql2/promise that `rollback-pool` does not have. Keep in
 * step with the README ("Migrating from mysql2"). None today.
 */
const PROMISE_EXCEPTIONS: string[] = [];

/** Runtime exports of mysql2 that `rollback-pool/mysql2` does not have. Keep in step with the README. None today. */
const CALLBACK_EXCEPTIONS: string[] = [];

/** mysql2's own objects, passed through unchanged by both modules. */
const HELPERS = ['escape', 'escapeId', 'format', 'raw', 'Types', 'TypedParameter', 'Charsets', 'CharsetToEncoding'] as const;

/** The keys of a CommonJS module object (what `require` gives; `import *` adds `default` under ts-jest). */
function runtimeExports(module: object): string[] {
  return Object.keys(module).filter((name) => name !== 'default' && name !== '__esModule');
}

describe('rollback-pool (the promise module) covers mysql2/promise', () => {
  test('every runtime export of mysql2/promise exists on rollback-pool, except the documented ones', () => {
    const missing = runtimeExports(mysql2Promise).filter((name) => !(name in promiseModule));
    expect(missing.sort()).toEqual([...PROMISE_EXCEPTIONS].sort());
    for (const name of PROMISE_EXCEPTIONS) expect(mysql2Promise).toHaveProperty(name); // the list is not stale
  });

  test("mysql2's helpers are mysql2's own objects; the parser cache controls work", () => {
    for (const name of HELPERS) expect(promiseModule[name]).toBe(mysql2Promise[name]);
    expect(promiseModule.format('SELECT ?, ??', [promiseModule.raw('NOW()'), 'a.b'])).toBe('SELECT NOW(), `a`.`b`');
    expect(promiseModule.Types.LONGLONG).toBe(8);
    expect(() => promiseModule.setMaxParserCache(1000)).not.toThrow();
    expect(() => promiseModule.clearParserCache()).not.toThrow();
  });

  test("createPool gives rollback-pool's Pool, also under mysql2's class names PromisePool and PromisePoolConnection", async () => {
    expect(promiseModule.PromisePool).toBe(Pool);
    expect(promiseModule.PromisePoolConnection).toBe(PoolConnection);
    const pool = promiseModule.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      expect(pool).toBeInstanceOf(promiseModule.PromisePool);
      const conn = await pool.getConnection();
      expect(conn).toBeInstanceOf(promiseModule.PromisePoolConnection);
      conn.release();
    } finally {
      await pool.end();
    }
  });

  test("createConnection is mysql2/promise's own: a lone connection of mysql2's Connection class, no pool", async () => {
    expect(promiseModule.createConnection).toBe(mysql2Promise.createConnection);
    expect(promiseModule.Connection).toBe(mysql2Promise.Connection);
    expect(promiseModule.PromiseConnection).toBe((mysql2Promise as unknown as { PromiseConnection: unknown }).PromiseConnection);
    const conn = await promiseModule.createConnection(mysqlUrl());
    try {
      expect(conn).toBeInstanceOf(promiseModule.Connection);
      const [rows] = await conn.query('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      await conn.end();
    }
  });
});

describe('rollback-pool/mysql2 (the callback module) covers mysql2', () => {
  test('every runtime export of mysql2 exists on rollback-pool/mysql2, except the documented ones', () => {
    const missing = runtimeExports(mysql2).filter((name) => !(name in callbackModule));
    expect(missing.sort()).toEqual([...CALLBACK_EXCEPTIONS].sort());
    for (const name of CALLBACK_EXCEPTIONS) expect(mysql2).toHaveProperty(name);
  });

  test("Connection is mysql2's class (libraries test Connection.prototype.execute to tell mysql2 from mysql); helpers are mysql2's own", () => {
    expect(callbackModule.Connection).toBe(mysql2.Connection);
    expect(typeof callbackModule.Connection.prototype.execute).toBe('function');
    for (const name of HELPERS) expect(callbackModule[name]).toBe(mysql2[name]);
    for (const name of ['createConnection', 'connect', 'createQuery', 'createServer', 'authPlugins', 'ConnectionConfig'] as const) {
      expect(callbackModule[name]).toBe((mysql2 as unknown as Record<string, unknown>)[name]);
    }
    expect(callbackModule.createConnectionPromise).toBe(mysql2Promise.createConnection);
  });

  test("createPool gives the callback face of a rollback-pool pool (of the exported Pool class); createPoolPromise gives rollback-pool's promise Pool", async () => {
    expect(callbackModule.Pool).toBe(CallbackPool);
    expect(callbackModule.PoolConnection).toBe(CallbackConnection);
    const pool = callbackModule.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    const promisePool = callbackModule.createPoolPromise({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      expect(pool).toBeInstanceOf(callbackModule.Pool);
      expect(pool.promise()).toBeInstanceOf(Pool);
      expect(pool.promise().pool).toBe(pool);
      expect(promisePool).toBeInstanceOf(Pool);
      const conn = await new Promise<CallbackConnection>((resolve, reject) => pool.getConnection((err, c) => (err ? reject(err) : resolve(c))));
      expect(conn).toBeInstanceOf(callbackModule.PoolConnection);
      conn.release();
    } finally {
      await Promise.all([pool.promise().end(), promisePool.end()]);
    }
  });

  test("createConnection is mysql2's own: a lone callback connection, no pool", async () => {
    const conn = callbackModule.createConnection(mysqlUrl());
    try {
      expect(conn).toBeInstanceOf(callbackModule.Connection);
      const rows = await new Promise((resolve, reject) => conn.query('SELECT 2 AS two', (err, result) => (err ? reject(err) : resolve(result))));
      expect(rows).toEqual([{ two: 2 }]);
    } finally {
      await new Promise((resolve) => conn.end(resolve));
    }
  });
});

describe("mysql2's Promise option: only the native Promise", () => {
  class OtherPromise<T> extends Promise<T> {}

  test.each([
    ['rollback-pool createPool', (options: object) => promiseModule.createPool(options)],
    ['rollback-pool/mysql2 createPool', (options: object) => callbackModule.createPool(options)],
  ])('%s: another Promise class throws ERR_INVALID_OPTION naming it; Promise: Promise is accepted', async (_name, create) => {
    expect(() => create({ uri: mysqlUrl(), Promise: OtherPromise })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'Promise', message: expect.stringContaining('native Promise') }),
    );
    const made = create({ uri: mysqlUrl(), connectionLimit: 1, Promise });
    const pool = made instanceof CallbackPool ? made.promise() : (made as Pool);
    try {
      await expect(pool.query('SELECT 1')).resolves.toBeDefined();
    } finally {
      await pool.end();
    }
  });

  test('pool.pool.promise(impl) and lease.connection.promise(impl): the native Promise or nothing', async () => {
    const pool = promiseModule.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      expect(pool.pool.promise()).toBe(pool);
      expect(pool.pool.promise(Promise)).toBe(pool);
      expect(() => pool.pool.promise(OtherPromise)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'Promise' }));
      const lease = await pool.getConnection();
      expect(lease.connection.promise()).toBe(lease);
      expect(() => lease.connection.promise(OtherPromise)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
      lease.release();
    } finally {
      await pool.end();
    }
  });
});
