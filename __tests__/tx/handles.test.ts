/**
 * Transaction handles: `pool.begin()` (owns its connection), `conn.begin()` on a
 * lease (the lease stays the caller's), `commit()`, `rollback()`, `state`, and the
 * fence after the end: every call rejects with ERR_TX_CLOSED and sends nothing.
 */
import { hasCode, type Transaction } from '../../src/index';
import { codeOf, errorOf, ids, isRowLocked, questions, scalar, settle, sideDb, testPool } from './helpers';

const db = sideDb('tx_handles');

describe('pool.begin()', () => {
  test('commit: rows appear for others only at COMMIT, and the connection goes back to the pool', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 2 });
    try {
      const tx = await pool.begin();
      expect(tx.state).toBe('active');
      expect(pool.stats()).toMatchObject({ total: 1, leased: 1, idle: 0 });
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      await tx.execute(`INSERT INTO ${table} (id) VALUES (?)`, [2]);
      expect(await ids(db.side(), table)).toEqual([]); // not committed yet

      await tx.commit();
      expect(tx.state).toBe('committed');
      expect(await ids(db.side(), table)).toEqual([1, 2]);
      expect(pool.stats()).toMatchObject({ total: 1, leased: 0, idle: 1, abandoned: 0 });
    } finally {
      await pool.end();
    }
  });

  test('rollback: rows never appear, row locks are freed, and the connection goes back clean', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      const tx = await pool.begin();
      const threadId = tx.threadId;
      await tx.query(`UPDATE ${table} SET v = 7 WHERE id = 1`);
      await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
      expect(await isRowLocked(db.side(), table, 1)).toBe(true);

      await tx.rollback();
      expect(tx.state).toBe('rolledBack');
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);
      expect(await ids(db.side(), table)).toEqual([1]);
      // Same physical connection, not in a transaction, nothing counted as abandoned.
      expect(await scalar(pool, 'SELECT CONNECTION_ID()')).toBe(threadId);
      expect(await scalar(pool, 'SELECT @@in_transaction')).toBe(0);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, abandoned: 0, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });
});

describe('conn.begin() on a lease', () => {
  test('commit and rollback leave the lease usable, in autocommit mode', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      expect(tx.threadId).toBe(conn.threadId);
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      await tx.commit();
      expect(conn.isReleased).toBe(false);

      await conn.query(`INSERT INTO ${table} (id) VALUES (2)`); // autocommit: visible at once
      expect(await ids(db.side(), table)).toEqual([1, 2]);

      const tx2 = await conn.begin();
      await tx2.query(`INSERT INTO ${table} (id) VALUES (3)`);
      await tx2.rollback();
      expect(await scalar(conn, 'SELECT @@in_transaction')).toBe(0);
      await conn.query(`INSERT INTO ${table} (id) VALUES (4)`);
      expect(await ids(db.side(), table)).toEqual([1, 2, 4]);

      conn.release();
      expect(pool.stats()).toMatchObject({ idle: 1, abandoned: 0 });
    } finally {
      await pool.end();
    }
  });

  test('releasing the lease under an active handle abandons the transaction: rolled back, handle fenced', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      conn.release();

      const late = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (2)`));
      expect(late.ok).toBe(false);
      expect(codeOf(errorOf(late))).toBe('ERR_TX_ABANDONED');
      expect(tx.state).toBe('abandoned');

      await pool.query('SELECT 1'); // the next user of the only connection
      expect(await ids(db.side(), table)).toEqual([]);
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  // Regression test (this was a bug): a second begin() on a lease whose transaction handle is still active sends
  // START TRANSACTION, which makes the server implicitly COMMIT the first transaction. The first
  // handle still says 'active' and its rollback() "succeeds", but its rows are permanent: a commit
  // nobody asked for (contract 3). Expected: the second begin() rejects before sending anything
  // (or the first handle becomes endedByServer and its rows are rolled back).
  test('a second conn.begin() while a transaction is active never commits the first one', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      const first = await conn.begin();
      await first.query(`INSERT INTO ${table} (id) VALUES (1)`);
      const second = await settle(conn.begin());
      if (second.ok) await second.value.rollback();
      if (first.state === 'active') await first.rollback();
      conn.release();
      expect(await ids(db.side(), table)).toEqual([]); // row 1 was never committed by anyone
    } finally {
      await pool.end();
    }
  });
});

describe('after the end, every call rejects with ERR_TX_CLOSED and nothing reaches the server', () => {
  const calls: Array<[string, (tx: Transaction, table: string) => Promise<unknown>]> = [
    ['query', (tx, table) => tx.query(`INSERT INTO ${table} (id) VALUES (99)`)],
    ['execute', (tx, table) => tx.execute(`INSERT INTO ${table} (id) VALUES (?)`, [99])],
    ['commit', (tx) => tx.commit()],
    ['rollback', (tx) => tx.rollback()],
    ['begin (savepoint)', (tx) => tx.begin()],
    ['transaction (savepoint)', (tx, table) => tx.transaction(async (sp) => sp.query(`INSERT INTO ${table} (id) VALUES (99)`))],
  ];

  test.each(['commit', 'rollback'] as const)('after %s(), on a lease (server statement counter unchanged)', async (end) => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      await tx[end]();
      const before = await questions(conn);
      for (const [name, call] of calls) {
        const outcome = await settle(call(tx, table));
        expect({ name, ok: outcome.ok }).toEqual({ name, ok: false });
        expect({ name, code: codeOf(errorOf(outcome)) }).toEqual({ name, code: 'ERR_TX_CLOSED' });
        expect(hasCode(errorOf(outcome), 'ERR_TX_CLOSED')).toBe(true);
      }
      // Only the second SHOW STATUS itself reached the server.
      expect((await questions(conn)) - before).toBe(1);
      expect(tx.state).toBe(end === 'commit' ? 'committed' : 'rolledBack');
      conn.release();
      expect(await ids(db.side(), table)).toEqual(end === 'commit' ? [1] : []);
    } finally {
      await pool.end();
    }
  });

  test('after pool.begin() committed: the late INSERT would have run in autocommit on a pooled connection; it never appears', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const tx = await pool.begin();
      await tx.commit();
      const late = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (5)`));
      expect(codeOf(errorOf(late))).toBe('ERR_TX_CLOSED');
      expect(await ids(db.side(), table)).toEqual([]);
      expect(pool.stats()).toMatchObject({ idle: 1, leased: 0 });
    } finally {
      await pool.end();
    }
  });
});
