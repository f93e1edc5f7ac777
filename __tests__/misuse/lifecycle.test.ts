/**
 * Misuse of the pool's lifecycle, table-driven like bad-input.test.ts: `end()`
 * while leases are out and while acquirers wait, using the pool after `end()`,
 * an exhausted pool (acquireTimeoutMs, queueLimit, waitForConnections: false),
 * a wrong password and a server that is down at start. Each case asserts its
 * typed error (class and `code`, or mysql2's `code`/`errno`) and that nothing
 * was lost or left open: committed rows kept, aborted ones absent, no row lock,
 * the pool back to its idle count (0 after end(), with every connection gone
 * from the server), no socket left behind, and end() not held up.
 *
 * resource-pool.test.ts already checks the bare errors (and timing, attempts,
 * mysql2's messages); here each case adds the "nothing lost or left open" checks
 * and the entry points it does not try (begin, transaction).
 */
import { randomBytes } from 'node:crypto';
import { types } from 'node:util';
import type { RowDataPacket } from 'mysql2/promise';
import {
  AcquireTimeoutError,
  NoConnectionsError,
  PoolClosedError,
  QueueLimitError,
  RollbackPoolError,
  createPool,
  type Pool,
  type PoolOptions,
  type Transaction,
} from '../../src/index';
import { mysqlUrl } from '../support/db';
import {
  deferred,
  expectNothingLeftOpen,
  expectPoolError,
  freshBase,
  misuseTable,
  rejection,
  settle,
  testPool,
  threadAlive,
  waitUntil,
  type Leftovers,
} from './helpers';

const net = require('node:net') as typeof import('node:net');

const db = misuseTable('misuse_lifecycle');
const server = new URL(mysqlUrl());
const DB_HOST = server.hostname || '127.0.0.1';
const DB_PORT = Number(server.port || 3306);
const DB_NAME = server.pathname.slice(1) || 'test';

/** A callback that must never run. */
function never() {
  return jest.fn(async (_tx: Transaction) => 'ran');
}

/** Every way to ask the pool for a connection, each returning the promise of its outcome. */
function everyEntryPoint(pool: Pool, fn = never()): Array<[string, () => Promise<unknown>]> {
  return [
    ['getConnection', () => pool.getConnection()],
    ['query', () => pool.query('SELECT 1')],
    ['execute', () => pool.execute('SELECT 1')],
    ['begin', () => pool.begin()],
    ['transaction', () => pool.transaction(fn)],
  ];
}

/** Open TCP sockets in this process (the side connection and any pool's). */
function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;
}

// ---- end(), exhaustion: on the real server -------------------------------------------------------

interface Ctx {
  pool: Pool;
  table: string;
  id(n: number): number;
  ins(n: number): string;
}

interface Case {
  name: string;
  options?: PoolOptions;
  /** Runs the misuse (offset 0 already committed); returns every error it produced, each of which must match. */
  run(ctx: Ctx): Promise<unknown[]>;
  error: { cls: abstract new (...args: never[]) => Error; code: string };
  left: Leftovers;
}

async function runCase(c: Case): Promise<void> {
  const table = db.table();
  const side = db.side();
  const base = freshBase();
  const pool = testPool({ connectionLimit: 1, ...c.options });
  const threadIds: number[] = [];
  pool.on('connection', (raw) => threadIds.push(raw.threadId));
  const ctx: Ctx = { pool, table, id: (n) => base + n, ins: (n) => `INSERT INTO ${table} (id) VALUES (${base + n})` };
  try {
    await pool.query(ctx.ins(0)); // committed before the misuse: must survive it
    const errors = await c.run(ctx);
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) expectPoolError(error, c.error.cls, c.error.code);
    await expectNothingLeftOpen(pool, side, table, base, c.left);
    const startedEnd = performance.now();
    await pool.end();
    expect(performance.now() - startedEnd).toBeLessThan(2_000);
    // Every connection the pool ever opened is gone from the server.
    await waitUntil('every pool connection to leave the server', async () => {
      for (const id of threadIds) if (await threadAlive(side, id)) return false;
      return true;
    });
  } finally {
    await pool.end();
  }
}

function register(title: string, cases: Case[]): void {
  describe(title, () => {
    test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => runCase(c));
  });
}

register('end() with leases out and acquirers waiting: ERR_POOL_CLOSED, nothing committed, nothing left open', [
  {
    name: 'a lease inside a raw transaction: after end(), its commit() rejects and its rows never appear',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(ins(1));
      await pool.end();
      const errors = [await rejection(conn.commit()), await rejection(conn.query(ins(2)))];
      conn.release(); // harmless now
      return errors;
    },
    error: { cls: PoolClosedError, code: 'ERR_POOL_CLOSED' },
    left: { committed: [0], idle: 0 },
  },
  {
    name: 'a pool.begin() handle active: after end(), tx.commit() rejects and the handle does not claim a commit',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      await pool.end();
      const error = await rejection(tx.commit());
      expect(tx.state).not.toBe('committed');
      expect(tx.state).not.toBe('active');
      return [error];
    },
    error: { cls: PoolClosedError, code: 'ERR_POOL_CLOSED' },
    left: { committed: [0], idle: 0 },
  },
  {
    name: 'a pool.transaction() callback running: its next statement and the caller both reject',
    run: async ({ pool, ins }) => {
      const inside = deferred();
      const proceed = deferred();
      let statementError: unknown;
      const caller = settle(
        pool.transaction(async (tx) => {
          await tx.query(ins(1));
          inside.resolve();
          await proceed.promise;
          statementError = await rejection(tx.query(ins(2)));
          throw statementError;
        }),
      );
      await inside.promise;
      await pool.end();
      proceed.resolve();
      const outcome = await caller;
      expect(outcome.ok).toBe(false);
      return [statementError, outcome.ok ? undefined : outcome.error];
    },
    error: { cls: PoolClosedError, code: 'ERR_POOL_CLOSED' },
    left: { committed: [0], idle: 0 },
  },
  {
    name: 'acquirers waiting on every entry point: each rejects at once, no callback runs; the holder commits nothing',
    run: async ({ pool, ins }) => {
      const holder = await pool.getConnection();
      await holder.beginTransaction();
      await holder.query(ins(1));
      const fn = never();
      const waiters = everyEntryPoint(pool, fn).map(([, call]) => settle(call()));
      await waitUntil('five waiters', () => pool.stats().waiting === 5, 2_000);
      const startedEnd = performance.now();
      await pool.end();
      const outcomes = await Promise.all(waiters);
      expect(performance.now() - startedEnd).toBeLessThan(1_500);
      expect(outcomes.map((o) => o.ok)).toEqual([false, false, false, false, false]);
      expect(fn).not.toHaveBeenCalled();
      return outcomes.map((o) => (o.ok ? undefined : o.error));
    },
    error: { cls: PoolClosedError, code: 'ERR_POOL_CLOSED' },
    left: { committed: [0], idle: 0 },
  },
  {
    name: 'after end(): every entry point rejects, no callback runs, no connection is opened',
    run: async ({ pool }) => {
      await pool.end();
      const fn = never();
      const errors: unknown[] = [];
      for (const [, call] of everyEntryPoint(pool, fn)) errors.push(await rejection(call()));
      expect(fn).not.toHaveBeenCalled();
      return errors;
    },
    error: { cls: PoolClosedError, code: 'ERR_POOL_CLOSED' },
    left: { committed: [0], idle: 0, counters: { abandoned: 0 } },
  },
]);

register('an exhausted pool: typed rejections, and the holder and the queue are unharmed', [
  {
    name: 'acquireTimeoutMs: every entry point rejects ERR_ACQUIRE_TIMEOUT; the holder then commits, the connection is reusable',
    options: { acquireTimeoutMs: 300 },
    run: async ({ pool, ins }) => {
      const holder = await pool.getConnection();
      await holder.beginTransaction();
      await holder.query(ins(1));
      const fn = never();
      const startedAt = performance.now();
      const outcomes = await Promise.all(everyEntryPoint(pool, fn).map(([, call]) => settle(call())));
      const elapsed = performance.now() - startedAt;
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(3_000);
      expect(fn).not.toHaveBeenCalled();
      expect(pool.stats()).toMatchObject({ waiting: 0, leased: 1, total: 1 });
      await holder.query(ins(2)); // the holder's transaction was not touched
      await holder.commit();
      holder.release();
      // The timed-out requests do not swallow the connection: the next acquirer gets it at once.
      const next = await settle(pool.getConnection());
      expect(next.ok).toBe(true);
      if (next.ok) next.value.release();
      return outcomes.map((o) => (o.ok ? undefined : o.error));
    },
    error: { cls: AcquireTimeoutError, code: 'ERR_ACQUIRE_TIMEOUT' },
    left: { committed: [0, 1, 2], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'queueLimit 1: overflowing acquirers reject ERR_QUEUE_LIMIT; the queued transaction still runs and commits',
    options: { queueLimit: 1 },
    run: async ({ pool, ins }) => {
      const holder = await pool.getConnection();
      await holder.beginTransaction();
      await holder.query(ins(1));
      const queued = pool.transaction(async (tx) => {
        await tx.query(ins(2));
        return 'queued ran';
      });
      await waitUntil('one waiter', () => pool.stats().waiting === 1, 2_000);
      const fn = never();
      const errors: unknown[] = [];
      for (const [, call] of everyEntryPoint(pool, fn)) errors.push(await rejection(call()));
      expect(fn).not.toHaveBeenCalled();
      expect(pool.stats()).toMatchObject({ waiting: 1, total: 1 });
      await holder.commit();
      holder.release();
      await expect(queued).resolves.toBe('queued ran');
      return errors;
    },
    error: { cls: QueueLimitError, code: 'ERR_QUEUE_LIMIT' },
    left: { committed: [0, 1, 2], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'waitForConnections: false: every entry point rejects ERR_NO_CONNECTIONS at once; the holder is unharmed',
    options: { waitForConnections: false },
    run: async ({ pool, ins }) => {
      const holder = await pool.getConnection();
      await holder.beginTransaction();
      await holder.query(ins(1));
      const fn = never();
      const errors: unknown[] = [];
      for (const [, call] of everyEntryPoint(pool, fn)) errors.push(await rejection(call()));
      expect(fn).not.toHaveBeenCalled();
      await holder.rollback();
      await holder.query(ins(3));
      holder.release();
      return errors;
    },
    error: { cls: NoConnectionsError, code: 'ERR_NO_CONNECTIONS' },
    left: { committed: [0, 3], idle: 1, counters: { abandoned: 0 } },
  },
]);

// ---- no server to talk to: wrong password, server down --------------------------------------------

describe('no usable server at start: mysql2 errors passed through, nothing left open', () => {
  const user = `rp_mu_${randomBytes(4).toString('hex')}`;
  const password = `Right-${randomBytes(8).toString('hex')}`;
  const wrong = `Wrong-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    await db.side().query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
    await db.side().query(`GRANT ALL ON \`${DB_NAME}\`.* TO ?@?`, [user, '%']);
  });
  afterAll(async () => {
    await db.side().query('DROP USER IF EXISTS ?@?', [user, '%']);
  });

  async function refusedPort(): Promise<number> {
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address() as import('node:net').AddressInfo;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    return port;
  }

  async function userThreads(): Promise<number> {
    const [rows] = await db.side().query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
    return Number(rows[0]!.n);
  }

  const cases: Array<[string, () => Promise<PoolOptions>, { code: string; errno?: number }]> = [
    [
      'a wrong password (a real user)',
      async () => ({ host: DB_HOST, port: DB_PORT, user, password: wrong, database: DB_NAME }),
      { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045 },
    ],
    ['a server that is down (connection refused)', async () => ({ host: '127.0.0.1', port: await refusedPort(), user, password }), { code: 'ECONNREFUSED' }],
  ];

  test('control: the right password works', async () => {
    const pool = createPool({ host: DB_HOST, port: DB_PORT, user, password, database: DB_NAME, connectionLimit: 1 });
    try {
      await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
    } finally {
      await pool.end();
    }
  });

  test.each(cases)('%s: every entry point rejects with the real cause; no callback, no socket, no server thread left', async (_name, options, expected) => {
    const socketsBefore = tcpSockets();
    const pool = createPool({ ...(await options()), connectionLimit: 2, acquireTimeoutMs: 10_000 });
    try {
      const fn = never();
      const errors: unknown[] = [];
      for (const [, call] of everyEntryPoint(pool, fn)) {
        const startedAt = performance.now();
        errors.push(await rejection(call()));
        expect(performance.now() - startedAt).toBeLessThan(3_000); // the real error, not a wait for acquireTimeoutMs
      }
      // Concurrently too, beyond connectionLimit: every waiter hears the real cause.
      const together = await Promise.all(everyEntryPoint(pool, fn).map(([, call]) => settle(call())));
      for (const outcome of together) errors.push(outcome.ok ? undefined : outcome.error);
      expect(fn).not.toHaveBeenCalled();
      for (const error of errors) {
        // Node's network errors come from outside jest's sandbox realm: `instanceof Error` cannot see them.
        expect(types.isNativeError(error)).toBe(true);
        expect(error).not.toBeInstanceOf(RollbackPoolError); // mysql2's / Node's own error, unwrapped
        expect(error).toMatchObject(expected.errno === undefined ? { code: expected.code } : { code: expected.code, errno: expected.errno });
      }
      expect(pool.stats()).toMatchObject({ total: 0, idle: 0, leased: 0, waiting: 0, pendingRollback: 0, abandoned: 0 });
      const startedEnd = performance.now();
      await pool.end();
      expect(performance.now() - startedEnd).toBeLessThan(2_000);
      await waitUntil('every socket to close', () => tcpSockets() <= socketsBefore);
      expect(await userThreads()).toBe(0);
    } finally {
      await pool.end();
    }
  });
});
