/** Helpers for tests that talk to the database directly. */
import { randomBytes } from 'node:crypto';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { DEFAULT_MYSQL_URL } from '../../scripts/server';

/** The server globalSetup chose (it sets MYSQL_URL before workers start). */
export function mysqlUrl(): string {
  return process.env.MYSQL_URL ?? DEFAULT_MYSQL_URL;
}

/**
 * A table name no other test, worker or earlier run uses: `rp_<prefix>_<pid>_<random>`.
 * The prefix is reduced to [a-z0-9_] so the name never needs quoting, and cut so the
 * whole name stays within MySQL's 64-character identifier limit.
 */
export function uniqueTable(prefix: string): string {
  const safe = prefix.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 32) || 't';
  return `rp_${safe}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** A separate plain connection, to observe from outside the pool under test. Close it with end(). */
export function sideConnection(): Promise<Connection> {
  return createConnection({ uri: mysqlUrl(), connectTimeout: 5_000 });
}

/**
 * True when row `id` of `table` is locked by another connection: the side's
 * `SELECT ... FOR UPDATE NOWAIT` fails at once with ER_LOCK_WAIT_TIMEOUT (1205).
 */
export async function isRowLocked(side: Connection, table: string, id: number): Promise<boolean> {
  try {
    await side.query(`SELECT id FROM ${table} WHERE id = ? FOR UPDATE NOWAIT`, [id]);
    return false;
  } catch (error) {
    if ((error as { errno?: number }).errno === 1205) return true;
    throw error;
  }
}

/** True while the server still has a thread with this id. */
export async function threadAlive(side: Connection, threadId: number): Promise<boolean> {
  const [rows] = await side.query<RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?', [threadId]);
  return rows.length > 0;
}
