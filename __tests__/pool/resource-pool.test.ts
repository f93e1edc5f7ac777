/**
 * The generic-pool traps that resource-pool.ts defuses, each checked through the
 * public Pool API against the real server (or a local TCP server that plays a
 * broken one):
 *
 * - a failing create rejects the waiters with the real error, fast, without
 *   spinning (one connect attempt per acquirer) and without leaking a password;
 * - a dead server (refused) and a black-holed one (accepts, never answers);
 * - a connection that dies while idle never costs a slot;
 * - end() is bounded with leases out and rejects every waiter;
 * - acquireTimeoutMs / waitForConnections / queueLimit, with mysql2's messages;
 * - idle trimming (maxIdle, idleTimeout);
 * - our queue of waiting acquirers: FIFO, straight hand-over at release, one
 *   deadline per waiter (one timer for all), end() rejecting them, a timeout
 *   racing a hand-over.
 */
import { randomBytes } from 'node:crypto';
import { inspect, types } from 'node:util';
import * as mysql from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { createPool, type Pool, type PoolConnection, type PoolOptions } from '../../src';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';

// The real `net` module object (not an ES-module copy), so a spy on it sees mysql2's calls.
const net = require('node:net') as typeof import('node:net');

const server = new URL(mysqlUrl());
const DB_HOST = server.hostname || '127.0.0.1';
const DB_PORT = Number(server.port || 3306);
const DB_NAME = server.pathname.slice(1) || 'test';

// ---- helpers -------------------------------------------------------------------------

const pools: Pool[] = [];
/** A pool ended after the test even if an assertion failed. */
function track(pool: Pool): Pool {
  pools.push(pool);
  return pool;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});

interface Settled<T> {
  ok: boolean;
  value?: T;
  error?: unknown;
  /** ms from the call to settling */
  ms: number;
}
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  const start = performance.now();
  return promise.then(
    (value) => ({ ok: true, value, ms: performance.now() - start }),
    (error: unknown) => ({ ok: false, error, ms: performance.now() - start }),
  );
}

/** Resolves with `promise`'s outcome, or with 'pending' if it has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<Settled<T> | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  return Promise.race([settle(promise), late]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** An Error from any realm (Node's own network errors are not instances of the test sandbox's Error). */
function isError(value: unknown): boolean {
  return value instanceof Error || types.isNativeError(value);
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown })?.code;
}

/** A TCP server on 127.0.0.1 that counts the connections it accepts. */
interface LocalServer {
  readonly port: number;
  readonly accepted: number;
  close(): Promise<void>;
}
async function localServer(onSocket: (socket: import('node:net').Socket) => void): Promise<LocalServer> {
  const sockets = new Set<import('node:net').Socket>();
  let accepted = 0;
  const srv = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as import('node:net').AddressInfo;
  return {
    port,
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        srv.close(() => resolve());
      }),
  };
}

/** Forwards to the real server, counting connection attempts. */
function countingProxy(): Promise<LocalServer> {
  return localServer((client) => {
    const upstream = net.connect(DB_PORT, DB_HOST);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
}

/** Accepts connections and never sends a byte. */
function blackHole(): Promise<LocalServer> {
  return localServer(() => undefined);
}

/** A port on 127.0.0.1 where nothing listens (bound, read, closed). */
async function refusedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as import('node:net').AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Records every event a pool emits, with its arguments. */
function recordEvents(pool: Pool): Array<{ name: string; args: unknown[] }> {
  const events: Array<{ name: string; args: unknown[] }> = [];
  const emit = pool.emit.bind(pool) as (name: string, ...args: unknown[]) => boolean;
  (pool as unknown as { emit: (name: string, ...args: unknown[]) => boolean }).emit = (name, ...args) => {
    events.push({ name, args });
    return emit(name, ...args);
  };
  return events;
}

/** Everything a user could print about an error: message, stack, own properties, causes. */
function everythingAbout(value: unknown): string {
  const parts: string[] = [];
  let current: unknown = value;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const error = current as Error;
    parts.push(String(error.message), String(error.stack), inspect(error, { depth: 4, showHidden: true }));
    try {
      parts.push(JSON.stringify(error, Object.getOwnPropertyNames(error)));
    } catch {
      // circular: inspect above has it
    }
    current = error.cause;
  }
  return parts.join('\n');
}

let side: Connection;
beforeAll(async () => {
  side = await sideConnection();
});
afterAll(async () => {
  await side?.end();
});

/** How many statements containing `marker` the server is running (other test files run in parallel). */
async function runningWith(marker: string): Promise<number> {
  const [rows] = await side.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE CONCAT('%', ?, '%') AND INFO NOT LIKE '%PROCESSLIST%'",
    [marker],
  );
  return Number(rows[0]?.n);
}

async function threadAlive(threadId: number): Promise<boolean> {
  const [rows] = await side.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [threadId]);
  return Number((rows as Array<{ n: number }>)[0].n) > 0;
}

// ---- a failing create ------------------------------------------------------------------

describe('a failing create (wrong password)', () => {
  const user = `rp_u_${randomBytes(4).toString('hex')}`;
  const password = `S3cret-${randomBytes(6).toString('hex')}`;
  const wrongPassword = `Wr0ng-${randomBytes(6).toString('hex')}`;
  let proxy: LocalServer;

  beforeAll(async () => {
    await side.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
    await side.query(`GRANT ALL ON \`${DB_NAME}\`.* TO ?@?`, [user, '%']);
    proxy = await countingProxy();
  });
  afterAll(async () => {
    await proxy?.close();
    await side.query('DROP USER IF EXISTS ?@?', [user, '%']);
  });

  function poolWith(secret: string, options: PoolOptions = {}): Pool {
    return track(
      createPool({
        host: '127.0.0.1',
        port: proxy.port,
        user,
        password: secret,
        database: DB_NAME,
        connectionLimit: 2,
        acquireTimeoutMs: 10_000,
        ...options,
      }),
    );
  }

  test('control: the right password works through the proxy', async () => {
    const pool = poolWith(password);
    const [rows] = await pool.query('SELECT CURRENT_USER() AS who');
    expect((rows as Array<{ who: string }>)[0].who).toBe(`${user}@%`);
  });

  test("one query rejects with mysql2's real error, fast, after one attempt", async () => {
    const pool = poolWith(wrongPassword);
    const events = recordEvents(pool);
    const before = proxy.accepted;
    const result = await settle(pool.query('SELECT 1'));
    expect(result.ok).toBe(false);
    expect(result.error).toBeInstanceOf(Error);
    expect(result.error).toMatchObject({ code: 'ER_ACCESS_DENIED_ERROR', errno: 1045, sqlState: '28000' });
    expect(result.ms).toBeLessThan(2_000);
    expect(proxy.accepted - before).toBe(1);

    const getConnection = await settle(pool.getConnection());
    expect(codeOf(getConnection.error)).toBe('ER_ACCESS_DENIED_ERROR');
    expect(getConnection.ms).toBeLessThan(2_000);

    for (const secret of [wrongPassword, password]) {
      expect(everythingAbout(result.error)).not.toContain(secret);
      expect(everythingAbout(getConnection.error)).not.toContain(secret);
      expect(inspect(events, { depth: 6 })).not.toContain(secret);
    }
    expect(pool.stats()).toMatchObject({ total: 0, leased: 0, waiting: 0 });
  });

  test('concurrent waiters (more than connectionLimit) each reject with the real error; about one attempt each', async () => {
    const pool = poolWith(wrongPassword);
    const events = recordEvents(pool);
    const before = proxy.accepted;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => settle<unknown>(i % 2 === 0 ? pool.query('SELECT 1') : pool.getConnection())),
    );
    for (const result of results) {
      expect(result.ok).toBe(false);
      expect(codeOf(result.error)).toBe('ER_ACCESS_DENIED_ERROR');
      expect(result.ms).toBeLessThan(2_000);
      expect(everythingAbout(result.error)).not.toContain(wrongPassword);
    }
    const attempts = proxy.accepted - before;
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeLessThanOrEqual(8);
    // Nobody is waiting any more: no background retries either.
    await sleep(1_200);
    expect(proxy.accepted - before).toBe(attempts);
    expect(pool.stats()).toMatchObject({ total: 0, waiting: 0 });
    expect(inspect(events, { depth: 6 })).not.toContain(wrongPassword);
    // end() is quick: nothing to wait for.
    const ended = await within(pool.end(), 2_000);
    expect(ended).not.toBe('pending');
  });

  test('sequential acquirers: one attempt each, never a hot loop', async () => {
    const pool = poolWith(wrongPassword, { connectionLimit: 1 });
    const before = proxy.accepted;
    const start = performance.now();
    for (let i = 0; i < 10; i++) {
      await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: 'ER_ACCESS_DENIED_ERROR' });
    }
    expect(performance.now() - start).toBeLessThan(3_000);
    expect(proxy.accepted - before).toBeGreaterThanOrEqual(10);
    expect(proxy.accepted - before).toBeLessThanOrEqual(11);
  });

  test('after the password is fixed on the server, the same pool recovers (failures are not cached)', async () => {
    const other = `rp_u_${randomBytes(4).toString('hex')}`;
    const secret = `S3cret-${randomBytes(6).toString('hex')}`;
    try {
      const pool = track(
        createPool({ host: '127.0.0.1', port: proxy.port, user: other, password: secret, database: DB_NAME, connectionLimit: 1 }),
      );
      // A user that does not exist yet: MariaDB answers 1045 or 1698 ("using password: NO") depending on its auth-plugin negotiation.
      await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: expect.stringMatching(/^ER_ACCESS_DENIED/) });
      await side.query('CREATE USER ?@? IDENTIFIED BY ?', [other, '%', secret]);
      await side.query(`GRANT ALL ON \`${DB_NAME}\`.* TO ?@?`, [other, '%']);
      await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
    } finally {
      await side.query('DROP USER IF EXISTS ?@?', [other, '%']);
    }
  });
});

// ---- a dead server -----------------------------------------------------------------------

describe('server down (connection refused)', () => {
  test('rejects with ECONNREFUSED quickly, about one connect attempt per acquirer', async () => {
    const port = await refusedPort();
    const connectSpy = jest.spyOn(net, 'connect');
    const toPort = (call: unknown[]): boolean => call[0] === port;
    try {
      const pool = track(createPool({ host: '127.0.0.1', port, user: 'root', connectionLimit: 2, acquireTimeoutMs: 10_000 }));
      const results = await Promise.all(Array.from({ length: 6 }, () => settle(pool.query('SELECT 1'))));
      for (const result of results) {
        expect(result.ok).toBe(false);
        expect(isError(result.error)).toBe(true);
        expect(codeOf(result.error)).toBe('ECONNREFUSED');
        expect(result.ms).toBeLessThan(2_000);
      }
      const attempts = connectSpy.mock.calls.filter(toPort).length;
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(6);
      await sleep(1_200);
      expect(connectSpy.mock.calls.filter(toPort)).toHaveLength(attempts);
      expect(pool.stats()).toMatchObject({ total: 0, waiting: 0 });
    } finally {
      connectSpy.mockRestore();
    }
  });

  test('a server that accepts and hangs up at once: the error reaches the acquirer, one attempt each', async () => {
    const hangUp = await localServer((socket) => socket.destroy());
    try {
      const pool = track(createPool({ host: '127.0.0.1', port: hangUp.port, user: 'root', connectionLimit: 2, acquireTimeoutMs: 10_000 }));
      const results = await Promise.all(Array.from({ length: 5 }, () => settle(pool.getConnection())));
      for (const result of results) {
        expect(result.ok).toBe(false);
        expect(isError(result.error)).toBe(true);
        expect(codeOf(result.error)).toBe('PROTOCOL_CONNECTION_LOST');
        expect(result.ms).toBeLessThan(2_000);
      }
      expect(hangUp.accepted).toBeLessThanOrEqual(5);
      await sleep(1_200);
      expect(hangUp.accepted).toBeLessThanOrEqual(5);
    } finally {
      await hangUp.close();
    }
  });
});

// ---- a black-holed server -----------------------------------------------------------------

describe('a black-holed server (accepts, never answers)', () => {
  let hole: LocalServer;
  beforeEach(async () => {
    hole = await blackHole();
  });
  afterEach(async () => {
    // Hang up first: the stuck connects then fail at once and the pools end quickly.
    await hole.close();
    await Promise.all(pools.splice(0).map((pool) => within(pool.end(), 7_000)));
  });

  function holePool(options: PoolOptions = {}): Pool {
    return track(
      createPool({ host: '127.0.0.1', port: hole.port, user: 'root', connectTimeout: 60_000, acquireTimeoutMs: 500, connectionLimit: 2, ...options }),
    );
  }

  test('acquire rejects with ERR_ACQUIRE_TIMEOUT within acquireTimeoutMs; nothing hangs', async () => {
    const pool = holePool();
    const results = await Promise.all([settle(pool.query('SELECT 1')), settle(pool.getConnection()), settle(pool.query('SELECT 2'))]);
    for (const result of results) {
      expect(result.ok).toBe(false);
      expect(codeOf(result.error)).toBe('ERR_ACQUIRE_TIMEOUT');
      expect(result.ms).toBeGreaterThanOrEqual(450);
      expect(result.ms).toBeLessThan(1_500);
    }
    // Again: still a clean timeout, not a hang, and no pile of new connection attempts.
    const again = await within(pool.query('SELECT 3'), 2_000);
    expect(again).not.toBe('pending');
    expect(codeOf((again as Settled<unknown>).error)).toBe('ERR_ACQUIRE_TIMEOUT');
    expect(hole.accepted).toBeLessThanOrEqual(2);
    expect(pool.stats().waiting).toBe(0);
  });

  test('end() resolves within a bound while a connect is stuck', async () => {
    const pool = holePool();
    await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_ACQUIRE_TIMEOUT' });
    const ended = await within(pool.end(), 6_000);
    expect(ended).not.toBe('pending');
    expect((ended as Settled<void>).ms).toBeLessThan(6_000);
  });

  // A waiter queued behind a stuck connect is told the pool closed at once, not at its
  // own acquireTimeoutMs.
  test('a waiter queued behind a stuck connect rejects ERR_POOL_CLOSED as soon as end() is called', async () => {
    const pool = holePool({ acquireTimeoutMs: 5_000 });
    const waiting = settle(pool.query('SELECT 1'));
    await sleep(100);
    const ending = pool.end();
    const result = await within(waiting, 1_000);
    expect(result).not.toBe('pending');
    expect(codeOf((result as Settled<Settled<unknown>>).value?.error)).toBe('ERR_POOL_CLOSED'); // `waiting` is itself a settle()
    await ending;
  });
});

// ---- validate never loses a slot ------------------------------------------------------------

describe('connections killed by the server never cost a slot', () => {
  test('20 kill/use cycles with connectionLimit 2: both slots stay usable, total never exceeds 2', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 2, acquireTimeoutMs: 3_000 }));
    let maxTotal = 0;
    const sample = (): void => {
      maxTotal = Math.max(maxTotal, pool.stats().total);
    };
    for (const name of ['connection', 'acquire', 'release', 'destroy'] as const) pool.on(name, sample);
    const sampler = setInterval(sample, 2);
    const seen = new Set<number>();
    try {
      for (let cycle = 0; cycle < 20; cycle++) {
        // Both slots at once: a lost slot would make the second getConnection time out.
        const a = await pool.getConnection();
        const b = await pool.getConnection();
        const ids = [a.threadId, b.threadId];
        for (const id of ids) {
          expect(seen.has(id)).toBe(false); // a fresh connection every cycle: the killed ones were dropped
          seen.add(id);
        }
        const destroyedBefore = pool.stats().destroyed;
        if (cycle % 2 === 0) {
          // Killed while idle: the pool must notice and drop them on its own.
          a.release();
          b.release();
          for (const id of ids) await side.query(`KILL ${id}`);
          await waitFor('the pool to notice both deaths', () => pool.stats().destroyed >= destroyedBefore + 2);
        } else {
          // Killed while leased: the user sees the error; the release must free the slot.
          for (const id of ids) await side.query(`KILL ${id}`);
          for (const outcome of [await settle(a.query('SELECT 1')), await settle(b.execute('SELECT 1'))]) {
            expect(outcome.ok).toBe(false);
            expect(isError(outcome.error)).toBe(true);
          }
          a.release();
          b.release();
        }
        await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
        sample();
        expect(pool.stats().total).toBeLessThanOrEqual(2);
      }
      const [x, y] = [await pool.getConnection(), await pool.getConnection()];
      expect(x.threadId).not.toBe(y.threadId);
      x.release();
      y.release();
      expect(maxTotal).toBeLessThanOrEqual(2);
      expect(pool.stats()).toMatchObject({ waiting: 0, leased: 0 });
      expect(pool.stats().destroyed).toBeGreaterThanOrEqual(40);
    } finally {
      clearInterval(sampler);
    }
  });
});

// ---- end() with leases out --------------------------------------------------------------------

describe('end() with leases still out', () => {
  const table = uniqueTable('rp_end');
  beforeAll(async () => {
    await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await side.query(`DROP TABLE IF EXISTS ${table}`);
  });

  test('is bounded, rejects waiters and later calls, and commits nothing', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 3, acquireTimeoutMs: 10_000, endTimeoutMs: 500 }));
    const inTx = await pool.getConnection();
    await inTx.beginTransaction();
    await inTx.query(`INSERT INTO ${table} (id, v) VALUES (1, 'abandoned'), (2, 'abandoned')`);
    const sleeper = await pool.getConnection();
    const sleeperId = sleeper.threadId;
    const sleeping = settle(sleeper.query('SELECT SLEEP(30)'));
    const plain = await pool.getConnection();
    const waiters = [settle(pool.getConnection()), settle(pool.query('SELECT 1')), settle(pool.execute('SELECT 2'))];
    await waitFor('three waiters', () => pool.stats().waiting === 3, 2_000);
    try {
      const ended = await within(pool.end(), 3_000);
      expect(ended).not.toBe('pending');
      expect((ended as Settled<void>).ms).toBeLessThan(3_000);

      for (const waiter of await Promise.all(waiters)) {
        expect(waiter.ok).toBe(false);
        expect(codeOf(waiter.error)).toBe('ERR_POOL_CLOSED');
      }
      // Past endTimeoutMs the statement was killed on the server: its caller hears it may have run.
      const slept = await sleeping;
      expect(slept.ok).toBe(false);
      expect(slept.error).toMatchObject({ code: 'ERR_CONNECTION_LOST', neverSent: false });

      await expect(pool.getConnection()).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
      await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
      await expect(pool.execute('SELECT 1')).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });

      // The leases that were out are fenced: nothing reaches the server, commit included.
      for (const lease of [inTx, sleeper, plain]) {
        const error = await lease.query('SELECT 1').then(() => undefined, (e: unknown) => e);
        expect(['ERR_POOL_CLOSED', 'ERR_LEASE_RELEASED']).toContain(codeOf(error));
      }
      const commit = await inTx.commit().then(() => undefined, (e: unknown) => e);
      expect(['ERR_POOL_CLOSED', 'ERR_LEASE_RELEASED']).toContain(codeOf(commit));
      for (const lease of [inTx, sleeper, plain]) {
        expect(() => lease.release()).not.toThrow();
        expect(() => lease.release()).not.toThrow(); // twice: a no-op
        // Released now as well: still fenced, by a typed error, synchronously decided.
        const error = await lease.execute('SELECT 1').then(() => undefined, (e: unknown) => e);
        expect(['ERR_POOL_CLOSED', 'ERR_LEASE_RELEASED']).toContain(codeOf(error));
        await expect(lease.rollback()).rejects.toHaveProperty('code');
      }
      await expect(pool.end()).resolves.toBeUndefined(); // a second end() is harmless

      // The abandoned transaction was rolled back (its connection closed): its rows never
      // appear, and its row locks are gone (the side connection can take the same keys).
      await side.query('SET SESSION innodb_lock_wait_timeout = 3');
      await side.query(`INSERT INTO ${table} (id, v) VALUES (1, 'side'), (2, 'side')`);
      const [rows] = await side.query(`SELECT id, v FROM ${table} ORDER BY id`);
      expect(rows).toEqual([
        { id: 1, v: 'side' },
        { id: 2, v: 'side' },
      ]);
    } finally {
      if (await threadAlive(sleeperId)) await side.query(`KILL ${sleeperId}`).catch(() => undefined);
    }
  });

  // Graceful, as mysql2's end(): what was already sent gets its reply.
  test('a statement in flight when end() is called finishes, and end() resolves after it', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 2 }));
    const lease = await pool.getConnection();
    const marker = `graceful_${randomBytes(4).toString('hex')}`;
    const leased = settle(lease.query(`SELECT SLEEP(0.3) AS slept /* ${marker} */`));
    const pooled = settle(pool.query(`SELECT SLEEP(0.3) AS slept /* ${marker} */`));
    await waitFor('both statements on the server', async () => (await runningWith(marker)) === 2, 2_000);
    const ended = settle(pool.end());
    for (const outcome of [await leased, await pooled]) {
      expect(outcome.ok).toBe(true);
      expect((outcome.value as unknown[])[0]).toEqual([{ slept: 0 }]);
    }
    expect((await ended).ok).toBe(true);
    await expect(lease.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
  });

  // mysql2's connection.destroy() is only a half-close that leaves queued commands
  // unanswered, and closing the socket does not stop the statement on the server.
  test('a statement still running after endTimeoutMs is killed on the server, its caller told it may have run', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, endTimeoutMs: 200 }));
    const sleeper = await pool.getConnection();
    const sleeperId = sleeper.threadId;
    const marker = `killed_${randomBytes(4).toString('hex')}`;
    const sleeping = settle(sleeper.query(`SELECT SLEEP(5) /* ${marker} */`));
    await waitFor('the statement on the server', async () => (await runningWith(marker)) === 1, 2_000);
    try {
      await pool.end();
      const slept = await within(sleeping, 2_000);
      expect(slept).not.toBe('pending');
      const outcome = (slept as Settled<Settled<unknown>>).value as Settled<unknown>; // `sleeping` is itself a settle()
      expect(outcome.ok).toBe(false);
      expect(outcome.error).toMatchObject({ code: 'ERR_CONNECTION_LOST', neverSent: false });
      await waitFor('the killed thread to leave the server', async () => !(await threadAlive(sleeperId)), 3_000);
    } finally {
      if (await threadAlive(sleeperId)) await side.query(`KILL ${sleeperId}`).catch(() => undefined);
    }
  });

  test('lease.destroy() with a statement in flight: the statement rejects, no late result arrives', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1 }));
    const lease = await pool.getConnection();
    const leaseId = lease.threadId;
    const sleeping = settle(lease.query('SELECT SLEEP(2) AS slept'));
    await sleep(50);
    try {
      lease.destroy();
      const outcome = await within(sleeping, 1_000);
      expect(outcome).not.toBe('pending');
      expect((outcome as Settled<Settled<unknown>>).value?.ok).toBe(false); // `sleeping` is itself a settle()
    } finally {
      if (await threadAlive(leaseId)) await side.query(`KILL ${leaseId}`).catch(() => undefined);
    }
  });

  test('a pool with nothing out ends at once and closes its idle connections on the server', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 3 }));
    const leases = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
    const ids = leases.map((lease) => lease.threadId);
    for (const lease of leases) lease.release();
    const ended = await within(pool.end(), 2_000);
    expect(ended).not.toBe('pending');
    expect((ended as Settled<void>).ms).toBeLessThan(1_000);
    await waitFor('the server to drop the closed connections', async () => {
      for (const id of ids) if (await threadAlive(id)) return false;
      return true;
    }, 3_000);
    expect(pool.stats().total).toBe(0);
  });
});

// ---- exhaustion: acquireTimeoutMs, waitForConnections, queueLimit -------------------------------

describe('an exhausted pool', () => {
  /** Same scenario on mysql2's pool, for its error messages. */
  async function mysql2Rejection(options: mysql.PoolOptions, scenario: (pool: mysql.Pool) => Promise<unknown>): Promise<Error> {
    const pool = mysql.createPool({ uri: mysqlUrl(), ...options });
    try {
      const error = await scenario(pool).then(() => undefined, (e: unknown) => e);
      if (!(error instanceof Error)) throw new Error('mysql2 did not reject');
      return error;
    } finally {
      await pool.end();
    }
  }

  test('acquireTimeoutMs: a waiter rejects with ERR_ACQUIRE_TIMEOUT, and the pool still works after', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 300 }));
    const held = await pool.getConnection();
    const results = await Promise.all([settle(pool.query('SELECT 1')), settle(pool.getConnection())]);
    for (const result of results) {
      expect(result.ok).toBe(false);
      expect(result.error).toBeInstanceOf(Error);
      expect(codeOf(result.error)).toBe('ERR_ACQUIRE_TIMEOUT');
      expect((result.error as Error).message).toContain('300');
      expect(result.ms).toBeGreaterThanOrEqual(250);
      expect(result.ms).toBeLessThan(1_500);
    }
    expect(pool.stats()).toMatchObject({ waiting: 0, total: 1, leased: 1 });
    held.release();
    await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
    expect(pool.stats().total).toBe(1);
  });

  test("waitForConnections: false -> ERR_NO_CONNECTIONS, with mysql2's message", async () => {
    const theirs = await mysql2Rejection({ connectionLimit: 1, waitForConnections: false }, async (pool) => {
      const held = await pool.getConnection();
      try {
        await pool.query('SELECT 1');
      } finally {
        held.release();
      }
    });
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, waitForConnections: false }));
    const held = await pool.getConnection();
    const start = performance.now();
    const viaQuery = await settle(pool.query('SELECT 1'));
    const viaGet = await settle(pool.getConnection());
    expect(performance.now() - start).toBeLessThan(200); // no waiting at all
    for (const result of [viaQuery, viaGet]) {
      expect(result.error).toBeInstanceOf(Error);
      expect(result.error).toMatchObject({ code: 'ERR_NO_CONNECTIONS', message: 'No connections available.' });
      expect((result.error as Error).message).toBe(theirs.message);
    }
    held.release();
    await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
  });

  test("queueLimit: 1 -> the second waiter rejects ERR_QUEUE_LIMIT, with mysql2's message; the first is served", async () => {
    const theirs = await mysql2Rejection({ connectionLimit: 1, queueLimit: 1 }, async (pool) => {
      const held = await pool.getConnection();
      const first = pool.query('SELECT 1');
      try {
        await pool.query('SELECT 2');
      } finally {
        held.release();
        await first;
      }
    });
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, queueLimit: 1 }));
    const held = await pool.getConnection();
    const first = settle(pool.query('SELECT 1 AS first'));
    const second = await settle(pool.getConnection());
    const third = await settle(pool.query('SELECT 3'));
    for (const result of [second, third]) {
      expect(result.error).toBeInstanceOf(Error);
      expect(result.error).toMatchObject({ code: 'ERR_QUEUE_LIMIT', message: 'Queue limit reached.' });
      expect((result.error as Error).message).toBe(theirs.message);
    }
    expect(pool.stats().waiting).toBe(1);
    held.release();
    const served = await first;
    expect(served.ok).toBe(true);
    expect(served.value?.[0]).toEqual([{ first: 1 }]);
  });
});

// ---- idle trimming -----------------------------------------------------------------------

describe('idle trimming', () => {
  test('maxIdle: 1, idleTimeout: 1000: three idle connections trim down to at most one, closed on the server', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 3, maxIdle: 1, idleTimeout: 1_000 }));
    const leases: PoolConnection[] = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
    const ids = leases.map((lease) => lease.threadId);
    expect(pool.stats().total).toBe(3);
    for (const lease of leases) lease.release();
    expect(pool.stats()).toMatchObject({ total: 3, idle: 3 });
    await waitFor('idle connections to be trimmed', () => pool.stats().total <= 1, 5_000);
    // Really closed, not just forgotten.
    await waitFor('the server to see them go', async () => {
      let alive = 0;
      for (const id of ids) if (await threadAlive(id)) alive++;
      return alive <= 1;
    }, 3_000);
    await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
    expect(pool.stats().total).toBeLessThanOrEqual(1);
  });

  test('maxIdle: 0 is honoured (not turned into a default): every idle connection goes', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 2, maxIdle: 0, idleTimeout: 60_000 }));
    const leases = await Promise.all([pool.getConnection(), pool.getConnection()]);
    for (const lease of leases) lease.release();
    await waitFor('all idle connections to be closed', () => pool.stats().total === 0, 4_000);
    await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
  });

  test('no trimming when maxIdle = connectionLimit (the default), as mysql2', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 2, idleTimeout: 200 }));
    const leases = await Promise.all([pool.getConnection(), pool.getConnection()]);
    for (const lease of leases) lease.release();
    await sleep(1_300);
    expect(pool.stats()).toMatchObject({ total: 2, idle: 2 });
  });
});

// ---- the queue of waiting acquirers (ours, in front of generic-pool) ------------------------

describe('the queue of waiting acquirers', () => {
  test('FIFO: waiters are served in the order they asked, getConnection and pool.query alike', async () => {
    const table = uniqueTable('rp_fifo');
    await side.query(`CREATE TABLE ${table} (seq INT AUTO_INCREMENT PRIMARY KEY, i INT NOT NULL)`);
    try {
      const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 5_000 }));
      const held = await pool.getConnection();
      // One connection: the server sees the inserts in the order the waiters were served.
      const insert = `INSERT INTO ${table} (i) VALUES (?)`;
      const waiters = Array.from({ length: 8 }, (_, i) =>
        i % 2 === 0
          ? pool.getConnection().then(async (lease) => {
              await lease.query(insert, [i]);
              lease.release();
            })
          : pool.query(insert, [i]),
      );
      await waitFor('eight waiters', () => pool.stats().waiting === 8, 2_000);
      held.release();
      await Promise.all(waiters);
      const [rows] = await side.query(`SELECT i FROM ${table} ORDER BY seq`);
      expect((rows as Array<{ i: number }>).map((row) => row.i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0, waiting: 0 });
    } finally {
      await side.query(`DROP TABLE IF EXISTS ${table}`);
    }
  });

  test('a release goes straight to the oldest waiter: release, then acquire, and the same connection', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1 }));
    const held = await pool.getConnection();
    const events: string[] = [];
    for (const name of ['acquire', 'release'] as const) pool.on(name, () => events.push(name));
    const next = pool.getConnection();
    await waitFor('the waiter', () => pool.stats().waiting === 1, 2_000);
    held.release();
    // Checked out for the waiter within release() itself: nobody can slip in between.
    expect(pool.stats()).toMatchObject({ waiting: 0, leased: 1, idle: 0 });
    const lease = await next;
    expect(lease.threadId).toBe(held.threadId);
    expect(events).toEqual(['release', 'acquire']);
    lease.release();
  });

  test('many more callers than connections: every pool.execute gets its own answer', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 2 }));
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => pool.execute('SELECT ? AS i', [i])));
    results.forEach(([rows], i) => expect((rows as Array<{ i: number }>)[0]!.i).toBe(i));
    expect(pool.stats()).toMatchObject({ total: 2, idle: 2, waiting: 0 });
  });

  test('timeouts: each waiter times out at its own deadline (one timer for the queue), the pool works after', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 300 }));
    const held = await pool.getConnection();
    const start = performance.now();
    const first = settle(pool.getConnection());
    await sleep(150);
    const second = settle(pool.query('SELECT 1'));
    const [a, b] = await Promise.all([first, second]);
    for (const result of [a, b]) {
      expect(codeOf(result.error)).toBe('ERR_ACQUIRE_TIMEOUT');
      expect(result.ms).toBeGreaterThanOrEqual(290);
      expect(result.ms).toBeLessThan(1_000);
    }
    // The second timed out about 150 ms after the first, not with it.
    expect(performance.now() - start).toBeGreaterThanOrEqual(430);
    expect(pool.stats().waiting).toBe(0);
    held.release();
    await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
  });

  test('a waiter that timed out is skipped: the release goes to the next waiter, or back to idle', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 200 }));
    const held = await pool.getConnection();
    const early = settle(pool.getConnection());
    await sleep(120);
    const late = settle(pool.getConnection());
    expect(codeOf((await early).error)).toBe('ERR_ACQUIRE_TIMEOUT');
    held.release(); // the early waiter is gone: the late one (still within its deadline) gets it
    const served = await late;
    expect(served.ok).toBe(true);
    expect((served.value as PoolConnection).threadId).toBe(held.threadId);
    (served.value as PoolConnection).release();
    // Nobody waits now: the release went to the idle stack; nothing was lost or doubled.
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0, waiting: 0 });
  });

  test('a waiter handed a session just before its deadline is not timed out by the cleanup that runs first', async () => {
    // cleanup 'checkout': the session comes back flagged and its ROLLBACK (behind a 0.4 s statement) runs
    // for the waiter it is handed to, past that waiter's deadline.
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 300, cleanup: 'checkout' }));
    const held = await pool.getConnection();
    await held.beginTransaction();
    const sleeping = settle(held.query('SELECT SLEEP(0.4)'));
    const waiter = settle(pool.getConnection());
    await sleep(200);
    held.release(); // dirty, statement in flight: flagged, handed to the waiter, flushed for it
    const served = await waiter;
    expect(served.ok).toBe(true);
    expect(served.ms).toBeGreaterThanOrEqual(300); // past its deadline, and still served: no timeout on a session in hand
    const lease = served.value as PoolConnection;
    expect(lease.threadId).toBe(held.threadId);
    const [rows] = await lease.query('SELECT @@in_transaction AS t');
    expect(rows).toEqual([{ t: 0 }]);
    lease.release();
    await sleeping;
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0, waiting: 0, rolledBack: 1 });
  });

  test('a timeout and a hand-over in the same moment: exactly one of them wins, and the session is not lost', async () => {
    for (let trial = 0; trial < 10; trial++) {
      const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 50 }));
      const held = await pool.getConnection();
      const waiter = settle(pool.getConnection());
      await sleep(48 + (trial % 5)); // around the deadline, on either side
      held.release();
      const outcome = await waiter;
      if (outcome.ok) {
        (outcome.value as PoolConnection).release();
      } else {
        expect(codeOf(outcome.error)).toBe('ERR_ACQUIRE_TIMEOUT');
      }
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, leased: 0, waiting: 0 });
      await expect(pool.query('SELECT 1 AS ok')).resolves.toEqual([[{ ok: 1 }], expect.any(Array)]);
    }
  });

  test('end() rejects every waiter at once; a lease released after it serves nobody', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 10_000 }));
    const held = await pool.getConnection();
    const order: number[] = [];
    const waiters = Array.from({ length: 5 }, (_, i) =>
      settle((i % 2 === 0 ? pool.getConnection() : pool.execute('SELECT 1')) as Promise<unknown>).then((result) => {
        order.push(i);
        return result;
      }),
    );
    await waitFor('five waiters', () => pool.stats().waiting === 5, 2_000);
    const ending = pool.end();
    const results = await Promise.all(waiters);
    for (const result of results) {
      expect(codeOf(result.error)).toBe('ERR_POOL_CLOSED');
      expect(result.ms).toBeLessThan(2_000);
    }
    expect(order).toEqual([0, 1, 2, 3, 4]);
    held.release();
    await ending;
    expect(pool.stats().waiting).toBe(0);
    await expect(pool.getConnection()).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
  });

  test('a connection destroyed while others wait frees its slot for the oldest waiter', async () => {
    const pool = track(createPool({ uri: mysqlUrl(), connectionLimit: 1, acquireTimeoutMs: 3_000 }));
    const held = await pool.getConnection();
    const waiter = pool.getConnection();
    await waitFor('the waiter', () => pool.stats().waiting === 1, 2_000);
    held.destroy();
    const lease = await waiter;
    expect(lease.threadId).not.toBe(held.threadId); // a new connection, in the freed slot
    lease.release();
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, waiting: 0 });
  });
});
