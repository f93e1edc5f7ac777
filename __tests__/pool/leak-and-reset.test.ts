/**
 * leakDetectionMs: a lease held too long is reported once, with where it was
 * taken; resetOnRelease (mysql2's option) keeps its meaning on our pool.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type LeakEvent } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { nextEvent, pause } from './helpers';

/** The line this is called from, in this file (for "the stack points at the caller's line"). */
function thisLine(): number {
  const frame = String(new Error().stack).split('\n')[2] ?? '';
  return Number(/leak-and-reset\.test\.ts:(\d+):\d+/.exec(frame)?.[1]);
}

/** The first frame of `stack` outside the library's own src/: where the user called from. */
function firstCallerFrame(stack: string | undefined): string {
  const frames = String(stack).split('\n').filter((line) => /^\s+at /.test(line));
  return frames.find((line) => !/[\\/]src[\\/]/.test(line)) ?? '(no frame outside src/)';
}

test('a lease held longer than leakDetectionMs emits leak once, with the stack where it was taken', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, leakDetectionMs: 100, captureStacks: true });
  const leaks: LeakEvent[] = [];
  pool.on('leak', (event) => leaks.push(event));
  try {
    const taking = pool.getConnection();
    const takenOnLine = thisLine() - 1;
    const conn = await taking;
    const [event] = await nextEvent(pool, 'leak', 5_000);
    expect(event.threadId).toBe(conn.threadId);
    expect(event.heldMs).toBeGreaterThanOrEqual(90);
    expect(event.stack).toContain('leak-and-reset.test.ts');
    // The first frame outside the library is the caller's own getConnection() line.
    expect(firstCallerFrame(event.stack)).toContain(`leak-and-reset.test.ts:${takenOnLine}:`);
    await pause(400); // four more periods: still reported only once
    expect(leaks).toHaveLength(1);
    conn.release();
    await pause(300); // three periods after the release: nothing more
    expect(leaks).toHaveLength(1);
    // The same connection, taken again and released in time, is not reported either (the old timer is gone).
    const again = await pool.getConnection();
    expect(again.threadId).toBe(conn.threadId);
    again.release();
    await pause(300);
    expect(leaks).toHaveLength(1);
  } finally {
    await pool.end();
  }
});

test('a leaked transaction handle (pool.begin) is reported once, pointing at the pool.begin() call; without captureStacks, no stack', async () => {
  for (const captureStacks of [true, false]) {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, leakDetectionMs: 100, captureStacks });
    const leaks: LeakEvent[] = [];
    pool.on('leak', (event) => leaks.push(event));
    try {
      const beginning = pool.begin();
      const beganOnLine = thisLine() - 1;
      const tx = await beginning;
      const [event] = await nextEvent(pool, 'leak', 5_000);
      expect(event.threadId).toBe(tx.threadId);
      expect(event.heldMs).toBeGreaterThanOrEqual(90);
      if (captureStacks) expect(firstCallerFrame(event.stack)).toContain(`leak-and-reset.test.ts:${beganOnLine}:`);
      else expect(event.stack).toBeUndefined();
      await tx.rollback(); // gives the connection back
      await pause(300);
      expect(leaks).toHaveLength(1);
    } finally {
      await pool.end();
    }
  }
});

// BUG (minor, spurious event): end() destroys the connection of a lease still out but does not
// clear that lease's leak timer (Pool.end / watchForLeak in src/pool/pool.ts; releaseSession clears
// it, end() never goes through it), and the timer only checks lease.isReleased. So a pool that was
// ended emits `leak` for a connection it already closed, leakDetectionMs later. Expected: no event
// from an ended pool (the connection is gone; there is nothing left to leak).
test('a lease still out when the pool is ended is not reported as a leak afterwards', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, leakDetectionMs: 150 });
  const leaks: LeakEvent[] = [];
  pool.on('leak', (event) => leaks.push(event));
  const conn = await pool.getConnection();
  await pool.end();
  await pause(450); // three periods
  void conn; // the user still holds the (fenced) handle, never released
  expect(leaks).toEqual([]);
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
