/**
 * Misuse, table-driven: every case is a named scenario of something a caller
 * gets wrong, and asserts two things:
 *
 * 1. the typed error: its class and stable `code` (a RollbackPoolError), or
 *    mysql2's own `code`/`errno` for a server error (passed through unchanged);
 * 2. nothing lost or left open: the row committed before the misuse is still
 *    there, the aborted work is not, no row lock is held, the pool is back to
 *    its idle count with nothing leased/waiting/pending, and every idle
 *    connection is outside any transaction (server status flags, INNODB_TRX).
 *
 * Covered here: bad options (pool and transaction), SQL errors inside
 * transactions, using a lease or a transaction after release/commit/rollback,
 * commit twice, release inside a callback transaction. Pool lifecycle misuse
 * (end(), wrong password, server down, exhaustion) is in lifecycle.test.ts.
 *
 * Existing files already cover the bare error of many of these cases
 * (options.test.ts, tx/begin-options.test.ts, pool/lease-fencing.test.ts,
 * tx/handles.test.ts); here each one also proves that nothing was lost or left open.
 */
import {
  createPool,
  InvalidOptionError,
  LeaseReleasedError,
  RollbackPoolError,
  TransactionAbandonedError,
  TransactionClosedError,
  type Pool,
  type PoolOptions,
  type Transaction,
} from '../../src/index';
import {
  expectNothingLeftOpen,
  expectPoolError,
  freshBase,
  misuseTable,
  rejection,
  settle,
  testPool,
  threadAlive,
  waitUntil,
  type Leftovers,
} from './helpers';

const db = misuseTable('misuse_bad_input');

// ---- the case table ------------------------------------------------------------------------------

interface Ctx {
  pool: Pool;
  table: string;
  /** The id of offset `n` in this case's range. */
  id(n: number): number;
  /** `INSERT` of offset `n`. */
  ins(n: number): string;
}

/** What the misuse must reject with. */
type Expected =
  | { pool: abstract new (...args: never[]) => Error; code: string; option?: string }
  | { mysql2: string; errno: number }
  | { plain: abstract new (...args: never[]) => Error; message: RegExp };

interface Case {
  name: string;
  options?: PoolOptions;
  /** Runs the misuse (offset 0 is already committed) and returns the error it produced. */
  run(ctx: Ctx): Promise<unknown>;
  error: Expected;
  /** What must be left: committed offsets (0 is the row committed before the misuse), idle count, counters. */
  left: Leftovers;
  /** Set when the case shows a bug: the test is `test.failing` and this names the bug. */
  bug?: string;
}

function expectError(error: unknown, expected: Expected): void {
  if ('pool' in expected) {
    expectPoolError(error, expected.pool, expected.code);
    if (expected.option !== undefined) expect(error).toMatchObject({ option: expected.option });
  } else if ('mysql2' in expected) {
    // mysql2's own error object, passed through unchanged (not wrapped in one of ours).
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(RollbackPoolError);
    expect(error).toMatchObject({ code: expected.mysql2, errno: expected.errno });
  } else {
    expect(error).toBeInstanceOf(expected.plain);
    expect(error).not.toBeInstanceOf(RollbackPoolError);
    expect(String((error as Error).message)).toMatch(expected.message);
  }
}

async function runCase(c: Case): Promise<void> {
  const table = db.table();
  const side = db.side();
  const base = freshBase();
  const pool = testPool({ connectionLimit: 1, ...c.options });
  const ctx: Ctx = { pool, table, id: (n) => base + n, ins: (n) => `INSERT INTO ${table} (id) VALUES (${base + n})` };
  try {
    await pool.query(ctx.ins(0)); // committed before the misuse: must survive it
    const error = await c.run(ctx);
    expectError(error, c.error);
    await expectNothingLeftOpen(pool, side, table, base, c.left);
    // Nothing left for end() to wait for (its own bound is 5 s): it finishes at once.
    const startedEnd = performance.now();
    await pool.end();
    expect(performance.now() - startedEnd).toBeLessThan(2_000);
  } finally {
    await pool.end();
  }
}

function register(title: string, cases: Case[]): void {
  describe(title, () => {
    const ok = cases.filter((c) => !c.bug);
    const buggy = cases.filter((c) => c.bug);
    if (ok.length) test.each(ok.map((c) => [c.name, c] as const))('%s', (_name, c) => runCase(c));
    // Known bugs (see each case's `bug`): these fail today; when fixed, jest reports them so the marker is removed.
    if (buggy.length) test.failing.each(buggy.map((c) => [c.name, c] as const))('%s [known bug]', (_name, c) => runCase(c));
  });
}

/** A callback that must never run. */
function never() {
  return jest.fn(async (_tx: Transaction) => 'ran');
}

// ---- bad options ---------------------------------------------------------------------------------

describe('bad pool options: createPool throws synchronously, by name, and opens nothing', () => {
  // [label, options, the option the error names]. options.test.ts checks the full list; here each kind
  // of check once, with the proof that nothing was started: no timer, no socket, no connect attempt.
  const cases: Array<[string, unknown, string]> = [
    ['an integer below its minimum (connectionLimit -1), with maxIdle < limit (which arms a trim timer)', { connectionLimit: -1, maxIdle: 1 }, 'connectionLimit'],
    ['a non-integer (leakDetectionMs 1.5)', { connectionLimit: 5, maxIdle: 1, leakDetectionMs: 1.5 }, 'leakDetectionMs'],
    ['zero where >= 1 is required (acquireTimeoutMs 0)', { connectionLimit: 5, maxIdle: 1, acquireTimeoutMs: 0 }, 'acquireTimeoutMs'],
    ["a boolean given as a string (captureStacks 'on')", { connectionLimit: 5, maxIdle: 1, captureStacks: 'on' }, 'captureStacks'],
    ["an enum outside its values (cleanup 'later')", { connectionLimit: 5, maxIdle: 1, cleanup: 'later' }, 'cleanup'],
    ['a typo (conectionLimit)', { conectionLimit: 5, maxIdle: 1 }, 'conectionLimit'],
    ['a port out of range', { port: 70000, maxIdle: 0 }, 'port'],
    ['an unknown charset (mysql2 refuses it)', { charset: 'NOPE', maxIdle: 0 }, 'connection options'],
    ['a URL without a mysql:// scheme', 'root:pw@127.0.0.1/test', 'uri'],
    ['a { uri } with another scheme', { uri: 'postgres://root@127.0.0.1/test' }, 'uri'],
    ['not an object', 7, 'options'],
  ];

  test.each(cases)('%s', (_label, options, option) => {
    const resourcesBefore = process.getActiveResourcesInfo();
    let thrown: unknown;
    let pool: Pool | undefined;
    try {
      pool = createPool(options as PoolOptions);
    } catch (error) {
      thrown = error;
    }
    // Nothing to clean up if it threw; if it did not, end it before failing.
    if (pool) void pool.end();
    expect(pool).toBeUndefined();
    expectPoolError(thrown, InvalidOptionError, 'ERR_INVALID_OPTION');
    expect(thrown).toMatchObject({ option });
    // Validation runs before anything is started: no trim timer, no socket, no connect.
    expect(process.getActiveResourcesInfo()).toEqual(resourcesBefore);
  });
});

register('bad transaction options: rejected before any SQL, and what was open stays usable', [
  {
    name: 'pool.begin({ isolationLevel: "CHAOS" }): no connection taken',
    run: async ({ pool }) => {
      const error = await rejection(pool.begin({ isolationLevel: 'CHAOS' as never }));
      expect(pool.stats()).toMatchObject({ leased: 0, total: 1 });
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'isolationLevel' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.transaction(fn, { timeout: 100 }) (a typo of timeoutMs): fn never runs',
    run: async ({ pool }) => {
      const fn = never();
      const error = await rejection(pool.transaction(fn, { timeout: 100 } as never));
      expect(fn).not.toHaveBeenCalled();
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'timeout' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.transaction(fn, { retries: 1.5 }): fn never runs',
    run: async ({ pool }) => {
      const fn = never();
      const error = await rejection(pool.transaction(fn, { retries: 1.5 }));
      expect(fn).not.toHaveBeenCalled();
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'retries' },
    left: { committed: [0], idle: 1 },
  },
  {
    name: 'pool.transaction("not a function")',
    run: ({ pool }) => rejection(pool.transaction('not a function' as never)),
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'fn' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'conn.transaction(fn, { onTimeout: "explode" }): fn never runs, the lease stays out of any transaction',
    run: async ({ pool }) => {
      const conn = await pool.getConnection();
      const fn = never();
      const error = await rejection(conn.transaction(fn, { onTimeout: 'explode' as never }));
      expect(fn).not.toHaveBeenCalled();
      conn.release();
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'onTimeout' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'conn.begin({ readOnly: "yes" }) while a transaction is active on the lease: the active one is not superseded',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      const first = await conn.begin();
      await first.query(ins(1));
      const error = await rejection(conn.begin({ readOnly: 'yes' as never }));
      expect(first.state).toBe('active');
      await first.query(ins(2)); // still inside the first transaction
      await first.commit();
      conn.release();
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'readOnly' },
    left: { committed: [0, 1, 2], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'tx.transaction(fn, { timeoutMs: -1 }) (a savepoint): the outer transaction stays active and commits',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const fn = never();
      const error = await rejection(tx.transaction(fn, { timeoutMs: -1 }));
      expect(fn).not.toHaveBeenCalled();
      expect(tx.state).toBe('active');
      await tx.commit();
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'timeoutMs' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'tx.transaction(fn, { retries: 3 }) (a savepoint is not retried alone): rejects naming the key, the outer transaction commits',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const fn = never();
      const error = await rejection(tx.transaction(fn, { retries: 3 } as never));
      expect(fn).not.toHaveBeenCalled();
      expect(tx.state).toBe('active');
      await tx.commit();
      return error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'retries' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin({ isolationLevl: "SERIALIZABLE" }) (a typo): rejects naming the key',
    run: async ({ pool }) => {
      const outcome = await settle(pool.begin({ isolationLevl: 'SERIALIZABLE' } as never));
      if (outcome.ok) await outcome.value.rollback();
      return outcome.ok ? new Error('pool.begin() resolved') : outcome.error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'isolationLevl' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'conn.begin({ timeoutMs: 50 }) (a runner-only option on a handle): rejects naming the key',
    run: async ({ pool }) => {
      const conn = await pool.getConnection();
      const outcome = await settle(conn.begin({ timeoutMs: 50 } as never));
      if (outcome.ok) await outcome.value.rollback();
      conn.release();
      return outcome.ok ? new Error('conn.begin() resolved') : outcome.error;
    },
    error: { pool: InvalidOptionError, code: 'ERR_INVALID_OPTION', option: 'timeoutMs' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
]);

// ---- SQL errors inside transactions -------------------------------------------------------------

register("SQL errors inside transactions: mysql2's error, and the transaction's fate is the caller's", [
  {
    name: 'pool.transaction: ER_DUP_ENTRY thrown out of the callback rolls back everything it did',
    run: ({ pool, ins }) =>
      rejection(
        pool.transaction(async (tx) => {
          await tx.query(ins(1));
          await tx.query(ins(0)); // duplicate of the committed row
        }),
      ),
    error: { mysql2: 'ER_DUP_ENTRY', errno: 1062 },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.transaction: the callback catches ER_PARSE_ERROR and goes on; its other writes commit',
    run: async ({ pool, ins }) => {
      let caught: unknown;
      await pool.transaction(async (tx) => {
        await tx.query(ins(1));
        caught = await rejection(tx.query('SELEC 1'));
        await tx.query(ins(2));
      });
      return caught;
    },
    error: { mysql2: 'ER_PARSE_ERROR', errno: 1064 },
    left: { committed: [0, 1, 2], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin: ER_NO_SUCH_TABLE leaves the transaction active; commit keeps the earlier write',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const error = await rejection(tx.query('INSERT INTO rp_no_such_table_here (id) VALUES (1)'));
      expect(tx.state).toBe('active');
      await tx.commit();
      return error;
    },
    error: { mysql2: 'ER_NO_SUCH_TABLE', errno: 1146 },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin: ER_DUP_ENTRY then rollback(): nothing of the transaction is kept',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const error = await rejection(tx.execute(ins(0)));
      await tx.rollback();
      return error;
    },
    error: { mysql2: 'ER_DUP_ENTRY', errno: 1062 },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'raw conn.beginTransaction(): ER_BAD_FIELD_ERROR, then release without commit: the pool rolls it back',
    run: async ({ pool, ins, table }) => {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(ins(1));
      const error = await rejection(conn.query(`UPDATE ${table} SET no_such_column = 1`));
      conn.release();
      return error;
    },
    error: { mysql2: 'ER_BAD_FIELD_ERROR', errno: 1054 },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: 'readOnly transaction: a write fails with 1792; commit keeps nothing, the next user can write',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin({ readOnly: true });
      const error = await rejection(tx.query(ins(1)));
      await tx.commit();
      await pool.query(ins(2)); // the same (only) connection, no longer read-only
      return error;
    },
    error: { mysql2: 'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION', errno: 1792 },
    left: { committed: [0, 2], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'savepoint callback throws ER_DUP_ENTRY: only the savepoint is undone, the outer transaction commits',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const error = await rejection(
        tx.transaction(async (sp) => {
          await sp.query(ins(2));
          await sp.query(ins(0));
        }),
      );
      expect(tx.state).toBe('active');
      await tx.commit();
      return error;
    },
    error: { mysql2: 'ER_DUP_ENTRY', errno: 1062 },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.transaction: execute() with an undefined bind value (mysql2 refuses it before sending) rolls back',
    run: ({ pool, ins, table }) =>
      rejection(
        pool.transaction(async (tx) => {
          await tx.query(ins(1));
          await tx.execute(`INSERT INTO ${table} (id, v) VALUES (?, ?)`, [999_999, undefined] as never);
        }),
      ),
    error: { plain: TypeError, message: /undefined/ },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
]);

// ---- use after release / commit / rollback --------------------------------------------------------

register('a lease or a transaction used after its end: typed error, nothing sent, nothing revived', [
  {
    name: 'lease released inside a raw transaction, then old.commit(): cannot commit the abandoned work',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query(ins(1));
      conn.release();
      return rejection(conn.commit());
    },
    error: { pool: LeaseReleasedError, code: 'ERR_LEASE_RELEASED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: 'lease released, then old.begin()',
    run: async ({ pool }) => {
      const conn = await pool.getConnection();
      conn.release();
      return rejection(conn.begin());
    },
    error: { pool: LeaseReleasedError, code: 'ERR_LEASE_RELEASED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'lease released, then old.transaction(fn): fn never runs',
    run: async ({ pool }) => {
      const conn = await pool.getConnection();
      conn.release();
      const fn = never();
      const error = await rejection(conn.transaction(fn));
      expect(fn).not.toHaveBeenCalled();
      return error;
    },
    error: { pool: LeaseReleasedError, code: 'ERR_LEASE_RELEASED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: "lease released, then old.execute(INSERT) while the next user is in a transaction: the next user's work is intact",
    run: async ({ pool, ins }) => {
      const old = await pool.getConnection();
      old.release();
      const next = await pool.getConnection();
      expect(next.threadId).toBe(old.threadId);
      await next.beginTransaction();
      await next.query(ins(2));
      const error = await rejection(old.execute(ins(1)));
      await next.commit();
      next.release();
      return error;
    },
    error: { pool: LeaseReleasedError, code: 'ERR_LEASE_RELEASED' },
    left: { committed: [0, 2], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin committed, then tx.rollback(): the committed rows stay',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      await tx.commit();
      return rejection(tx.rollback());
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin committed, then tx.query(INSERT): never runs in autocommit',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      await tx.commit();
      return rejection(tx.query(ins(2)));
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin rolled back, then tx.commit(): nothing is committed',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      await tx.rollback();
      return rejection(tx.commit());
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'pool.begin rolled back, then tx.begin() (a savepoint)',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      await tx.rollback();
      return rejection(tx.begin());
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: 'conn.begin, conn.release(), then tx.commit(): the abandoned transaction is not committed',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      await tx.query(ins(1));
      conn.release();
      return rejection(tx.commit());
    },
    error: { pool: TransactionAbandonedError, code: 'ERR_TX_ABANDONED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: 'a savepoint released (sp.commit()), then sp.query(INSERT): the outer transaction is unaffected',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      const sp = await tx.begin();
      await sp.query(ins(1));
      await sp.commit();
      const error = await rejection(sp.query(ins(2)));
      await tx.commit();
      return error;
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: "pool.transaction's tx kept and used after the callback committed",
    run: async ({ pool, ins }) => {
      const kept = await pool.transaction(async (tx) => {
        await tx.query(ins(1));
        return tx;
      });
      return rejection(kept.query(ins(2)));
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: "pool.transaction's tx kept and used after the callback threw (rolled back)",
    run: async ({ pool, ins }) => {
      let kept: Transaction | undefined;
      await rejection(
        pool.transaction(async (tx) => {
          kept = tx;
          await tx.query(ins(1));
          throw new Error('give up');
        }),
      );
      return rejection(kept!.query(ins(2)));
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 0 } },
  },
  {
    name: '`using tx = await pool.begin()` left without commit, then tx.query(INSERT)',
    run: async ({ pool, ins }) => {
      let escaped: Transaction | undefined;
      {
        using tx = await pool.begin();
        await tx.query(ins(1));
        escaped = tx;
      }
      return rejection(escaped.query(ins(2)));
    },
    error: { pool: TransactionAbandonedError, code: 'ERR_TX_ABANDONED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
]);

// ---- commit twice --------------------------------------------------------------------------------

register('commit twice', [
  {
    name: 'pool.begin: commit() then commit() again',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      await tx.commit();
      return rejection(tx.commit());
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0, rolledBack: 0 } },
  },
  {
    name: 'conn.begin: commit() then commit() again; the lease stays usable in autocommit',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      await tx.query(ins(1));
      await tx.commit();
      const error = await rejection(tx.commit());
      await conn.query(ins(2));
      conn.release();
      return error;
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1, 2], idle: 1, counters: { abandoned: 0, rolledBack: 0 } },
  },
  {
    name: 'pool.begin: two commit() calls at once: one COMMIT, no abandon reported',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const [first, second] = await Promise.all([settle(tx.commit()), settle(tx.commit())]);
      expect(first.ok).toBe(true);
      expect(second.ok || second.error?.code === 'ERR_TX_CLOSED').toBe(true);
      return second.ok ? new TransactionClosedError('commit', 'committed') : second.error;
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0, rolledBack: 0 } },
  },
  {
    name: 'pool.begin: rollback() while commit() is in flight does not claim to have rolled back',
    run: async ({ pool, ins }) => {
      const tx = await pool.begin();
      await tx.query(ins(1));
      const [commit, rollback] = await Promise.all([settle(tx.commit()), settle(tx.rollback())]);
      expect(commit.ok).toBe(true);
      return rollback.ok ? new Error('rollback() resolved after the COMMIT was sent') : rollback.error;
    },
    error: { pool: TransactionClosedError, code: 'ERR_TX_CLOSED' },
    left: { committed: [0, 1], idle: 1, counters: { abandoned: 0, rolledBack: 0 } },
  },
]);

// ---- release inside a callback transaction --------------------------------------------------------

register('release inside a callback transaction: the transaction is abandoned, never committed', [
  {
    name: 'conn.transaction: conn.release() inside, then the callback resolves: the commit is refused',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      return rejection(
        conn.transaction(async (tx) => {
          await tx.query(ins(1));
          conn.release();
        }),
      );
    },
    error: { pool: TransactionAbandonedError, code: 'ERR_TX_ABANDONED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: 'conn.transaction: conn.release() inside, then another statement: fenced, nothing sent',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      return rejection(
        conn.transaction(async (tx) => {
          await tx.query(ins(1));
          conn.release();
          await tx.query(ins(2));
        }),
      );
    },
    error: { pool: TransactionAbandonedError, code: 'ERR_TX_ABANDONED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: "conn.transaction: conn.release() inside, then the callback throws: the caller gets the callback's error",
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      return rejection(
        conn.transaction(async (tx) => {
          await tx.query(ins(1));
          conn.release();
          throw new RangeError('callback gave up');
        }),
      );
    },
    error: { plain: RangeError, message: /callback gave up/ },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: 'tx.transaction (a savepoint): conn.release() inside: the whole transaction is abandoned',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      const tx = await conn.begin();
      await tx.query(ins(1));
      const error = await rejection(
        tx.transaction(async (sp) => {
          await sp.query(ins(2));
          conn.release();
        }),
      );
      expect((await settle(tx.commit())).ok).toBe(false);
      return error;
    },
    error: { pool: TransactionAbandonedError, code: 'ERR_TX_ABANDONED' },
    left: { committed: [0], idle: 1, counters: { abandoned: 1, rolledBack: 1 } },
  },
  {
    name: 'conn.transaction: conn.destroy() inside: refused, the connection is closed on the server',
    run: async ({ pool, ins }) => {
      const conn = await pool.getConnection();
      const threadId = conn.threadId;
      const error = await rejection(
        conn.transaction(async (tx) => {
          await tx.query(ins(1));
          conn.destroy();
        }),
      );
      await waitUntil('the destroyed connection to leave the server', async () => !(await threadAlive(db.side(), threadId)));
      return error;
    },
    error: { pool: TransactionAbandonedError, code: 'ERR_TX_ABANDONED' },
    left: { committed: [0], idle: 0, counters: { destroyed: 1, abandoned: 0 } },
  },
]);
