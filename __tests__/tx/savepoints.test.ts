/**
 * Savepoints: `tx.begin()` opens one (named from the depth: rp_1, rp_2, ...), its
 * `commit()` releases it, its `rollback()` undoes only its own work (and that of the
 * savepoints inside it). A savepoint abandoned while its lease is still in use queues
 * `ROLLBACK TO SAVEPOINT` before the lease's next statement. `tx.transaction(fn)` runs
 * a callback in a savepoint.
 */
import type { Transaction } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { codeOf, ids, rejection, sideDb, testPool } from './helpers';
import { startProxy } from '../support/fault-proxy';

const db = sideDb('tx_savepoints');

/** The ids the transaction itself sees (its own uncommitted work included). */
async function seenBy(tx: Transaction, table: string): Promise<number[]> {
  const [rows] = await tx.query(`SELECT id FROM ${table} ORDER BY id`);
  return (rows as Array<{ id: number }>).map((row) => row.id);
}

function insert(table: string, id: number): string {
  return `INSERT INTO ${table} (id) VALUES (${id})`;
}

test('three deep, the middle one rolled back: its work and the innermost one\'s are undone, the rest commits', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    await tx.query(insert(table, 0));
    const sp1 = await tx.begin();
    await sp1.query(insert(table, 1));
    const sp2 = await sp1.begin();
    await sp2.query(insert(table, 2));
    const sp3 = await sp2.begin();
    await sp3.query(insert(table, 3));
    expect([sp1.depth, sp2.depth, sp3.depth]).toEqual([1, 2, 3]);
    expect(await seenBy(tx, table)).toEqual([0, 1, 2, 3]);

    await sp2.rollback();
    expect([tx.state, sp1.state, sp2.state, sp3.state]).toEqual(['active', 'active', 'rolledBack', 'rolledBack']);
    expect(await seenBy(tx, table)).toEqual([0, 1]);
    // The innermost handle is closed with its parent: nothing it sends reaches the server.
    expect(codeOf(await rejection(sp3.query(insert(table, 33))))).toBe('ERR_TX_CLOSED');
    expect(codeOf(await rejection(sp2.query(insert(table, 22))))).toBe('ERR_TX_CLOSED');

    await sp1.query(insert(table, 4));
    await sp1.commit();
    expect(sp1.state).toBe('committed');
    expect(await ids(db.side(), table)).toEqual([]); // a savepoint's commit is not a COMMIT
    await tx.commit();
    expect(await ids(db.side(), table)).toEqual([0, 1, 4]);
  } finally {
    await pool.end();
  }
});

test('a released savepoint\'s work still goes away if the outer transaction rolls back', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    const sp = await tx.begin();
    await sp.query(insert(table, 1));
    await sp.commit();
    await tx.rollback();
    expect(await ids(db.side(), table)).toEqual([]);
  } finally {
    await pool.end();
  }
});

test('the outer transaction rolling back closes its open savepoints', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    const sp = await tx.begin();
    const inner = await sp.begin();
    await inner.query(insert(table, 1));
    await tx.rollback();
    expect([tx.state, sp.state, inner.state]).toEqual(['rolledBack', 'rolledBack', 'rolledBack']);
    expect(codeOf(await rejection(inner.query(insert(table, 2))))).toBe('ERR_TX_CLOSED');
    expect(await ids(db.side(), table)).toEqual([]);
  } finally {
    await pool.end();
  }
});

// Regression test (this was a bug): the root's own COMMIT goes through send(), whose status check runs
// before commit() marks the root committed; it sees IN_TRANS = 0, takes it for a server-ended
// transaction and ends the root *and its open savepoints* as 'endedByServer'. commit() then
// overwrites the root's state with 'committed', but the savepoints stay 'endedByServer': their
// calls reject with ERR_TX_ENDED_BY_SERVER ("deadlock, lock wait timeout or implicit commit")
// instead of ERR_TX_CLOSED, and an `await using` savepoint then sends ROLLBACK TO SAVEPOINT
// after the COMMIT (asyncDispose rolls back an 'endedByServer' handle).
test('the outer transaction committing closes its open savepoints as committed', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    const sp = await tx.begin();
    const inner = await sp.begin();
    await inner.query(insert(table, 1));
    await tx.commit();
    expect(await ids(db.side(), table)).toEqual([1]);
    expect(codeOf(await rejection(inner.query(insert(table, 2))))).toBe('ERR_TX_CLOSED');
    expect([tx.state, sp.state, inner.state]).toEqual(['committed', 'committed', 'committed']);
  } finally {
    await pool.end();
  }
});

test('an abandoned savepoint, with a statement still in flight: ROLLBACK TO runs before the lease\'s next statement', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const conn = await pool.getConnection();
    const tx = await conn.begin();
    await tx.query(insert(table, 1));
    const sp = await tx.begin();
    const inFlight = sp.query(insert(table, 2)); // not awaited
    sp[Symbol.dispose]();
    expect(sp.state).toBe('abandoned');
    // Issued right away: mysql2 runs commands in order, so the queued ROLLBACK TO comes first.
    expect(await seenBy(tx, table)).toEqual([1]);
    await inFlight; // it did run, and was rolled back
    expect(codeOf(await rejection(sp.query(insert(table, 3))))).toBe('ERR_TX_ABANDONED');
    await tx.commit();
    conn.release();
    expect(await ids(db.side(), table)).toEqual([1]);
    expect(pool.stats()).toMatchObject({ abandoned: 0, idle: 1 });
  } finally {
    await pool.end();
  }
});

test('an abandoned savepoint whose ROLLBACK TO fails poisons the transaction: commit() refuses and rolls everything back', async () => {
  const table = await db.table();
  // The proxy turns the ROLLBACK TO into an error from the server.
  const proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql) => (sql.startsWith('ROLLBACK TO SAVEPOINT') ? { rewrite: "SIGNAL SQLSTATE 'HY000' SET MESSAGE_TEXT = 'injected'" } : 'forward'),
  });
  const pool = testPool({ connectionLimit: 1 }, proxy.url);
  try {
    const tx = await pool.begin();
    await tx.query(insert(table, 1));
    const sp = await tx.begin();
    await sp.query(insert(table, 2));
    sp[Symbol.dispose](); // queues ROLLBACK TO SAVEPOINT rp_1, which will fail
    await tx.query('SELECT 1'); // ran after it
    const error = await rejection(tx.commit());
    expect(codeOf(error)).toBe('ERR_ROLLBACK_FAILED');
    // Committing would have kept row 2, which its owner gave up on: nothing is committed.
    expect(await ids(db.side(), table)).toEqual([]);
    expect(tx.state).toBe('rolledBack');
  } finally {
    await pool.end();
    await proxy.close();
  }
});

describe('tx.transaction(fn): a callback in a savepoint', () => {
  test('resolves: kept; throws: only its own work is undone, the caller gets its error, the outer transaction goes on', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const result = await pool.transaction(async (tx) => {
        await tx.query(insert(table, 1));
        const kept = await tx.transaction(async (sp) => {
          await sp.query(insert(table, 2));
          return 'kept';
        });
        const boom = new Error('inner failure');
        const caught = await rejection(
          tx.transaction(async (sp) => {
            await sp.query(insert(table, 3));
            await sp.transaction(async (deeper) => {
              await deeper.query(insert(table, 4));
            });
            throw boom;
          }),
        );
        expect(caught).toBe(boom);
        expect(await seenBy(tx, table)).toEqual([1, 2]);
        await tx.query(insert(table, 5));
        return kept;
      });
      expect(result).toBe('kept');
      expect(await ids(db.side(), table)).toEqual([1, 2, 5]);
    } finally {
      await pool.end();
    }
  });
});

// Regression test (this was a bug): savepoint names come from the depth only, so two savepoints opened on the
// same parent (sequentially, or concurrently as in `Promise.all([tx.transaction(a), tx.transaction(b)])`)
// both get `rp_1`. The second SAVEPOINT moves the name, so the first one's rollback() only undoes
// the work done since the *second* savepoint: its own earlier row survives and is committed.
// Expected: either a unique name per savepoint, or tx.begin() rejects while a child is active.
test('two savepoints on the same parent: rolling back the first undoes all of its own work', async () => {
  const table = await db.table();
  const pool = testPool({ connectionLimit: 1 });
  try {
    const tx = await pool.begin();
    const first = await tx.begin();
    await first.query(insert(table, 1));
    const second = await beginOrUndefined(tx.begin());
    if (second) await second.query(insert(table, 2));
    await first.rollback();
    await tx.commit();
    expect(await ids(db.side(), table)).toEqual([]); // row 1 belonged to the rolled-back savepoint
  } finally {
    await pool.end();
  }
});

async function beginOrUndefined(promise: Promise<Transaction>): Promise<Transaction | undefined> {
  try {
    return await promise;
  } catch {
    return undefined; // rejecting the second begin() is an acceptable fix
  }
}
