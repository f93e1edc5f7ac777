/**
 * Begin options: `isolationLevel` (the four SQL levels), `readOnly`, `consistentSnapshot`,
 * checked by what a user relies on (what the transaction sees, what it locks, what it may
 * write), and validated against a fixed list before any SQL is sent (ERR_INVALID_OPTION).
 */
import type { Connection } from 'mysql2/promise';
import type { BeginOptions, PoolConnection } from '../../src/index';
import {
  ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
  codeOf,
  errorOf,
  isRowLocked,

  questions,
  scalar,
  settle,
  sideDb,
  testPool,
} from './helpers';

const db = sideDb('tx_begin_opts');

async function count(conn: { query(sql: string): Promise<[unknown, unknown]> }, table: string): Promise<number> {
  return Number(await scalar(conn, `SELECT COUNT(*) FROM ${table}`));
}

/** Runs `fn` with a lease of a fresh one-connection pool. */
async function withLease(fn: (conn: PoolConnection) => Promise<void>): Promise<void> {
  const pool = testPool({ connectionLimit: 1 });
  try {
    const conn = await pool.getConnection();
    try {
      await fn(conn);
    } finally {
      conn.release();
    }
  } finally {
    await pool.end();
  }
}

describe('isolationLevel', () => {
  test('READ UNCOMMITTED sees another transaction\'s uncommitted row (dirty read)', async () => {
    const table = await db.table();
    const other: Connection = db.side();
    await withLease(async (conn) => {
      await other.query('START TRANSACTION');
      try {
        await other.query(`INSERT INTO ${table} (id) VALUES (1)`);
        const tx = await conn.begin({ isolationLevel: 'READ UNCOMMITTED' });
        expect(await count(tx, table)).toBe(1);
        await tx.rollback();
        const control = await conn.begin({ isolationLevel: 'READ COMMITTED' });
        expect(await count(control, table)).toBe(0);
        await control.rollback();
      } finally {
        await other.query('ROLLBACK');
      }
    });
  });

  test.each([
    ['READ COMMITTED', 1],
    ['REPEATABLE READ', 0],
  ] as const)('%s: a row committed by another connection after the first read is seen %i time(s)', async (level, seen) => {
    const table = await db.table();
    await withLease(async (conn) => {
      const tx = await conn.begin({ isolationLevel: level });
      expect(await count(tx, table)).toBe(0); // first read: the snapshot of REPEATABLE READ starts here
      await db.side().query(`INSERT INTO ${table} (id) VALUES (1)`);
      expect(await count(tx, table)).toBe(seen);
      await tx.commit();
    });
  });

  test('SERIALIZABLE: a plain SELECT takes a shared lock that blocks a writer', async () => {
    const table = await db.table([1]);
    await withLease(async (conn) => {
      const tx = await conn.begin({ isolationLevel: 'SERIALIZABLE' });
      await tx.query(`SELECT v FROM ${table} WHERE id = 1`);
      expect(await isRowLocked(db.side(), table, 1)).toBe(true);
      await tx.commit();
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);

      // Control: the same SELECT in a default transaction locks nothing.
      const plain = await conn.begin();
      await plain.query(`SELECT v FROM ${table} WHERE id = 1`);
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);
      await plain.commit();
    });
  });

  test('the level applies to that transaction only: the next one on the same connection is back to the default', async () => {
    const table = await db.table([1]);
    await withLease(async (conn) => {
      const tx = await conn.begin({ isolationLevel: 'SERIALIZABLE' });
      await tx.commit();
      const next = await conn.begin();
      await next.query(`SELECT v FROM ${table} WHERE id = 1`);
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);
      await next.commit();
    });
  });

  test('pool.begin() and pool.transaction() apply it too', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 2 });
    try {
      const tx = await pool.begin({ isolationLevel: 'SERIALIZABLE' });
      await tx.query(`SELECT v FROM ${table} WHERE id = 1`);
      expect(await isRowLocked(db.side(), table, 1)).toBe(true);
      await tx.rollback();

      const locked = await pool.transaction(
        async (t) => {
          await t.query(`SELECT v FROM ${table} WHERE id = 1`);
          return isRowLocked(db.side(), table, 1);
        },
        { isolationLevel: 'SERIALIZABLE' },
      );
      expect(locked).toBe(true);
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);
    } finally {
      await pool.end();
    }
  });
});

describe('readOnly and consistentSnapshot', () => {
  test('readOnly: writes are refused by the server (1792), reads work, and the transaction stays usable', async () => {
    const table = await db.table([1]);
    await withLease(async (conn) => {
      const tx = await conn.begin({ readOnly: true });
      const write = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (2)`));
      expect(codeOf(errorOf(write))).toBe(ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION);
      expect(await count(tx, table)).toBe(1);
      expect(tx.state).toBe('active');
      await tx.commit();
      // The next transaction on that connection is read-write again.
      const rw = await conn.begin();
      await rw.query(`INSERT INTO ${table} (id) VALUES (3)`);
      await rw.commit();
      expect(await count(db.side(), table)).toBe(2);
    });
  });

  test('consistentSnapshot: the snapshot is taken at BEGIN, not at the first read', async () => {
    const table = await db.table();
    await withLease(async (conn) => {
      const snap = await conn.begin({ consistentSnapshot: true });
      await db.side().query(`INSERT INTO ${table} (id) VALUES (1)`);
      expect(await count(snap, table)).toBe(0);
      await snap.commit();

      // Control: without it, REPEATABLE READ's snapshot starts at the first read and sees the row.
      const lazy = await conn.begin();
      await db.side().query(`INSERT INTO ${table} (id) VALUES (2)`);
      expect(await count(lazy, table)).toBe(2);
      await lazy.commit();
    });
  });

  test('all three together', async () => {
    const table = await db.table();
    await withLease(async (conn) => {
      const tx = await conn.begin({ isolationLevel: 'REPEATABLE READ', readOnly: true, consistentSnapshot: true });
      await db.side().query(`INSERT INTO ${table} (id) VALUES (1)`);
      expect(await count(tx, table)).toBe(0);
      const write = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (2)`));
      expect(codeOf(errorOf(write))).toBe(ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION);
      await tx.commit();
    });
  });
});

describe('validation: ERR_INVALID_OPTION before any SQL is sent', () => {
  const invalid: Array<[string, unknown]> = [
    ['an unknown level', { isolationLevel: 'CHAOS' }],
    ['a lower-case level', { isolationLevel: 'read committed' }],
    ['SQL spliced into the level', { isolationLevel: "READ COMMITTED; DROP TABLE users; --" }],
    ['readOnly as a string', { readOnly: 'yes' }],
    ['consistentSnapshot as a number', { consistentSnapshot: 1 }],
    ['null options', null],
  ];

  test.each(invalid)('pool.begin() with %s: rejects without even opening a connection', async (_name, options) => {
    const pool = testPool({ connectionLimit: 1 });
    try {
      const outcome = await settle(pool.begin(options as BeginOptions));
      expect(codeOf(errorOf(outcome))).toBe('ERR_INVALID_OPTION');
      expect(pool.stats().total).toBe(0);
    } finally {
      await pool.end();
    }
  });

  test.each(invalid)('conn.begin() with %s: rejects, and the connection received no statement', async (_name, options) => {
    await withLease(async (conn) => {
      const before = await questions(conn);
      const outcome = await settle(conn.begin(options as BeginOptions));
      expect(codeOf(errorOf(outcome))).toBe('ERR_INVALID_OPTION');
      expect((await questions(conn)) - before).toBe(1); // only the second SHOW STATUS
      expect(await scalar(conn, 'SELECT @@in_transaction')).toBe(0);
    });
  });

  test.each(invalid.filter(([, options]) => options !== null))(
    'pool.transaction() with %s: rejects, the callback never runs, no connection is opened',
    async (_name, options) => {
      const pool = testPool({ connectionLimit: 1 });
      try {
        const fn = jest.fn(async () => 'ran');
        const outcome = await settle(pool.transaction(fn, options as BeginOptions));
        expect(codeOf(errorOf(outcome))).toBe('ERR_INVALID_OPTION');
        expect(fn).not.toHaveBeenCalled();
        expect(pool.stats().total).toBe(0);
      } finally {
        await pool.end();
      }
    },
  );

  // Regression test (this was a bug): pool.transaction(fn, null) rejects with a TypeError ("Cannot destructure
  // property 'timeoutMs' of 'options' as it is null") from run.ts validate(), not ERR_INVALID_OPTION
  // as pool.begin(null) and conn.begin(null) do.
  test('pool.transaction(fn, null) rejects with ERR_INVALID_OPTION like pool.begin(null)', async () => {
    const pool = testPool({ connectionLimit: 1 });
    try {
      const fn = jest.fn(async () => 'ran');
      const outcome = await settle(pool.transaction(fn, null as never));
      expect(fn).not.toHaveBeenCalled();
      expect(pool.stats().total).toBe(0);
      expect(codeOf(errorOf(outcome))).toBe('ERR_INVALID_OPTION');
    } finally {
      await pool.end();
    }
  });

  test.each([
    ['timeoutMs: 0', { timeoutMs: 0 }],
    ['timeoutMs: 1.5', { timeoutMs: 1.5 }],
    ['onTimeout: "explode"', { onTimeout: 'explode' }],
    ['retries: -1', { retries: -1 }],
    ['signal: not an AbortSignal', { signal: { aborted: false } }],
  ])('runner option %s: rejects, the callback never runs, no connection is opened', async (_name, options) => {
    const pool = testPool({ connectionLimit: 1 });
    try {
      const fn = jest.fn(async () => 'ran');
      const outcome = await settle(pool.transaction(fn, options as never));
      expect(codeOf(errorOf(outcome))).toBe('ERR_INVALID_OPTION');
      expect(fn).not.toHaveBeenCalled();
      expect(pool.stats().total).toBe(0);
    } finally {
      await pool.end();
    }
  });
});
