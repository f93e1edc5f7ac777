/**
 * A lost handle (garbage collected while active) is abandoned by a FinalizationRegistry:
 * its connection is rolled back and returned, and `abandon` (reason 'garbage-collected')
 * says where the transaction began when `captureStacks` is on.
 *
 * jest's workers cannot call gc(), so the scenarios run in a child process:
 * `node --expose-gc --import tsx fixtures/gc-scenarios.ts <table>`, which prints JSON.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { mysqlUrl } from '../support/db';
import { sideDb } from './helpers';

const db = sideDb('tx_gc');

interface Scenarios {
  lostActiveHandle: {
    probeCollected: boolean;
    gcMs: number;
    rollbackMs: number;
    abandon?: { reason: string; stackNamesBeginSite: boolean };
    lockedBefore: boolean;
    lockedAfter: boolean;
    rows: number[];
    stats: Record<string, number>;
  };
  lostServerEndedHandle: { deadlockErrno: number; gcMs: number; statsAfterGc: Record<string, number>; acquire: string };
  staleHandleOnLiveLease: { gcMs: number; inTransactionBeforeCommit: number; nextStateBeforeCommit: string; commit: string; rows: number[] };
}

let out: Scenarios;

beforeAll(async () => {
  const table = await db.table([0, 10, 11]);
  const script = join(__dirname, 'fixtures', 'gc-scenarios.ts');
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', script, table],
      { cwd: join(__dirname, '..', '..'), env: { ...process.env, MYSQL_URL: mysqlUrl() }, timeout: 40_000 },
      (error, stdoutText, stderrText) => (error ? reject(new Error(`${error.message}\n${stderrText}`)) : resolve(stdoutText)),
    );
  });
  out = JSON.parse(stdout.trim().split('\n').pop()!) as Scenarios;
}, 45_000);

test('a lost active handle: abandoned (garbage-collected) with the stack where it began, rolled back, its lock freed, its connection returned', () => {
  const a = out.lostActiveHandle;
  expect(a.probeCollected).toBe(true);
  expect(a.gcMs).toBeGreaterThanOrEqual(0); // -1 would mean: no abandon within the 10 s bound
  expect(a.abandon).toEqual({ reason: 'garbage-collected', stackNamesBeginSite: true });
  expect(a.rollbackMs).toBeGreaterThanOrEqual(0);
  expect(a.lockedBefore).toBe(true);
  expect(a.lockedAfter).toBe(false);
  expect(a.rows).toEqual([0, 10, 11]); // row 1 never committed
  expect(a.stats).toMatchObject({ total: 1, idle: 1, leased: 0, pendingRollback: 0, abandoned: 1, rolledBack: 1, destroyed: 0 });
});

// Regression test (this was a bug): when the server ends a transaction (deadlock, DDL), Transaction.end('endedByServer')
// unregisters it from the FinalizationRegistry. A pool.begin() handle that then gets lost (the usual
// way: the 1213 error is thrown out of the function that held it) is never abandoned, so its lease
// is never released: the pool loses that connection for good (here: the second checkout times out).
test('a lost handle the server ended (deadlock) still gives its connection back', () => {
  const b = out.lostServerEndedHandle;
  expect(b.deadlockErrno).toBe(1213);
  expect(b.gcMs).toBeGreaterThanOrEqual(0); // the handle was collected
  expect({ acquire: b.acquire, leased: b.statsAfterGc.leased }).toEqual({ acquire: 'ok', leased: 0 });
});

// Regression test (this was a bug): a conn.begin() handle lost while active, on a lease that goes on being used.
// The next conn.begin() on that lease implicitly COMMITs the lost transaction (row 20), and when the
// lost handle is later collected, its finalizer queues a bare ROLLBACK on the lease, which rolls back
// the *new* transaction's work (row 21): next.commit() then resolves and commits nothing.
test('a lost conn.begin() handle, collected later, never commits its own rows nor rolls back its successor', () => {
  const c = out.staleHandleOnLiveLease;
  expect(c.gcMs).toBeGreaterThanOrEqual(0);
  expect({ rows: c.rows, commit: c.commit }).toEqual({ rows: [21], commit: 'ok' });
});
