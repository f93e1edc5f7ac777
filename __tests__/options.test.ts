/**
 * Option validation at createPool: a bad option fails loudly, synchronously and
 * by name (mysql2 only warns on the console or silently coerces), and no message
 * or stack ever repeats a password. Good options keep mysql2's meaning.
 *
 * Only the last block talks to the server.
 */
import { createPool, InvalidOptionError, RollbackPoolError, type Pool, type PoolConnection, type PoolOptions } from '../src';
import { mysqlUrl } from './support/db';

const SECRET = 'Pa55-w0rd-NOT-TO-LEAK';

/** Every pool a test created, ended afterwards even when an assertion failed. */
const created: Pool[] = [];
function make(options: unknown): Pool {
  const pool = createPool(options as PoolOptions);
  created.push(pool);
  return pool;
}
afterEach(async () => {
  await Promise.all(created.splice(0).map((pool) => pool.end()));
});

/** Runs createPool and returns what it threw synchronously (fails the test if it did not throw). */
function thrownBy(options: unknown): InvalidOptionError {
  let thrown: unknown;
  let result: unknown;
  try {
    result = make(options);
  } catch (error) {
    thrown = error;
  }
  if (thrown === undefined) throw new Error(`createPool(${String(JSON.stringify(options))}) did not throw (got ${typeof result})`);
  return thrown as InvalidOptionError;
}

describe('createPool rejects bad options synchronously, by name', () => {
  // [label, options, the option the error must name]
  const cases: Array<[string, unknown, string]> = [
    ['connectionLimit -1', { connectionLimit: -1 }, 'connectionLimit'],
    ['connectionLimit 1.5', { connectionLimit: 1.5 }, 'connectionLimit'],
    ["connectionLimit '10' (a string)", { connectionLimit: '10' }, 'connectionLimit'],
    ['connectionLimit NaN', { connectionLimit: Number.NaN }, 'connectionLimit'],
    ['connectionLimit Infinity', { connectionLimit: Number.POSITIVE_INFINITY }, 'connectionLimit'],
    ['queueLimit -1', { queueLimit: -1 }, 'queueLimit'],
    ['queueLimit 2.5', { queueLimit: 2.5 }, 'queueLimit'],
    ["waitForConnections 'yes'", { waitForConnections: 'yes' }, 'waitForConnections'],
    ['waitForConnections 1', { waitForConnections: 1 }, 'waitForConnections'],
    ['maxIdle -1', { maxIdle: -1 }, 'maxIdle'],
    ['maxIdle 0.5', { maxIdle: 0.5 }, 'maxIdle'],
    ['idleTimeout 0', { idleTimeout: 0 }, 'idleTimeout'],
    ['idleTimeout -100', { idleTimeout: -100 }, 'idleTimeout'],
    ["resetOnRelease 'true'", { resetOnRelease: 'true' }, 'resetOnRelease'],
    ["cleanup 'later'", { cleanup: 'later' }, 'cleanup'],
    ["cleanup 'RELEASE'", { cleanup: 'RELEASE' }, 'cleanup'],
    ['rollbackTimeoutMs 0', { rollbackTimeoutMs: 0 }, 'rollbackTimeoutMs'],
    ["rollbackTimeoutMs '5000'", { rollbackTimeoutMs: '5000' }, 'rollbackTimeoutMs'],
    ['acquireTimeoutMs 0', { acquireTimeoutMs: 0 }, 'acquireTimeoutMs'],
    ['acquireTimeoutMs -5', { acquireTimeoutMs: -5 }, 'acquireTimeoutMs'],
    ['acquireTimeoutMs 10.5', { acquireTimeoutMs: 10.5 }, 'acquireTimeoutMs'],
    ['leakDetectionMs -1', { leakDetectionMs: -1 }, 'leakDetectionMs'],
    ["captureStacks 'on'", { captureStacks: 'on' }, 'captureStacks'],
    ["port 'abc'", { port: 'abc' }, 'port'],
    ['port 0', { port: 0 }, 'port'],
    ['port 70000', { port: 70000 }, 'port'],
    ['an unknown key (typo connectionLimt)', { connectionLimt: 5 }, 'connectionLimt'],
    ['an unknown key (typo passwrod)', { user: 'root', passwrod: SECRET }, 'passwrod'],
    ['a bad option inside a URI query string', `mysql://root:${SECRET}@127.0.0.1:3306/test?connectionLimit=-3`, 'connectionLimit'],
    ['a typo inside a URI query string', `mysql://root:${SECRET}@127.0.0.1:3306/test?acquireTimeoutMS=100`, 'acquireTimeoutMS'],
    ['null', null, 'options'],
    ['a number', 42, 'options'],
    ['undefined', undefined, 'options'],
  ];

  test.each(cases)('%s', (_label, options, option) => {
    const error = thrownBy(options);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect(error).toBeInstanceOf(RollbackPoolError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('ERR_INVALID_OPTION');
    expect(error.option).toBe(option);
    expect(error.message).toContain(option);
    expect(error.message).not.toContain(SECRET);
    expect(String(error.stack)).not.toContain(SECRET);
  });

  // A malformed URL must never be echoed: it may hold a password.
  const malformedUris: Array<[string, string]> = [
    ['a non-numeric port', `mysql://root:${SECRET}@127.0.0.1:abc/test`],
    ['an out-of-range port', `mysql://root:${SECRET}@127.0.0.1:99999/test`],
    ['an unclosed IPv6 bracket', `mysql://root:${SECRET}@[::1/test`],
    ['a broken percent escape', `mysql://root:${SECRET}%ZZ@127.0.0.1/test`],
    ['two ports', `mysql://root:${SECRET}@127.0.0.1:3306:3307/test`],
    ['a space in the host', `mysql://root:${SECRET}@exa mple.com/test`],
  ];

  test.each(malformedUris)('a malformed URI string with a password (%s)', (_label, uri) => {
    for (const options of [uri, { uri }]) {
      const error = thrownBy(options);
      expect(error.code).toBe('ERR_INVALID_OPTION');
      expect(error.option).toBe('uri');
      expect(error.message).toContain('uri');
      expect(error.message).not.toContain(SECRET);
      expect(String(error.stack)).not.toContain(SECRET);
      // Nothing hanging off the error repeats it either (no cause holding the URL, no `input`).
      expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain(SECRET);
      expect(error.cause === undefined || !String((error.cause as Error)?.message).includes(SECRET)).toBe(true);
    }
  });

  test('the error is thrown from createPool itself, not from a later query', () => {
    expect(() => createPool({ connectionLimit: -1 })).toThrow(InvalidOptionError);
    expect(() => createPool({ cleanup: 'later' } as never)).toThrow(/cleanup/);
  });
});

describe('good options', () => {
  test('defaults', () => {
    const pool = make({ host: '127.0.0.1', user: 'root' });
    expect(pool.options).toMatchObject({
      connectionLimit: 10,
      queueLimit: 0,
      waitForConnections: true,
      maxIdle: 10,
      idleTimeout: 60_000,
      resetOnRelease: false,
      cleanup: 'release',
      rollbackTimeoutMs: 5_000,
      acquireTimeoutMs: 10_000,
      leakDetectionMs: 0,
      captureStacks: false,
    });
    expect(pool.options.connection).toEqual({ host: '127.0.0.1', user: 'root' });
  });

  test('every option set explicitly is kept', () => {
    const pool = make({
      host: '127.0.0.1',
      user: 'root',
      connectionLimit: 4,
      queueLimit: 7,
      waitForConnections: false,
      maxIdle: 2,
      idleTimeout: 1234,
      resetOnRelease: true,
      cleanup: 'checkout',
      rollbackTimeoutMs: 250,
      acquireTimeoutMs: 999,
      leakDetectionMs: 5,
      captureStacks: true,
    });
    expect(pool.options).toMatchObject({
      connectionLimit: 4,
      queueLimit: 7,
      waitForConnections: false,
      maxIdle: 2,
      idleTimeout: 1234,
      resetOnRelease: true,
      cleanup: 'checkout',
      rollbackTimeoutMs: 250,
      acquireTimeoutMs: 999,
      leakDetectionMs: 5,
      captureStacks: true,
    });
  });

  test('maxIdle above connectionLimit is capped at connectionLimit (as mysql2 behaves)', () => {
    expect(make({ connectionLimit: 3, maxIdle: 8 }).options.maxIdle).toBe(3);
  });

  test('a URI string with query parameters', () => {
    const pool = make(`mysql://app:${SECRET}@db.example:3307/shop?connectionLimit=5&dateStrings=true&cleanup=%22checkout%22`);
    expect(pool.options.connectionLimit).toBe(5);
    expect(pool.options.cleanup).toBe('checkout');
    expect(pool.options.connection).toMatchObject({
      host: 'db.example',
      port: 3307,
      user: 'app',
      password: SECRET,
      database: 'shop',
      dateStrings: true,
    });
  });

  test('{ uri } with explicit options next to it (explicit options win)', () => {
    const pool = make({ uri: `mysql://app:${SECRET}@db.example/shop`, database: 'other', connectionLimit: 2 });
    expect(pool.options.connectionLimit).toBe(2);
    expect(pool.options.connection).toMatchObject({ host: 'db.example', user: 'app', password: SECRET, database: 'other' });
    // A URI without a port leaves the port to mysql2's default (not NaN).
    expect(pool.options.connection.port === undefined || pool.options.connection.port === 3306).toBe(true);
    expect(pool.options.connection).not.toHaveProperty('uri');
  });

  test("port as a numeric string is accepted (mysql2 accepts '3306')", () => {
    expect(() => make({ host: '127.0.0.1', port: '3306' })).not.toThrow();
  });

  test('options set to undefined count as unset', () => {
    const pool = make({ host: '127.0.0.1', connectionLimit: undefined, cleanup: undefined, password: undefined });
    expect(pool.options.connectionLimit).toBe(10);
    expect(pool.options.cleanup).toBe('release');
  });

  test('mysql2 connection options pass through', () => {
    const pool = make({ host: '127.0.0.1', dateStrings: true, namedPlaceholders: true, multipleStatements: true, charset: 'utf8mb4' });
    expect(pool.options.connection).toMatchObject({ dateStrings: true, namedPlaceholders: true, multipleStatements: true });
  });

  test('connectionLimit 0 means unlimited: more than the default 10 connections at once', async () => {
    const pool = make({ uri: mysqlUrl(), connectionLimit: 0 });
    expect(pool.options.connectionLimit).toBeGreaterThanOrEqual(1_000);
    const leases: PoolConnection[] = [];
    try {
      for (let i = 0; i < 12; i++) leases.push(await pool.getConnection());
      const ids = new Set(leases.map((lease) => lease.threadId));
      expect(ids.size).toBe(12);
      expect(pool.stats().total).toBe(12);
    } finally {
      for (const lease of leases) lease.release();
    }
  });
});
