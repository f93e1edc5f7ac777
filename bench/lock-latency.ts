/**
 * How long the row lock of an abandoned transaction outlives its release.
 *
 * A trial: a lease begins a transaction, `UPDATE`s row 1 (taking its lock) and
 * is released without COMMIT; at once a separate connection issues a blocking
 * `SELECT ... FOR UPDATE` on that row (innodb_lock_wait_timeout=1 on that
 * session). The sample is the time from the release to that SELECT returning,
 * so it includes one round trip of the observer: the baseline row measures
 * that round trip alone, on a row nobody holds.
 */
import type { Connection } from 'mysql2/promise';
import type { BenchPool } from './contenders';
import { percentile } from './stats';

/** mysql2's errno for a lock wait that timed out. */
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ROW_ID = 1;

export interface LockLatencyRow {
  label: string;
  trials: number;
  /** Milliseconds from release to the row being lockable; undefined when it never was within 1 s. */
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  /** Trials in which the lock was still held after the 1 s lock wait timeout. */
  heldPastTimeout: number;
  note: string;
}

export async function createLockTable(side: Connection, table: string): Promise<void> {
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  await side.query(`INSERT INTO ${table} (id, v) VALUES (?, 0)`, [ROW_ID]);
}

export interface TrialOptions {
  /** Issue the next `getConnection()` right after the abandoning release (and release it when it arrives). */
  nextCheckout: boolean;
  /** After a trial, how to make the pool clean again when the lock was still held (lazy pools). */
  repair?: (pool: BenchPool) => Promise<void>;
}

/** Runs `trials` abandon-then-lock trials; samples of undefined mean "still held after 1 s". */
export async function abandonTrials(pool: BenchPool, side: Connection, table: string, trials: number, options: TrialOptions): Promise<Array<number | undefined>> {
  const samples: Array<number | undefined> = [];
  for (let trial = 0; trial < trials; trial++) {
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    await conn.execute(`UPDATE ${table} SET v = v + 1 WHERE id = ?`, [ROW_ID]);
    const releasedAt = performance.now();
    conn.release();
    const next = options.nextCheckout ? pool.getConnection() : undefined;
    const sample = await lockRow(side, table, releasedAt);
    samples.push(sample);
    if (next) (await next).release();
    if (sample === undefined && options.repair) await options.repair(pool);
  }
  return samples;
}

/** The observer's round trip for the same SELECT ... FOR UPDATE on a row nobody holds. */
export async function baselineTrials(side: Connection, table: string, trials: number): Promise<number[]> {
  const samples: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const sample = await lockRow(side, table, performance.now());
    if (sample === undefined) throw new Error('the benchmark row is locked by someone else');
    samples.push(sample);
  }
  return samples;
}

export function summarize(label: string, samples: ReadonlyArray<number | undefined>, note: string): LockLatencyRow {
  const freed = samples.filter((sample): sample is number => sample !== undefined);
  const heldPastTimeout = samples.length - freed.length;
  const allFreed = heldPastTimeout === 0;
  return {
    label,
    trials: samples.length,
    p50Ms: allFreed ? percentile(freed, 50) : undefined,
    p99Ms: allFreed ? percentile(freed, 99) : undefined,
    heldPastTimeout,
    note,
  };
}

async function lockRow(side: Connection, table: string, since: number): Promise<number | undefined> {
  try {
    await side.query(`SELECT id FROM ${table} WHERE id = ? FOR UPDATE`, [ROW_ID]);
    return performance.now() - since;
  } catch (error) {
    if ((error as { errno?: unknown } | null)?.errno === ER_LOCK_WAIT_TIMEOUT) return undefined;
    throw error;
  }
}
