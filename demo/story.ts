/**
 * The demo's story, run the same way against any pool with mysql2/promise's
 * surface: one request abandons a transaction, two more use the pool after it,
 * and a separate connection observes what the server really holds.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';

/** The part of a pooled connection the story uses (mysql2's and ours both fit). */
export interface StoryConnection {
  beginTransaction(): Promise<void>;
  query(sql: string, values?: unknown[]): Promise<unknown>;
  commit(): Promise<void>;
  release(): void;
}

/** The part of a pool the story uses (mysql2's and ours both fit). */
export interface StoryPool {
  getConnection(): Promise<StoryConnection>;
  query(sql: string, values?: unknown[]): Promise<unknown>;
}

export interface StoryResult {
  /** (b) B's autocommit INSERT resolved, yet a separate connection cannot see it. */
  bLost: boolean;
  /** (c) Rows whose owner never committed them but that are visible (permanent). */
  ghostRows: number;
  /** (d) From A's release until a separate connection could lock A's row; undefined past the cap. */
  lockHeldMs: number | undefined;
  /** Who owns the rows left in the table at the end, in id order. */
  finalRows: string[];
}

/** Row ids are fixed so the story needs no insertId: A writes 1, B writes 2, C writes 3. */
const ROW = { A: 1, B: 2, C: 3 } as const;

/** mysql2's errno for a lock wait that timed out. */
const ER_LOCK_WAIT_TIMEOUT = 1205;

export async function createStoryTable(side: Connection, table: string): Promise<void> {
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, who VARCHAR(8) NOT NULL) ENGINE=InnoDB`);
}

/**
 * Runs the story on `pool` (which must have connectionLimit 1, so B and C get A's
 * connection) with `table` already created. `side` is a plain connection outside the pool.
 */
export async function runStory(pool: StoryPool, side: Connection, table: string, lockCapMs: number): Promise<StoryResult> {
  // (a) Request A: begins, inserts, and gives the connection back without COMMIT.
  const a = await pool.getConnection();
  await a.beginTransaction();
  await a.query(`INSERT INTO ${table} (id, who) VALUES (?, 'A')`, [ROW.A]);
  const releasedAt = performance.now();
  a.release();

  // (d) How long A's row stays locked while nobody else uses the pool.
  const lockHeldMs = await timeUntilRowLockable(side, table, ROW.A, releasedAt, lockCapMs);

  // (b) Request B: one autocommit INSERT through the pool; is it visible to everyone else?
  await pool.query(`INSERT INTO ${table} (id, who) VALUES (?, 'B')`, [ROW.B]);
  const bLost = !(await rowVisible(side, table, ROW.B));

  // (c) Request C: a transaction of its own, committed properly.
  const c = await pool.getConnection();
  try {
    await c.beginTransaction();
    await c.query(`INSERT INTO ${table} (id, who) VALUES (?, 'C')`, [ROW.C]);
    await c.commit();
  } finally {
    c.release();
  }

  const finalRows = await visibleOwners(side, table);
  // A is the only request that never committed; any row of A's still visible is a ghost.
  const ghostRows = finalRows.filter((who) => who === 'A').length;
  return { bLost, ghostRows, lockHeldMs, finalRows };
}

async function rowVisible(side: Connection, table: string, id: number): Promise<boolean> {
  const [rows] = await side.query<CountRow[]>(`SELECT COUNT(*) AS n FROM ${table} WHERE id = ?`, [id]);
  return Number(rows[0]?.n ?? 0) > 0;
}

async function visibleOwners(side: Connection, table: string): Promise<string[]> {
  const [rows] = await side.query<OwnerRow[]>(`SELECT who FROM ${table} ORDER BY id`);
  return rows.map((row) => String(row.who));
}

/**
 * Tries to lock row `id` from the side connection (a blocking `SELECT ... FOR
 * UPDATE`, innodb_lock_wait_timeout=1 on that session) until it succeeds or
 * `capMs` since `since` have passed. Resolves to the time from `since` to the
 * moment the lock was granted, or undefined when it was still held at the cap.
 */
export async function timeUntilRowLockable(side: Connection, table: string, id: number, since: number, capMs: number): Promise<number | undefined> {
  for (;;) {
    try {
      await side.query(`SELECT id FROM ${table} WHERE id = ? FOR UPDATE`, [id]);
      return performance.now() - since;
    } catch (error) {
      if (errno(error) !== ER_LOCK_WAIT_TIMEOUT) throw error;
      // Each attempt waits about 1 s; stop when another one would overshoot the cap.
      if (performance.now() - since > capMs - 500) return undefined;
    }
  }
}

function errno(error: unknown): number | undefined {
  const value = (error as { errno?: unknown } | null)?.errno;
  return typeof value === 'number' ? value : undefined;
}

interface CountRow extends RowDataPacket {
  n: number | string;
}
interface OwnerRow extends RowDataPacket {
  who: string;
}

/**
 * (f) Request D puts the acting user in a session variable (for audit triggers
 * and views) and gives the connection back; request E, on the same pooled
 * connection, reads it. Resolves to what E sees: null when nothing leaked.
 */
export async function runSessionVariableStory(pool: StoryPool): Promise<unknown> {
  const d = await pool.getConnection();
  await d.query('SET @current_user_id = ?', [7]);
  d.release();
  const e = await pool.getConnection();
  try {
    const [rows] = (await e.query('SELECT @current_user_id AS acting_user')) as [Array<{ acting_user: unknown }>];
    return rows[0]?.acting_user ?? null;
  } finally {
    e.release();
  }
}
