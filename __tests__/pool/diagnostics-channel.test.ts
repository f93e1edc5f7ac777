/**
 * node:diagnostics_channel: every pool publishes acquire, release, abandon,
 * rollback, rollbackError, destroy and leak under `rollback-pool:`, with
 * timings, to subscribers that hold no reference to the pool.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { RowDataPacket } from 'mysql2/promise';
import { CHANNEL_NAMES, createPool, type DiagnosticsMessages, type Pool } from '../../src/index';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { waitFor } from '../scope/http-support';

type Kind = keyof DiagnosticsMessages;
type Seen = { [K in Kind]: Array<DiagnosticsMessages<Pool>[K]> };

const table = uniqueTable('diag');
let side: Awaited<ReturnType<typeof sideConnection>>;
let seen: Seen;
const listeners = new Map<Kind, (message: unknown) => void>();

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
  for (const kind of Object.keys(CHANNEL_NAMES) as Kind[]) {
    const listener = (message: unknown): void => {
      (seen[kind] as unknown[]).push(message);
    };
    listeners.set(kind, listener);
    subscribe(CHANNEL_NAMES[kind], listener);
  }
});

beforeEach(() => {
  seen = { acquire: [], release: [], abandon: [], rollback: [], rollbackError: [], destroy: [], leak: [], reset: [] };
});

afterAll(async () => {
  for (const [kind, listener] of listeners) unsubscribe(CHANNEL_NAMES[kind], listener);
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
});

test('the channel names are the documented ones', () => {
  expect(Object.values(CHANNEL_NAMES).sort()).toEqual(
    ['abandon', 'acquire', 'destroy', 'leak', 'release', 'reset', 'rollback', 'rollbackError'].map((k) => `rollback-pool:${k}`).sort(),
  );
});

test('a clean lease and a pool.query publish acquire and release (clean), with their pool and timings', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 2 });
  try {
    const conn = await pool.getConnection();
    await conn.query('SELECT 1');
    conn.release();
    await pool.query('SELECT 1'); // the fast path, on the now idle connection
    expect(seen.acquire).toHaveLength(2);
    expect(seen.release).toHaveLength(2);
    for (const message of [...seen.acquire, ...seen.release]) {
      expect(message.pool).toBe(pool);
      expect(message.threadId).toBe(conn.threadId);
    }
    expect(seen.acquire[1]?.waitMs).toBe(0);
    expect(seen.release.map((m) => m.outcome)).toEqual(['clean', 'clean']);
    expect(seen.release[0]?.heldMs).toBeGreaterThanOrEqual(0);
    expect(seen.abandon).toEqual([]);
  } finally {
    await pool.end();
  }
});

test('an acquire that waits reports how long it waited', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const holder = await pool.getConnection();
    const waiting = pool.getConnection();
    await new Promise((resolve) => setTimeout(resolve, 150));
    holder.release();
    (await waiting).release();
    const waited = seen.acquire[1]?.waitMs ?? 0;
    expect(waited).toBeGreaterThanOrEqual(100); // generous: it waited ~150 ms for the holder
    expect(seen.release[0]?.heldMs).toBeGreaterThanOrEqual(100);
  } finally {
    await pool.end();
  }
});

test('an abandoned transaction publishes release (pendingRollback), abandon and rollback with its duration', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, captureStacks: true });
  try {
    const tx = await pool.begin();
    await tx.query(`INSERT INTO ${table} VALUES (1)`);
    tx[Symbol.dispose](); // walked away
    await waitFor('the rollback', () => seen.rollback.length === 1, 5_000);
    expect(seen.release.map((m) => m.outcome)).toEqual(['pendingRollback']);
    expect(seen.abandon).toHaveLength(1);
    expect(seen.abandon[0]).toMatchObject({ pool, threadId: tx.threadId, reason: 'disposed' });
    expect(seen.abandon[0]?.stack).toContain('diagnostics-channel.test.ts');
    expect(seen.rollback[0]).toMatchObject({ pool, threadId: tx.threadId });
    expect(seen.rollback[0]?.durationMs).toBeGreaterThan(0);
    const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table}`);
    expect(rows).toEqual([]);
  } finally {
    await pool.end();
  }
});

test('a pending ROLLBACK that times out publishes rollbackError and destroy', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, rollbackTimeoutMs: 100 });
  try {
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    const slow = conn.query('SELECT SLEEP(2)').catch(() => undefined);
    conn.release();
    await waitFor('rollbackError', () => seen.rollbackError.length === 1, 5_000);
    expect(seen.rollbackError[0]).toMatchObject({ pool, threadId: conn.threadId });
    expect(seen.rollbackError[0]?.error.code).toBe('ERR_ROLLBACK_FAILED');
    expect(seen.destroy.some((m) => m.threadId === conn.threadId)).toBe(true);
    await slow;
  } finally {
    await pool.end();
  }
});

test('a lease held too long publishes leak once', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, leakDetectionMs: 50 });
  try {
    const conn = await pool.getConnection();
    await waitFor('leak', () => seen.leak.length === 1, 5_000);
    expect(seen.leak[0]).toMatchObject({ pool, threadId: conn.threadId });
    expect(seen.leak[0]?.heldMs).toBeGreaterThanOrEqual(50);
    conn.release();
    expect(seen.leak).toHaveLength(1);
  } finally {
    await pool.end();
  }
});

test('no message carries the connection options', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    tx[Symbol.dispose]();
    await waitFor('the rollback', () => seen.rollback.length === 1, 5_000);
    const all = Object.values(seen).flat();
    expect(all.length).toBeGreaterThan(0);
    for (const message of all) {
      expect(Object.keys(message)).not.toContain('config');
      expect(JSON.stringify(message)).not.toMatch(/"password"/); // the pool serialises as a summary
    }
  } finally {
    await pool.end();
  }
});
