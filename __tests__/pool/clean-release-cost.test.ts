/**
 * Clean connections cost nothing: releasing a connection that is not in a
 * transaction sends nothing to the server (no ROLLBACK, no reset, no ping).
 *
 * Measured with the pool connection's own session counters (only that session
 * can read them, so other tests running in parallel cannot disturb them), read
 * through the same single connection (connectionLimit: 1) before and after.
 * `Bytes_received` counts every byte the server read from that connection, so
 * any extra command (COM_RESET_CONNECTION, COM_PING, a ROLLBACK) would show.
 */
import { createPool } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { SESSION_STATUS_SQL, comQueryBytes, sessionStatus } from './helpers';

const CYCLES = 1_000;

test(`${CYCLES} clean getConnection/query/release cycles send exactly the queries and nothing else`, async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const first = await pool.getConnection();
    const threadId = first.threadId;
    const before = await sessionStatus(first);
    first.release();

    for (let i = 0; i < CYCLES; i++) {
      const conn = await pool.getConnection();
      if (conn.threadId !== threadId) throw new Error(`cycle ${i}: a different connection (${conn.threadId})`);
      await conn.query('SELECT 1');
      conn.release();
    }

    const last = await pool.getConnection();
    expect(last.threadId).toBe(threadId);
    const after = await sessionStatus(last);
    last.release();

    expect(after.Com_rollback - before.Com_rollback).toBe(0);
    expect(after.Com_admin_commands - before.Com_admin_commands).toBe(0); // no COM_PING
    expect(after.Questions - before.Questions).toBe(CYCLES + 1); // the SELECTs and the second SHOW STATUS
    expect(after.Bytes_received - before.Bytes_received).toBe(CYCLES * comQueryBytes('SELECT 1') + comQueryBytes(SESSION_STATUS_SQL));
    expect(pool.stats()).toMatchObject({ total: 1, abandoned: 0, rolledBack: 0, destroyed: 0 });
  } finally {
    await pool.end();
  }
});

test('clean pool-level queries add nothing either', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const before = await sessionStatus(pool);
    for (let i = 0; i < 200; i++) await pool.query('SELECT 1');
    const after = await sessionStatus(pool);
    expect(after.Com_rollback - before.Com_rollback).toBe(0);
    expect(after.Bytes_received - before.Bytes_received).toBe(200 * comQueryBytes('SELECT 1') + comQueryBytes(SESSION_STATUS_SQL));
  } finally {
    await pool.end();
  }
});

test('one abandoned transaction moves Com_rollback by exactly 1', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const first = await pool.getConnection();
    const threadId = first.threadId;
    const before = await sessionStatus(first);
    first.release();

    const conn = await pool.getConnection();
    await conn.beginTransaction();
    await conn.query('SELECT 1');
    conn.release(); // abandoned

    for (let i = 0; i < 10; i++) {
      const clean = await pool.getConnection();
      await clean.query('SELECT 1');
      clean.release();
    }

    const last = await pool.getConnection();
    expect(last.threadId).toBe(threadId);
    const after = await sessionStatus(last);
    last.release();
    expect(after.Com_rollback - before.Com_rollback).toBe(1);
  } finally {
    await pool.end();
  }
});

/*
 * mysql2 throws synchronously for some statements it refuses to send (here an
 * `undefined` bind value). Nothing was written, so nothing may count as "in
 * flight": later clean releases must stay free (no abandon, no ROLLBACK).
 */
test('a statement mysql2 refuses before sending it (undefined bind value) does not make later clean releases cost a ROLLBACK', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const conn = await pool.getConnection();
    const threadId = conn.threadId;
    const input = JSON.parse('{}'); // e.g. a request body without the expected field
    await expect(conn.execute('SELECT ?', [input.name])).rejects.toThrow(/undefined/);
    const before = await sessionStatus(conn);
    conn.release();

    for (let i = 0; i < 10; i++) {
      const clean = await pool.getConnection();
      await clean.query('SELECT 1');
      clean.release();
    }

    const last = await pool.getConnection();
    expect(last.threadId).toBe(threadId);
    const after = await sessionStatus(last);
    last.release();
    expect(pool.stats().abandoned).toBe(0);
    expect(after.Com_rollback - before.Com_rollback).toBe(0);
  } finally {
    await pool.end();
  }
});
