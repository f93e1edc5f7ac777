/**
 * The ledger soak, short (~35 s of run time; `npm run soak -- --minutes N` runs the
 * long one with the same code, soak/run.ts). Workers run ledger transactions
 * through the fault proxy against a private MariaDB while every fault kind fires
 * (latency, drop, black hole, stall, cut mid-result, KILL, KILL QUERY, KILL during
 * BEGIN / COMMIT / the pending ROLLBACK) and the server is killed and restarted once.
 *
 * Checked: every acknowledged commit is present, nothing certainly-not-committed is,
 * no sampled checkout (nor the final sweep) finds its lease inside a transaction,
 * no unhandled rejection, the pool back at full size after every fault and after
 * the restart, nothing leased or pending at the end, heap flat, and no handle or
 * timer left after teardown. The summary is printed.
 */
import { END_KINDS } from '../../soak/ledger';
import { FAULT_KINDS } from '../../soak/faults';
import { formatSummary, runSoak } from '../../soak/run';

test('ledger soak under faults: no violation, every end kind and every fault exercised, recovery after a restart', async () => {
  const summary = await runSoak({ durationMs: 35_000, restartEveryMs: 17_000, workers: 6, connectionLimit: 4, faultIntervalMs: 350 });
  console.log(formatSummary(summary));

  expect(summary.violations).toEqual([]);

  // It did real work: each end kind ran, both certain outcomes occurred in numbers, unknowns stayed rare.
  // (About 700 transactions on an idle 2-core machine, 260 with the load average at 12: the floors leave room.)
  expect(summary.transactions).toBeGreaterThan(200);
  expect(summary.byOutcome.committed).toBeGreaterThan(50);
  expect(summary.byOutcome.notCommitted).toBeGreaterThan(50);
  expect(summary.byOutcome.unknown / summary.transactions).toBeLessThan(0.05);
  for (const kind of END_KINDS) {
    expect(Object.keys(summary.byKind).filter((key) => key.startsWith(`${kind}:`)).length).toBeGreaterThan(0);
  }
  expect(summary.ledger.committedPresent).toBe(summary.byOutcome.committed);
  expect(summary.ledger.notCommittedAbsent).toBe(summary.byOutcome.notCommitted);

  // Every fault kind fired, and the server restart was recovered from.
  for (const kind of FAULT_KINDS) expect([kind, summary.faults[kind] ?? 0]).not.toEqual([kind, 0]);
  expect(summary.restarts).toHaveLength(1);
  expect(summary.restarts[0]!.recoveryMs).toBeLessThan(15_000);

  // The probe really looked, InnoDB's view included.
  expect(summary.probe.sampled).toBeGreaterThan(50);
  expect(summary.probe.withInnodbTrx).toBeGreaterThan(10);
  expect(summary.probe.finalSweep).toBe(4);

  // Flat memory: the heap after GC at the end is within a few MB of the one after warm-up.
  expect(summary.heap.afterMB - summary.heap.beforeMB).toBeLessThan(16);
  expect(summary.unhandledRejections).toEqual([]);
  expect(summary.leakedResources).toEqual([]);
}, 150_000);
