/**
 * The cost of one dirty release under `resetOnRelease: 'whenDirty'` (issue 14):
 * on a pool of one connection, a lease runs `SET @x = 1` and is released; the
 * next `getConnection()` is issued at once and waits for the reset. Samples:
 * the `reset` event's `durationMs`, and the time from the release to the next
 * lease in hand. Baselines: the same with a clean lease (`SELECT 1`), and
 * mysql2's `resetOnRelease: true` pool (which resets every release).
 */
import type { BenchPool, OurPool } from './contenders';
import { percentile } from './stats';

export interface ReleaseCostRow {
  label: string;
  trials: number;
  /** The `reset` event's durationMs (ours only). */
  resetP50Ms: number | undefined;
  resetP99Ms: number | undefined;
  /** From release() to the next getConnection() resolving. */
  nextP50Ms: number;
  nextP99Ms: number;
  note: string;
}

export async function releaseCostTrials(
  pool: BenchPool,
  trials: number,
  statement: string,
  resetEvents?: OurPool,
): Promise<{ next: number[]; reset: number[] }> {
  const reset: number[] = [];
  const onReset = (event: { durationMs: number }): void => {
    reset.push(event.durationMs);
  };
  resetEvents?.on('reset', onReset);
  const next: number[] = [];
  try {
    for (let trial = 0; trial < trials; trial++) {
      const lease = await pool.getConnection();
      await lease.query(statement);
      const releasedAt = performance.now();
      lease.release();
      const again = await pool.getConnection();
      next.push(performance.now() - releasedAt);
      again.release();
    }
  } finally {
    resetEvents?.off('reset', onReset);
  }
  return { next, reset };
}

export function summarizeCost(label: string, samples: { next: number[]; reset: number[] }, note: string): ReleaseCostRow {
  const hasReset = samples.reset.length > 0;
  return {
    label,
    trials: samples.next.length,
    resetP50Ms: hasReset ? percentile(samples.reset, 50) : undefined,
    resetP99Ms: hasReset ? percentile(samples.reset, 99) : undefined,
    nextP50Ms: percentile(samples.next, 50),
    nextP99Ms: percentile(samples.next, 99),
    note,
  };
}
