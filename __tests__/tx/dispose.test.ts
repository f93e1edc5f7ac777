/**
 * Explicit resource management: `using tx` ([Symbol.dispose]) abandons a still active
 * transaction: it flags and returns, synchronously, and never throws; the pool rolls
 * it back in the background. `await using tx` ([Symbol.asyncDispose]) rolls it back
 * before the block is left and lets a rollback error surface.
 */
import { codeOf, collect, ids, isRowLocked, nextEvent, rejection, sideDb, testPool } from './helpers';

const db = sideDb('tx_dispose');

describe('using (sync dispose): abandon', () => {
  test('leaving the block without commit: abandoned at once, rolled back in the background, locks freed', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    const abandons = collect(pool, 'abandon');
    try {
      const rolledBack = nextEvent(pool, 'rollback');
      let handle: { state: string; query(sql: string): Promise<unknown> } | undefined;
      let threadId = 0;
      {
        using tx = await pool.begin();
        handle = tx;
        threadId = tx.threadId;
        await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 1`);
        await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
        expect(await isRowLocked(db.side(), table, 1)).toBe(true);
      } // no commit: [Symbol.dispose]() abandons
      expect(handle.state).toBe('abandoned');
      expect(abandons).toEqual([[expect.objectContaining({ threadId, reason: 'disposed' })]]);
      expect(codeOf(await rejection(handle.query(`INSERT INTO ${table} (id) VALUES (3)`)))).toBe('ERR_TX_ABANDONED');

      await rolledBack; // the background ROLLBACK, without anybody asking for the connection
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, abandoned: 1, rolledBack: 1, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  test('after commit, leaving the block does nothing', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    const abandons = collect(pool, 'abandon');
    try {
      {
        using tx = await pool.begin();
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await tx.commit();
      }
      expect(abandons).toEqual([]);
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(pool.stats()).toMatchObject({ idle: 1, abandoned: 0 });
    } finally {
      await pool.end();
    }
  });

  test('dispose is synchronous, returns undefined, and never throws, even when the connection is already dead', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const tx = await pool.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      const destroyed = nextEvent(pool, 'destroy');
      await db.side().query(`KILL ${tx.threadId}`);
      await destroyed;

      let result: unknown = 'not called';
      expect(() => {
        result = tx[Symbol.dispose]();
      }).not.toThrow();
      expect(result).toBeUndefined();
      expect(() => tx[Symbol.dispose]()).not.toThrow(); // twice is fine too
      expect(await ids(db.side(), table)).toEqual([]);
      await pool.query('SELECT 1'); // the pool replaced the dead connection
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1 });
    } finally {
      await pool.end();
    }
  });

  test('a savepoint left by `using` inside an outer transaction is rolled back to before the outer one goes on', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const tx = await pool.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      {
        using sp = await tx.begin();
        await sp.query(`INSERT INTO ${table} (id) VALUES (2)`);
      }
      const [rows] = await tx.query(`SELECT id FROM ${table} ORDER BY id`);
      expect((rows as Array<{ id: number }>).map((r) => r.id)).toEqual([1]);
      await tx.commit();
      expect(await ids(db.side(), table)).toEqual([1]);
    } finally {
      await pool.end();
    }
  });
});

describe('await using (async dispose): roll back now', () => {
  test('by the time the block is left the ROLLBACK is done: locks free at once, no abandon', async () => {
    const table = await db.table([1]);
    const pool = testPool({ connectionLimit: 1 });
    const abandons = collect(pool, 'abandon');
    try {
      let handle: { state: string } | undefined;
      {
        await using tx = await pool.begin();
        handle = tx;
        await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 1`);
        await tx.query(`INSERT INTO ${table} (id) VALUES (2)`);
      }
      // No waiting on any event: the rollback already happened.
      expect(handle.state).toBe('rolledBack');
      expect(await isRowLocked(db.side(), table, 1)).toBe(false);
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(abandons).toEqual([]);
      expect(pool.stats()).toMatchObject({ idle: 1, leased: 0, abandoned: 0 });
    } finally {
      await pool.end();
    }
  });

  test('a failing rollback surfaces from the end of the block', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      const destroyed = nextEvent(pool, 'destroy');
      const block = async (): Promise<void> => {
        await using tx = await pool.begin();
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await db.side().query(`KILL ${tx.threadId}`);
        await destroyed;
      };
      const error = await rejection(block());
      expect(error.fatal).toBe(true); // the ROLLBACK's own error: the connection is gone
      expect(await ids(db.side(), table)).toEqual([]);
      expect(pool.stats()).toMatchObject({ leased: 0 });
    } finally {
      await pool.end();
    }
  });

  test('when the block throws and the rollback fails too, both errors are kept (SuppressedError)', async () => {
    const pool = testPool({ connectionLimit: 1 });
    try {
      const destroyed = nextEvent(pool, 'destroy');
      const userError = new Error('handler failed');
      const block = async (): Promise<void> => {
        await using tx = await pool.begin();
        await db.side().query(`KILL ${tx.threadId}`);
        await destroyed;
        throw userError;
      };
      const error = await rejection(block());
      expect(error.name).toBe('SuppressedError');
      expect(error.suppressed).toBe(userError);
      expect(error.error.fatal).toBe(true);
    } finally {
      await pool.end();
    }
  });

  test('after commit, leaving the block does nothing', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      {
        await using tx = await pool.begin();
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await tx.commit();
      }
      expect(await ids(db.side(), table)).toEqual([1]);
      expect(pool.stats()).toMatchObject({ idle: 1, abandoned: 0, rolledBack: 0 });
    } finally {
      await pool.end();
    }
  });
});
