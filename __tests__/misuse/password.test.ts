/**
 * No password in any error, event or log line. A real user with a random
 * password (created through a side connection) runs a scenario that makes the
 * pool produce every kind of error and event it can: SQL errors, abandons and
 * their rollbacks (with captured stacks), a leak, an acquire timeout, a
 * transaction timeout that sends KILL QUERY over a fresh connection (with the
 * password), a connection killed under a lease, use after release/commit, end()
 * with a waiter, use after end(). A second pool uses the wrong password.
 *
 * Collected and searched for the password (and its URL-encoded form): every
 * error's message, stack, util.inspect and JSON (cause chains included); every
 * payload of every event in src/pool/events.ts; everything written to
 * console.*, process.stdout and process.stderr while the scenario ran.
 *
 * mysql2's own events (`connection`, `acquire`, `release`) carry mysql2's own
 * connection object, whose `config.password` is mysql2's (its own pool emits the
 * very same object, and the drop-in contract needs that identity): those
 * payloads are checked to be that object and otherwise left out of the search.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { Connection as RawConnection } from 'mysql2';
import { createPool, type Pool, type PoolEventMap, type PoolOptions, type Transaction } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { misuseTable, rejection, settle, waitUntil } from './helpers';

const db = misuseTable('misuse_password');
const server = new URL(mysqlUrl());
const DB_HOST = server.hostname || '127.0.0.1';
const DB_PORT = Number(server.port || 3306);
const DB_NAME = server.pathname.slice(1) || 'test';

const user = `rp_pw_${randomBytes(4).toString('hex')}`;
// Characters a URL must encode, so that both the raw and the encoded form are searched for.
const PASSWORD = `Pw!${randomBytes(9).toString('hex')}#Zq`;
const WRONG = `Wr!${randomBytes(9).toString('hex')}#Zq`;
const FORMS = (secret: string): string[] => [secret, encodeURIComponent(secret), secret.slice(3, -3)];

/** Every event of src/pool/events.ts: `satisfies` fails to compile if one is added there and not here. */
const EVENT_NAMES = Object.keys({
  connection: true,
  acquire: true,
  release: true,
  enqueue: true,
  abandon: true,
  rollback: true,
  rollbackError: true,
  destroy: true,
  leak: true,
  reset: true,
} satisfies Record<keyof PoolEventMap, true>) as Array<keyof PoolEventMap>;
const MYSQL2_CONNECTION_EVENTS = new Set<string>(['connection', 'acquire', 'release']);


/** Everything a user could print about a value: message, stack, inspect, JSON, along its cause chain. */
function everythingAbout(value: unknown): string {
  const parts: string[] = [];
  let current: unknown = value;
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    parts.push(inspect(current, { depth: 8, showHidden: true }));
    if (typeof current === 'object') {
      const error = current as Error & { rollbackError?: unknown };
      parts.push(String(error.message), String(error.stack));
      try {
        parts.push(JSON.stringify(current, Object.getOwnPropertyNames(current)));
      } catch {
        // circular: inspect above has it
      }
      if (error.rollbackError !== undefined) parts.push(everythingAbout(error.rollbackError));
      current = error.cause;
    } else {
      current = undefined;
    }
  }
  return parts.join('\n');
}

interface Evidence {
  errors: unknown[];
  events: Array<{ name: string; args: unknown[] }>;
  output: string[];
}

/** Listens to every event of `pool`, and to console/stdout/stderr, until `stop()`. */
function collect(pool: Pool, evidence: Evidence): () => void {
  for (const name of EVENT_NAMES) {
    (pool as unknown as NodeJS.EventEmitter).on(name, (...args: unknown[]) => evidence.events.push({ name, args }));
  }
  const spies = [
    ...(['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((method) =>
      jest.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        evidence.output.push(args.map((arg) => (typeof arg === 'string' ? arg : inspect(arg, { depth: 8 }))).join(' '));
      }),
    ),
    ...[process.stdout, process.stderr].map((stream) => {
      const original = stream.write.bind(stream);
      return jest.spyOn(stream, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
        evidence.output.push(String(chunk));
        return (original as (...args: unknown[]) => boolean)(chunk, ...rest);
      }) as never);
    }),
  ];
  return () => {
    for (const spy of spies) spy.mockRestore();
  };
}

/** The error `promise` rejects with, recorded as evidence. */
async function caught(evidence: Evidence, promise: Promise<unknown>): Promise<any> {
  const error = await rejection(promise);
  evidence.errors.push(error);
  return error;
}

function expectNoSecret(evidence: Evidence, secrets: string[]): void {
  for (const secret of secrets.flatMap(FORMS)) {
    evidence.errors.forEach((error, i) => {
      expect({ error: i, leaks: everythingAbout(error).includes(secret) }).toEqual({ error: i, leaks: false });
    });
    for (const { name, args } of evidence.events) {
      if (MYSQL2_CONNECTION_EVENTS.has(name)) continue; // mysql2's own connection object (see the header)
      expect({ event: name, leaks: everythingAbout(args).includes(secret) }).toEqual({ event: name, leaks: false });
    }
    evidence.output.forEach((line, i) => {
      expect({ output: i, leaks: line.includes(secret) }).toEqual({ output: i, leaks: false });
    });
  }
}

/** The right-password scenario: every kind of error and event the pool can produce. */
async function scenario(pool: Pool, evidence: Evidence): Promise<void> {
  const table = db.table();
  const ins = (id: number): string => `INSERT INTO ${table} (id) VALUES (${id})`;
  const base = 500_000 + Math.floor(Math.random() * 100_000) * 10;

  await pool.query('SELECT 1');
  await caught(evidence, pool.query('SELEC 1')); // a server error
  await pool.execute(ins(base));
  await caught(evidence, pool.execute(ins(base))); // a duplicate

  // Abandon (captured stack) and its rollback; the stale handle is fenced.
  const conn = await pool.getConnection();
  await conn.beginTransaction();
  await conn.query(ins(base + 1));
  conn.release();
  await caught(evidence, conn.query('SELECT 1'));
  await waitUntil('the rollback of the abandoned transaction', () => evidence.events.some((e) => e.name === 'rollback'));

  // A leak (leakDetectionMs), then exhaustion: an acquire timeout (enqueue).
  const a = await pool.getConnection();
  await waitUntil('a leak event', () => evidence.events.some((e) => e.name === 'leak'), 5_000);
  const b = await pool.getConnection();
  await caught(evidence, pool.getConnection());
  a.release();
  b.release();

  // A transaction timeout with a statement in flight: KILL QUERY over a fresh connection (password needed).
  await caught(evidence, pool.transaction((tx) => tx.query('SELECT SLEEP(5)'), { timeoutMs: 150, onTimeout: 'kill' }));
  await waitUntil('the timed-out transaction to be rolled back', () => pool.stats().pendingRollback === 0 && pool.stats().leased === 0, 5_000);

  // The callback throws: rolled back; a kept handle is closed.
  let kept: Transaction | undefined;
  await caught(
    evidence,
    pool.transaction(async (tx) => {
      kept = tx;
      await tx.query(ins(base + 2));
      throw new Error('callback failed');
    }),
  );
  await caught(evidence, kept!.query('SELECT 1'));

  // A connection killed under a lease: a fatal mysql2 error, a destroy event.
  const victim = await pool.getConnection();
  await db.side().query(`KILL ${victim.threadId}`);
  await caught(evidence, victim.query('SELECT 1'));
  victim.release();

  // end() with a waiter, then use after end().
  const h1 = await pool.getConnection();
  const h2 = await pool.getConnection();
  const waiter = caught(evidence, pool.getConnection());
  await waitUntil('a waiter', () => pool.stats().waiting === 1, 2_000);
  await pool.end();
  await waiter;
  await caught(evidence, h1.query('SELECT 1'));
  await caught(evidence, pool.query('SELECT 1'));
  await caught(evidence, pool.begin());
  h1.release();
  h2.release();
}

const POOL_OPTIONS: PoolOptions = { connectionLimit: 2, acquireTimeoutMs: 300, leakDetectionMs: 50, captureStacks: true };

describe('no password in any error, event or log line', () => {
  // Inside the describe: its afterAll runs before the file-level one that closes the side connection.
  beforeAll(async () => {
    await db.side().query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', PASSWORD]);
    await db.side().query(`GRANT ALL ON \`${DB_NAME}\`.* TO ?@?`, [user, '%']);
    // KILL QUERY needs only the right to kill the user's own threads: no extra grant.
  });
  afterAll(async () => {
    await db.side().query('DROP USER IF EXISTS ?@?', [user, '%']);
  });

  test.each([
    ['an options object', (): PoolOptions => ({ host: DB_HOST, port: DB_PORT, user, password: PASSWORD, database: DB_NAME })],
    ['a mysql:// URI', (): PoolOptions => ({ uri: `mysql://${user}:${encodeURIComponent(PASSWORD)}@${DB_HOST}:${DB_PORT}/${DB_NAME}` })],
  ])('the right password, given as %s, through every kind of error and event', async (_form, connection) => {
    const evidence: Evidence = { errors: [], events: [], output: [] };
    const pool = createPool({ ...connection(), ...POOL_OPTIONS });
    const stop = collect(pool, evidence);
    try {
      await scenario(pool, evidence);
    } finally {
      stop();
      await pool.end();
    }
    // The scenario really produced what it claims (so the search below had something to search).
    const seen = new Set(evidence.events.map((e) => e.name));
    for (const name of ['connection', 'acquire', 'release', 'enqueue', 'abandon', 'rollback', 'destroy', 'leak']) expect(seen).toContain(name);
    expect(evidence.events.find((e) => e.name === 'abandon')?.args[0]).toMatchObject({ stack: expect.stringContaining('password.test.ts') });
    expect(evidence.errors.map((e) => (e as { code?: string }).code)).toEqual(
      expect.arrayContaining(['ER_PARSE_ERROR', 'ER_DUP_ENTRY', 'ERR_LEASE_RELEASED', 'ERR_ACQUIRE_TIMEOUT', 'ERR_TX_TIMEOUT', 'ERR_TX_CLOSED', 'ERR_POOL_CLOSED']),
    );
    // mysql2's connection events carry mysql2's own connection object, as mysql2's pool does.
    for (const { name, args } of evidence.events) {
      if (MYSQL2_CONNECTION_EVENTS.has(name)) expect((args[0] as RawConnection).threadId).toEqual(expect.any(Number));
    }
    expectNoSecret(evidence, [PASSWORD]);
  });

  test('a wrong password: the access-denied errors name neither password', async () => {
    const evidence: Evidence = { errors: [], events: [], output: [] };
    const pool = createPool({ host: DB_HOST, port: DB_PORT, user, password: WRONG, database: DB_NAME, ...POOL_OPTIONS });
    const stop = collect(pool, evidence);
    try {
      await caught(evidence, pool.query('SELECT 1'));
      await caught(evidence, pool.getConnection());
      await caught(evidence, pool.begin());
      await caught(evidence, pool.transaction(async () => 'never'));
      const together = await Promise.all([settle(pool.query('SELECT 1')), settle(pool.getConnection()), settle(pool.execute('SELECT 1'))]);
      for (const outcome of together) if (!outcome.ok) evidence.errors.push(outcome.error);
      await pool.end();
      await caught(evidence, pool.query('SELECT 1'));
    } finally {
      stop();
      await pool.end();
    }
    expect(evidence.errors).toHaveLength(8);
    expect(evidence.errors.slice(0, 7).every((e) => (e as { code?: string }).code === 'ER_ACCESS_DENIED_ERROR')).toBe(true);
    expectNoSecret(evidence, [WRONG, PASSWORD]);
  });

  test('an invalid option next to a password: the error names the option, never the password', () => {
    const evidence: Evidence = { errors: [], events: [], output: [] };
    for (const options of [
      { host: DB_HOST, user, password: PASSWORD, connectionLimit: -1 },
      { host: DB_HOST, user, passwrod: PASSWORD },
      { uri: `mysql://${user}:${encodeURIComponent(PASSWORD)}@${DB_HOST}:99999/${DB_NAME}` },
      `mysql://${user}:${encodeURIComponent(PASSWORD)}@${DB_HOST}/${DB_NAME}?acquireTimeoutMs=0`,
      `${user}:${PASSWORD}@${DB_HOST}/${DB_NAME}`,
    ]) {
      try {
        createPool(options as PoolOptions);
        evidence.errors.push(new Error('createPool did not throw'));
      } catch (error) {
        evidence.errors.push(error);
      }
    }
    expect(evidence.errors.map((e) => (e as { code?: string }).code)).toEqual(Array(5).fill('ERR_INVALID_OPTION'));
    expectNoSecret(evidence, [PASSWORD]);
  });

  // Explicit access is fine: `pool.options.connection.password` (and a lease's `config.password`) hand
  // back what the caller configured, as mysql2's `pool.pool.config.connectionConfig.password` does.
  // Accidental serialization is another matter: people log objects. mysql2's promise pool does not
  // show its password in `util.inspect(pool)` at the default depth (what console.log prints), and
  // JSON.stringify of its pool or connection throws (circular).
  //
  // BUG (password exposure): `console.log(pool)` / `util.inspect(pool)` print `options.connection.password`
  // (Pool.options is an enumerable own property, two levels deep), and JSON.stringify(pool), of a
  // lease or of a transaction handle succeeds and contains it (src/pool/pool.ts Pool has no
  // [util.inspect.custom] / toJSON; PoolConnection and Transaction reach it through their owner/lease).
  // (Structured loggers such as pino show it for mysql2's pool too: that part is parity.)
  test('console.log(pool), util.inspect(pool) and JSON.stringify of the pool, a lease or a transaction do not show the password', async () => {
    const pool = createPool({ host: DB_HOST, port: DB_PORT, user, password: PASSWORD, database: DB_NAME, connectionLimit: 1 });
    const evidence: Evidence = { errors: [], events: [], output: [] };
    const stop = collect(pool, evidence);
    try {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      console.log(pool);
      console.log('%o', { conn, tx });
      const shown: string[] = [inspect(pool), inspect(conn), inspect(tx)];
      for (const value of [pool, conn, tx]) {
        try {
          shown.push(JSON.stringify(value));
        } catch {
          // a circular structure cannot be stringified: nothing shown
        }
      }
      await tx.rollback();
      conn.release();
      stop();
      for (const secret of FORMS(PASSWORD)) {
        shown.forEach((text, i) => expect({ shown: i, leaks: text.includes(secret) }).toEqual({ shown: i, leaks: false }));
      }
      expectNoSecret(evidence, [PASSWORD]);
    } finally {
      stop();
      await pool.end();
    }
  });
});
