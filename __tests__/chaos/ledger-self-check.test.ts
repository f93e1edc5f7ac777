/**
 * The soak's checks can fail: the same Ledger and CheckoutProbe (soak/), pointed at
 * mysql2's own pool, catch the bug rollback-pool exists to prevent. A transaction
 * released without COMMIT stays open on the connection; the next checkout's probe
 * finds it inside a transaction, and the next user's START TRANSACTION implicitly
 * commits it, so a certainly-not-committed token shows up in the table. The same
 * sequence on rollback-pool finds nothing.
 */
import { createPool as createMysql2Pool } from 'mysql2/promise';
import { Ledger, violationCount } from '../../soak/ledger';
import { CheckoutProbe } from '../../soak/workload';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { testPool } from '../tx/helpers';

interface LeaseLike {
  beginTransaction(): Promise<unknown>;
  query(sql: string, values?: unknown[]): Promise<unknown>;
  commit(): Promise<unknown>;
  release(): void;
}

/** One connection: A releases without commit, B's checkout is probed, B begins, writes, commits. */
async function scenario(getConnection: () => Promise<LeaseLike>): Promise<{ probeViolations: number; ledgerViolations: number; ghosts: number }> {
  const table = uniqueTable('chaos_selfcheck');
  const side = await sideConnection();
  try {
    await side.query(Ledger.ddl(table));
    const ledger = new Ledger(table);
    const probe = new CheckoutProbe(1, () => 0);

    const a = ledger.next('release');
    const connA = await getConnection();
    await connA.beginTransaction();
    await connA.query(ledger.insertSql, [a, 'release', 1]);
    connA.release();
    ledger.record(a, 'notCommitted', 'released without commit');

    await new Promise((resolve) => setTimeout(resolve, 200)); // INNODB_TRX's cache may refresh
    const b = ledger.next('connCommit');
    const connB = await getConnection();
    await probe.run(connB, 'getConnection');
    await connB.beginTransaction();
    await connB.query(ledger.insertSql, [b, 'connCommit', 2]);
    await connB.commit();
    connB.release();
    ledger.record(b, 'committed', 'conn.commit() resolved');

    const check = await ledger.check(side);
    return { probeViolations: probe.violationCount, ledgerViolations: violationCount(check), ghosts: check.notCommittedPresent };
  } finally {
    await side.query(`DROP TABLE IF EXISTS ${table}`);
    await side.end();
  }
}

test("mysql2's pool: the probe and the ledger both catch the leaked transaction", async () => {
  const pool = createMysql2Pool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const result = await scenario(() => pool.getConnection());
    expect(result).toEqual({ probeViolations: 1, ledgerViolations: 1, ghosts: 1 });
  } finally {
    await pool.end();
  }
});

test('rollback-pool: the same sequence finds nothing', async () => {
  const pool = testPool({ connectionLimit: 1 });
  try {
    const result = await scenario(() => pool.getConnection());
    expect(result).toEqual({ probeViolations: 0, ledgerViolations: 0, ghosts: 0 });
  } finally {
    await pool.end();
  }
});
