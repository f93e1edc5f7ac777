/**
 * Helpers shared by the transaction tests (not a test file: jest only runs *.test.ts).
 * Everything observes the server from outside (a side connection) or waits on events
 * and bounded polls; nothing sleeps to win a race.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, type Pool, type PoolEventMap, type PoolOptions } from '../../src/index';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';

/** A pool on the test server (or on `url`), with extra options. */
export function testPool(extra: PoolOptions = {}, url: string = mysqlUrl()): Pool {
  return createPool({ uri: url, ...extra });
}

/** Resolves with the arguments of the next `name` event; rejects after `timeoutMs`. */
export function nextEvent<K extends keyof PoolEventMap>(pool: Pool, name: K, timeoutMs = 5_000): Promise<PoolEventMap[K]> {
  const emitter = pool as unknown as NodeJS.EventEmitter;
  return new Promise((resolve, reject) => {
    const listener = (...args: PoolEventMap[K]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(name, listener as never);
      reject(new Error(`no '${String(name)}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.once(name, listener as never);
  });
}

/** Every `name` event from now on, collected in order. */
export function collect<K extends keyof PoolEventMap>(pool: Pool, name: K): Array<PoolEventMap[K]> {
  const seen: Array<PoolEventMap[K]> = [];
  (pool as unknown as NodeJS.EventEmitter).on(name, (...args: PoolEventMap[K]) => seen.push(args));
  return seen;
}

/** Polls `check` until it is true; resolves with the elapsed ms; rejects after the (generous) bound. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 20): Promise<number> {
  const startedAt = Date.now();
  for (;;) {
    if (await check()) return Date.now() - startedAt;
    if (Date.now() - startedAt > timeoutMs) throw new Error(`condition still false after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}



/**
 * A side connection plus fresh tables, dropped at the end. Each test file makes one:
 * `const db = sideDb('handles')` at the top, `db.table()` inside a test.
 */
export function sideDb(prefix: string): {
  side: () => Connection;
  table: (rows?: number[]) => Promise<string>;
} {
  let side: Connection | undefined;
  const tables: string[] = [];
  beforeAll(async () => {
    side = await sideConnection();
  });
  afterAll(async () => {
    if (!side) return;
    for (const table of tables) await side.query(`DROP TABLE IF EXISTS ${table}`);
    await side.end();
  });
  return {
    side: () => {
      if (!side) throw new Error('side connection not open yet');
      return side;
    },
    /** A new `(id INT PRIMARY KEY, v INT)` InnoDB table, with rows `(id, 0)` for each given id. */
    table: async (rows: number[] = []) => {
      const name = uniqueTable(prefix);
      tables.push(name);
      await side!.query(`CREATE TABLE ${name} (id INT NOT NULL PRIMARY KEY, v INT NOT NULL DEFAULT 0) ENGINE=InnoDB`);
      for (const id of rows) await side!.query(`INSERT INTO ${name} (id, v) VALUES (?, 0)`, [id]);
      return name;
    },
  };
}

/** The ids committed in `table`, as another connection sees them. */
export async function ids(side: Connection, table: string): Promise<number[]> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table} ORDER BY id`);
  return rows.map((row) => Number(row.id));
}

/** The committed `v` of row `id`. */
export async function valueOf(side: Connection, table: string, id: number): Promise<number | undefined> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = ?`, [id]);
  return rows[0] === undefined ? undefined : Number(rows[0].v);
}

export { isRowLocked, threadAlive } from '../support/db';
export { deferred, rejection, settle } from '../support/async';


/**
 * InnoDB refreshes INFORMATION_SCHEMA.INNODB_TRX only when it was not read for 100 ms:
 * poll it less often than that, or it never changes.
 */
export const LOCK_POLL_MS = 150;

/** True while the thread's transaction waits for a row lock (poll with LOCK_POLL_MS). */
export async function waitingForLock(side: Connection, threadId: number): Promise<boolean> {
  const [rows] = await side.query<RowDataPacket[]>(
    "SELECT trx_state FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'",
    [threadId],
  );
  return rows.length > 0;
}

/** Something with `query` (a lease or a transaction). */
interface Queryable {
  query(sql: string): Promise<[unknown, unknown]>;
}

/** The session's `Questions` counter (statements the server received on that connection), read through `conn` itself. */
export async function questions(conn: Queryable): Promise<number> {
  const [rows] = (await conn.query("SHOW SESSION STATUS LIKE 'Questions'")) as [Array<{ Value: string }>, unknown];
  return Number(rows[0]!.Value);
}

/** The first column of the first row. */
export async function scalar(conn: Queryable, sql: string): Promise<unknown> {
  const [rows] = (await conn.query(sql)) as [Array<Record<string, unknown>>, unknown];
  return rows[0] === undefined ? undefined : Object.values(rows[0])[0];
}

/** The `code` of a rollback-pool error, or the `errno` of a server error, for compact assertions. */
export function codeOf(error: unknown): string | number | undefined {
  const e = error as { code?: unknown; errno?: unknown } | null;
  if (e && typeof e.code === 'string' && e.code.startsWith('ERR_')) return e.code;
  if (e && typeof e.errno === 'number') return e.errno;
  return e && typeof e.code === 'string' ? e.code : undefined;
}

export const ER_LOCK_WAIT_TIMEOUT = 1205;
export const ER_LOCK_DEADLOCK = 1213;
export const ER_QUERY_INTERRUPTED = 1317;
export const ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION = 1792;



/** The error of a settled outcome, or undefined when it resolved. */
export function errorOf(outcome: { ok: true } | { ok: false; error: unknown }): any {
  return outcome.ok ? undefined : outcome.error;
}
