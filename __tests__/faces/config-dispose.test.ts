/**
 * `pool.pool.config` (src/pool/pool-config.ts): mysql2's PoolConfig shape,
 * read-only, and never the password in what `util.inspect` / `console.log` /
 * `JSON.stringify` show; and `Symbol.dispose` / `Symbol.asyncDispose` on the
 * callback faces, as mysql2's (a pool connection is released, a pool ended).
 */
import { inspect } from 'node:util';
import * as mysql2 from 'mysql2';
import { createPool, type CallbackConnection, type Pool } from '../../src';
import { mysqlUrl } from '../support/db';

const PASSWORD = 'Sh0uld-N3ver-Be-Printed';

describe('pool.pool.config', () => {
  let pool: Pool;
  beforeEach(() => {
    // Never connects: config and inspection need no server.
    pool = createPool({ host: '127.0.0.1', port: 3306, user: 'someone', password: PASSWORD, database: 'test', connectionLimit: 4, queueLimit: 7, idleTimeout: 5_000 });
  });
  afterEach(async () => {
    await pool.end();
  });

  test("has mysql2's PoolConfig shape and values, with mysql2's parsed ConnectionConfig (password readable, as in mysql2)", () => {
    const theirs = mysql2.createPool({ host: '127.0.0.1', port: 3306, user: 'someone', password: PASSWORD, database: 'test', connectionLimit: 4, queueLimit: 7, idleTimeout: 5_000 });
    try {
      const ours = pool.pool.config;
      const { connectionConfig: theirConnection, ...theirPool } = theirs.config as unknown as { connectionConfig: Record<string, unknown> } & Record<string, unknown>;
      const { connectionConfig, ...rest } = ours;
      expect(rest).toEqual(theirPool);
      expect(rest).toEqual({ connectionLimit: 4, queueLimit: 7, idleTimeout: 5_000, maxIdle: 4, waitForConnections: true, resetOnRelease: false });
      // The same settings as mysql2's own ConnectionConfig (the secrets are not enumerable on ours, but readable).
      const readable = Object.fromEntries(Object.keys(theirConnection).filter((key) => key !== 'pool').map((key) => [key, (connectionConfig as Record<string, unknown>)[key]]));
      const { pool: _theirPool, ...theirSettings } = theirConnection;
      expect(readable).toEqual(theirSettings);
      expect(connectionConfig.password).toBe(PASSWORD);
      expect((connectionConfig as { pool?: unknown }).pool).toBe(pool.pool);
      expect(pool.pool.config).toBe(ours); // one object
    } finally {
      theirs.end();
    }
  });

  test('is read-only: assignments throw (strict mode) and change nothing', () => {
    const config = pool.pool.config;
    expect(() => {
      (config as { connectionLimit: number }).connectionLimit = 100;
    }).toThrow(TypeError);
    expect(() => {
      (config.connectionConfig as { host?: string }).host = 'elsewhere';
    }).toThrow(TypeError);
    expect(() => {
      (config.connectionConfig as { password?: string }).password = 'changed';
    }).toThrow(TypeError);
    expect(config.connectionLimit).toBe(4);
    expect(config.connectionConfig).toMatchObject({ host: '127.0.0.1', password: PASSWORD });
    expect(pool.options.connectionLimit).toBe(4);
  });

  test('connectionLimit 0 (no limit) reads 0, as in mysql2', async () => {
    const unlimited = createPool({ uri: mysqlUrl(), connectionLimit: 0 });
    try {
      expect(unlimited.pool.config).toMatchObject({ connectionLimit: 0, maxIdle: 0 });
    } finally {
      await unlimited.end();
    }
  });

  test('util.inspect (any depth, hidden properties too), console.log and JSON.stringify of pool.pool and of its config never show the password', () => {
    const shown = [
      inspect(pool.pool),
      inspect(pool.pool, { depth: null, showHidden: true }),
      inspect(pool.pool.config),
      inspect(pool.pool.config, { depth: null, showHidden: true }),
      inspect(pool.pool.config.connectionConfig, { depth: null, showHidden: true }),
      inspect({ nested: { deeper: pool.pool.config } }, { depth: null }),
      JSON.stringify(pool.pool),
      JSON.stringify(pool.pool.config),
      JSON.stringify({ config: pool.pool.config }),
      JSON.stringify(Object.entries(pool.pool.config.connectionConfig)),
      Object.keys(pool.pool.config.connectionConfig).join(','),
    ];
    for (const [i, text] of shown.entries()) expect({ i, leaks: text.includes(PASSWORD) }).toEqual({ i, leaks: false });
    expect(inspect(pool.pool.config)).toContain("host: '127.0.0.1'");
    expect(JSON.parse(JSON.stringify(pool.pool.config))).toMatchObject({ connectionLimit: 4, connectionConfig: { host: '127.0.0.1', user: 'someone', database: 'test' } });
  });
});

describe('Symbol.dispose and Symbol.asyncDispose on the callback faces', () => {
  function getConnection(pool: Pool): Promise<CallbackConnection> {
    return new Promise((resolve, reject) => pool.pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn))));
  }

  test('`using conn` / `await using conn` on lease.connection: released at the end of the block', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      {
        using conn = await getConnection(pool);
        expect(conn.threadId).toEqual(expect.any(Number));
        expect(pool.stats().leased).toBe(1);
      }
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
      {
        await using conn = await getConnection(pool);
        expect(conn.promise().isReleased).toBe(false);
      }
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
    } finally {
      await pool.end();
    }
  });

  test('`using pool` ends the pool (as mysql2\'s pool dispose); `await using pool` ends it and waits', async () => {
    const first = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    {
      using pool = first.pool;
      await new Promise((resolve, reject) => pool.query('SELECT 1', (err) => (err ? reject(err) : resolve(undefined))));
    }
    expect(first.closed).toBe(true);
    await first.end();

    const second = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    {
      await using pool = second.pool;
      await new Promise((resolve, reject) => pool.query('SELECT 1', (err) => (err ? reject(err) : resolve(undefined))));
    }
    expect(second.closed).toBe(true);
    expect(second.stats().total).toBe(0);
  });
});
