/**
 * leakDetectionMs: a lease held too long is reported once, with where it was
 * taken; resetOnRelease (mysql2's option) keeps its meaning on our pool.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type LeakEvent } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { nextEvent, pause } from './helpers';

test('a lease held longer than leakDetectionMs emits leak once, with the stack where it was taken', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, leakDetectionMs: 100, captureStacks: true });
  const leaks: LeakEvent[] = [];
  pool.on('leak', (event) => leaks.push(event));
  try {
    const conn = await pool.getConnection();
    const [event] = await nextEvent(pool, 'leak', 5_000);
    expect(event.threadId).toBe(conn.threadId);
    expect(event.heldMs).toBeGreaterThanOrEqual(90);
    expect(event.stack).toContain('leak-and-reset.test.ts');
    await pause(400); // four more periods: still reported only once
    conn.release();
    await pause(200);
    expect(leaks).toHaveLength(1);
  } finally {
    await pool.end();
  }
});

test('a lease released in time is never reported as a leak', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, leakDetectionMs: 150 });
  const leaks: LeakEvent[] = [];
  pool.on('leak', (event) => leaks.push(event));
  try {
    const conn = await pool.getConnection();
    await conn.query('SELECT 1');
    conn.release();
    await pause(450);
    expect(leaks).toEqual([]);
  } finally {
    await pool.end();
  }
});

test('resetOnRelease: true clears session state on every release, as with mysql2', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, resetOnRelease: true });
  try {
    const first = await pool.getConnection();
    await first.query('SET @rp_marker = 42');
    const threadId = first.threadId;
    first.release();
    const second = await pool.getConnection();
    const [rows] = await second.query<RowDataPacket[]>('SELECT @rp_marker AS marker');
    expect(second.threadId).toBe(threadId); // same connection, reset rather than replaced
    expect(rows[0]?.marker).toBeNull();
    second.release();
  } finally {
    await pool.end();
  }
});

test('without resetOnRelease, session state survives a clean release (no extra round trip)', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const first = await pool.getConnection();
    await first.query('SET @rp_marker = 42');
    first.release();
    const second = await pool.getConnection();
    const [rows] = await second.query<RowDataPacket[]>('SELECT @rp_marker AS marker');
    expect(rows[0]?.marker).toBe(42);
    second.release();
  } finally {
    await pool.end();
  }
});
