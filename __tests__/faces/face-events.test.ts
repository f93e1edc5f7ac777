/**
 * Listeners on the callback faces (src/pool/face-events.ts, src/pool/callback.ts),
 * against the real server: mysql2's pool events on `pool.pool`, mysql2's
 * connection events on `lease.connection` (`error` and `end` when the
 * connection is lost under a lease, `warn`), EventEmitter's listener methods,
 * and their cost when nobody listens (nothing subscribed, nothing allocated).
 */
import type { Connection as RawConnection, Query } from 'mysql2';
import { createPool, type CallbackConnection, type Pool } from '../../src';
import { sideConnection, mysqlUrl } from '../support/db';
import { waitUntil } from '../pool/helpers';
import type { Connection } from 'mysql2/promise';

let side: Connection;
beforeAll(async () => {
  side = await sideConnection();
});
afterAll(async () => {
  await side.end();
});

let pool: Pool;
beforeEach(() => {
  pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
});
afterEach(async () => {
  await pool.end();
});

function getConnection(p: Pool): Promise<CallbackConnection> {
  return new Promise((resolve, reject) => p.pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn))));
}

/** The face's internals that say whether anything was allocated or subscribed for listeners. */
function internals(conn: CallbackConnection): { emitter: unknown; onLost: unknown } {
  const face = conn as unknown as { emitter: unknown };
  return { emitter: face.emitter, onLost: conn.promise().session.onLost };
}

describe('pool.pool: mysql2 pool events, subscribed on the pool only while listened to', () => {
  test("on/once/off/removeAllListeners: the promise pool gets a listener only while the face has one; each listener gets mysql2's connection", async () => {
    const seen: number[] = [];
    const onAcquire = (connection: RawConnection): void => {
      seen.push(connection.threadId);
    };
    expect(pool.listenerCount('acquire')).toBe(0);
    pool.pool.on('acquire', onAcquire);
    pool.pool.addListener('acquire', onAcquire);
    expect(pool.pool.listenerCount('acquire')).toBe(2);
    expect(pool.pool.listeners('acquire')).toEqual([onAcquire, onAcquire]);
    expect(pool.listenerCount('acquire')).toBe(1); // one forwarder, whatever the number of listeners
    await pool.query('SELECT 1');
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual(expect.any(Number));
    pool.pool.off('acquire', onAcquire);
    expect(pool.listenerCount('acquire')).toBe(1);
    pool.pool.removeListener('acquire', onAcquire);
    expect(pool.listenerCount('acquire')).toBe(0);
    expect(pool.pool.eventNames()).toEqual([]);

    let releases = 0;
    pool.pool.once('release', () => releases++);
    pool.pool.on('connection', () => undefined);
    expect(pool.listenerCount('release')).toBe(1);
    await pool.query('SELECT 1');
    await pool.query('SELECT 1');
    expect(releases).toBe(1);
    expect(pool.listenerCount('release')).toBe(0); // left after the last `once` listener ran
    pool.pool.removeAllListeners();
    expect(pool.listenerCount('connection')).toBe(0);
  });

  test('enqueue: a getConnection that waits emits it (no argument); emit() calls the listeners, as EventEmitter', async () => {
    const enqueued: unknown[][] = [];
    pool.pool.on('enqueue', (...args: unknown[]) => enqueued.push(args));
    const first = await getConnection(pool);
    const second = getConnection(pool);
    await waitUntil(() => enqueued.length === 1, 2_000);
    expect(enqueued).toEqual([[]]);
    first.release();
    (await second).release();
    expect(pool.pool.emit('enqueue')).toBe(true);
    expect(enqueued).toHaveLength(2);
  });
});

describe('lease.connection: listeners cost nothing until added', () => {
  test('a checkout and statements without listeners allocate no emitter and hook nothing; adding one does', async () => {
    const conn = await getConnection(pool);
    await new Promise((resolve, reject) => conn.query('SELECT 1', (err) => (err ? reject(err) : resolve(undefined))));
    expect(internals(conn)).toEqual({ emitter: undefined, onLost: undefined });
    expect(conn.listenerCount('error')).toBe(0);
    expect(conn.listeners('error')).toEqual([]);
    expect(conn.emit('end')).toBe(false);
    expect(internals(conn).emitter).toBeUndefined();
    expect(() => conn.emit('error', new Error('nobody listens'))).toThrow('nobody listens'); // as EventEmitter

    const onError = jest.fn();
    conn.on('error', onError);
    expect(internals(conn).onLost).toEqual(expect.any(Function));
    expect(conn.emit('error', new Error('by hand'))).toBe(true);
    expect(onError).toHaveBeenCalledWith(expect.objectContaining({ message: 'by hand' }));
    conn.release();
    expect(conn.promise().session.onLost).toBeUndefined(); // the hook goes with the lease
  });

  test('the methods behave as EventEmitter: once, prependListener, off, removeAllListeners, rawListeners, setMaxListeners', async () => {
    const conn = await getConnection(pool);
    const calls: string[] = [];
    conn.once('end', () => calls.push('once'));
    conn.prependListener('end', () => calls.push('first'));
    const later = (): void => {
      calls.push('later');
    };
    conn.on('end', later);
    expect(conn.rawListeners('end')).toHaveLength(3);
    conn.emit('end');
    conn.emit('end');
    expect(calls).toEqual(['first', 'once', 'later', 'first', 'later']);
    conn.off('end', later);
    expect(conn.listenerCount('end')).toBe(1);
    conn.removeAllListeners('end');
    expect(conn.eventNames()).toEqual([]);
    expect(conn.setMaxListeners(3).getMaxListeners()).toBe(3);
    conn.release();
  });

  test("warn: mysql2's warnings about the connection reach the face's listeners while it is leased, not after", async () => {
    const conn = await getConnection(pool);
    const raw = conn.promise().rawConnection;
    const before = raw.listenerCount('warn');
    const warnings: Error[] = [];
    conn.on('warn', (warning) => warnings.push(warning));
    expect(raw.listenerCount('warn')).toBe(before + 1);
    raw.emit('warn', new Error('packets out of order'));
    expect(warnings.map((w) => w.message)).toEqual(['packets out of order']);
    conn.release();
    expect(raw.listenerCount('warn')).toBe(before);
    raw.emit('warn', new Error('after release'));
    expect(warnings).toHaveLength(1);
  });
});

describe('lease.connection emits `error` and `end` when its connection is lost while leased', () => {
  test('KILL from another session: `error` (ERR_CONNECTION_LOST, fatal) then `end`; statements fail with ERR_CONNECTION_LOST; the release destroys it', async () => {
    const conn = await getConnection(pool);
    const order: string[] = [];
    const errors: Array<Error & { code?: string; fatal?: boolean }> = [];
    conn.on('error', (error) => {
      order.push('error');
      errors.push(error);
    });
    conn.on('end', () => order.push('end'));
    await side.query(`KILL ${conn.threadId}`);
    await waitUntil(() => order.length === 2, 5_000);
    expect(order).toEqual(['error', 'end']);
    expect(errors[0]).toMatchObject({ code: 'ERR_CONNECTION_LOST', fatal: true });
    await expect(
      new Promise((resolve, reject) => conn.query('SELECT 1', (err) => (err ? reject(err) : resolve(undefined)))),
    ).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    conn.release();
    expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 1 });
    const next = await getConnection(pool); // the slot came back
    expect(next.threadId).not.toBe(conn.threadId);
    next.release();
  });

  test('only `end` when the error has no listener (no unhandled `error` event), and nothing for a face released before the loss', async () => {
    const conn = await getConnection(pool);
    const ended = jest.fn();
    conn.on('end', ended);
    await side.query(`KILL ${conn.threadId}`);
    await waitUntil(() => ended.mock.calls.length === 1, 5_000);
    conn.release();

    const released = await getConnection(pool);
    const onError = jest.fn();
    released.on('error', onError);
    const threadId = released.threadId;
    released.release();
    await side.query(`KILL ${threadId}`);
    await waitUntil(() => pool.stats().destroyed === 2, 5_000); // the idle connection's loss was seen
    await new Promise((resolve) => setImmediate(resolve));
    expect(onError).not.toHaveBeenCalled();
  });

  test('pool.end() while leased: `end`, no `error` (as mysql2 when its pool ends)', async () => {
    const conn = await getConnection(pool);
    const seen: string[] = [];
    conn.on('error', () => seen.push('error'));
    conn.on('end', () => seen.push('end'));
    await pool.end();
    await waitUntil(() => seen.length > 0, 2_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['end']);
  });

  test.each([
    ['lease.connection.query(sql).stream()', (conn: CallbackConnection | undefined) => conn!.query('SELECT SLEEP(30)')],
    ['lease.connection.execute(sql).stream()', (conn: CallbackConnection | undefined) => conn!.execute('SELECT SLEEP(30)')],
    ['pool.pool.query(sql).stream()', () => pool.pool.query('SELECT SLEEP(30)')],
    ['pool.pool.execute(sql).stream()', () => pool.pool.execute('SELECT SLEEP(30)')],
  ])('%s killed mid-statement: the stream fails with ERR_CONNECTION_LOST instead of hanging; the slot comes back', async (how, start) => {
    let threadId = 0;
    pool.once('acquire', (raw) => (threadId = raw.threadId));
    const conn = how.startsWith('lease') ? await getConnection(pool) : undefined;
    const command: Query = start(conn);
    const failed = new Promise<Error>((resolve) => command.stream().on('error', resolve).resume());
    await waitUntil(async () => {
      const [rows] = await side.query("SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'", [threadId]);
      return (rows as unknown[]).length > 0;
    }, 5_000);
    await side.query(`KILL ${threadId}`);
    expect(await failed).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    conn?.release(); // the pool face gives its own connection back
    await waitUntil(() => pool.stats().leased === 0, 5_000);
    expect(pool.stats()).toMatchObject({ destroyed: 1, total: 0 });
    expect((await pool.query('SELECT 1 AS ok'))[0]).toEqual([{ ok: 1 }]);
  });

  test.each([
    ['pool.pool.query(sql, cb)', (cb: (err: Error | null) => void) => pool.pool.query('SELECT SLEEP(30)', cb)],
    ['pool.pool.execute(sql, cb)', (cb: (err: Error | null) => void) => pool.pool.execute('SELECT SLEEP(30)', cb)],
  ])('%s killed mid-statement: the callback gets the loss, and the connection taken for it is given back (mysql2 never ends that command)', async (_how, start) => {
    let threadId = 0;
    pool.once('acquire', (raw) => (threadId = raw.threadId));
    const failed = new Promise<Error | null>((resolve) => start(resolve));
    await waitUntil(async () => {
      const [rows] = await side.query("SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'", [threadId]);
      return (rows as unknown[]).length > 0;
    }, 5_000);
    await side.query(`KILL ${threadId}`);
    expect(await failed).toMatchObject({ fatal: true });
    await waitUntil(() => pool.stats().leased === 0, 5_000);
    expect(pool.stats()).toMatchObject({ destroyed: 1, total: 0 });
    expect((await pool.query('SELECT 1 AS ok'))[0]).toEqual([{ ok: 1 }]);
  });
});
