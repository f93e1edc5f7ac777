import { createConnection as createCoreConnection } from 'mysql2';
import { mysqlUrl, uniqueTable } from '../support/db';
/**
 * Small helpers shared by the pool tests (not a test file: jest only runs *.test.ts).
 * Everything here observes the server from outside or waits on events; nothing sleeps
 * to win a race.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { Pool, PoolEventMap } from '../../src/index';

/** Resolves with the arguments of the next `name` event; rejects after `timeoutMs`. */
export function nextEvent<K extends keyof PoolEventMap>(pool: Pool, name: K, timeoutMs = 5_000): Promise<PoolEventMap[K]> {
  return new Promise((resolve, reject) => {
    const listener = (...args: PoolEventMap[K]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      (pool as unknown as NodeJS.EventEmitter).removeListener(name, listener as never);
      reject(new Error(`no '${String(name)}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    (pool as unknown as NodeJS.EventEmitter).once(name, listener as never);
  });
}

/**
 * Polls `check` until it returns true; resolves with the elapsed milliseconds.
 * Rejects when it is still false after `timeoutMs` (a generous bound, not a race).
 */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 20): Promise<number> {
  const startedAt = Date.now();
  for (;;) {
    if (await check()) return Date.now() - startedAt;
    if (Date.now() - startedAt > timeoutMs) throw new Error(`condition still false after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A plain promise-returning pause, for "still true after N ms" assertions only. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The `n` values of `scenario` visible to the side connection (committed data only). */
export async function visible(side: Connection, table: string, scenario: string): Promise<number[]> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT n FROM ${table} WHERE scenario = ? ORDER BY n`, [scenario]);
  return rows.map((row) => Number(row.n));
}

/** `CREATE TABLE` for the (scenario, n) tables most pool tests write to. */
export function scenarioTableDdl(table: string): string {
  return `CREATE TABLE ${table} (scenario VARCHAR(64) NOT NULL, n INT NOT NULL, PRIMARY KEY (scenario, n)) ENGINE=InnoDB`;
}

export { isRowLocked } from '../support/db';

/** Something that can run a query and return rows: a lease or a plain connection. */
interface Queryable {
  query(sql: string): Promise<[unknown, unknown]>;
}

export const SESSION_STATUS_SQL =
  "SHOW SESSION STATUS WHERE Variable_name IN ('Bytes_received', 'Com_admin_commands', 'Com_rollback', 'Questions')";

/** Bytes of one COM_QUERY packet carrying `sql` (4-byte header + command byte + text), ASCII only. */
export function comQueryBytes(sql: string): number {
  return 4 + 1 + Buffer.byteLength(sql);
}

/** The session's own counters (only that session can read them), read through `conn` itself. */
export async function sessionStatus(conn: Queryable): Promise<Record<string, number>> {
  const [rows] = (await conn.query(SESSION_STATUS_SQL)) as [Array<{ Variable_name: string; Value: string }>, unknown];
  const out: Record<string, number> = {};
  for (const row of rows) out[row.Variable_name] = Number(row.Value);
  return out;
}

/** The first column of the first row of `sql`, run through `conn`. */
export async function scalar(conn: Queryable, sql: string): Promise<unknown> {
  const [rows] = (await conn.query(sql)) as [Array<Record<string, unknown>>, unknown];
  const first = rows[0];
  if (first === undefined) return undefined;
  return Object.values(first)[0];
}

/**
 * A scenario table for this test file: created before its tests, dropped after,
 * with a side connection (another session) to look at it from outside.
 */
export function scenarioTable(prefix: string): { table: string; side: Connection; insert(scenario: string, n: number): string } {
  const table = uniqueTable(prefix);
  const side = createCoreConnection({ uri: mysqlUrl(), connectTimeout: 5_000 }).promise(); // commands wait for the handshake
  beforeAll(async () => {
    await side.query(scenarioTableDdl(table));
  });
  afterAll(async () => {
    await side.query(`DROP TABLE IF EXISTS ${table}`);
    await side.end();
  });
  return { table, side, insert: (scenario, n) => `INSERT INTO ${table} (scenario, n) VALUES ('${scenario}', ${n})` };
}
