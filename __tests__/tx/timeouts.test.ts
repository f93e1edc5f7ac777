/**
 * Runner deadlines: `timeoutMs` and `signal`. The caller's promise rejects at once
 * (ERR_TX_TIMEOUT, or the signal's reason); the handle is fenced at once, so the still
 * running callback's later statements reject and never reach the server; a statement in
 * flight is handled per `onTimeout` ('wait', 'kill' = default, 'destroy'); the rollback
 * runs after that statement settles.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { InFlightPolicy, Pool, Transaction } from '../../src/index';
import { mysqlUrl } from '../support/db';
import {
  ER_QUERY_INTERRUPTED,
  codeOf,
  collect,
  deferred,
  ids,
  isRowLocked,

  nextEvent,
  rejection,
  scalar,
  settle,
  sideDb,
  testPool,
  threadAlive,
  waitUntil,
} from './helpers';
import { startProxy } from '../support/fault-proxy';

const db = sideDb('tx_timeouts');

interface SlowRun {
  /** The caller's promise. */
  caller: Promise<unknown>;
  /** Settles when the callback itself has finished (after the deadline). */
  callbackDone: Promise<void>;
  /** What the callback saw. */
  seen: { sleep?: { ok: boolean; value?: unknown; error?: any; settledAt: number }; lateInsert?: { ok: boolean; error?: any } };
  threadId: () => number;
}

/**
 * pool.transaction(): INSERT row 1 (and lock row 0), then `SELECT SLEEP(sleepS)` (in flight at the
 * deadline), then INSERT row 2: the late statement that must never reach the server.
 */
function slowCallback(pool: Pool, table: string, sleepS: number, options: { timeoutMs?: number; signal?: AbortSignal; onTimeout?: InFlightPolicy }): SlowRun {
  const seen: SlowRun['seen'] = {};
  const done = deferred();
  let threadId = 0;
  const caller = pool.transaction(async (tx) => {
    try {
      threadId = tx.threadId;
      await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 0`);
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      const sleep = await settle(tx.query<RowDataPacket[]>(`SELECT SLEEP(${sleepS}) AS s`));
      seen.sleep = { ...sleep, settledAt: Date.now() } as SlowRun['seen']['sleep'];
      const late = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (2)`));
      seen.lateInsert = late;
    } finally {
      done.resolve();
    }
  }, options);
  caller.catch(() => undefined);
  return { caller, callbackDone: done.promise, seen, threadId: () => threadId };
}

describe('timeoutMs', () => {
  test("onTimeout 'wait': the caller rejects before the SLEEP ends; the SLEEP finishes; the INSERT after it rejects and never appears", async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    const abandons = collect(pool, 'abandon');
    try {
      const rolledBack = nextEvent(pool, 'rollback');
      const run = slowCallback(pool, table, 0.5, { timeoutMs: 100, onTimeout: 'wait' });
      const error = await rejection(run.caller);
      expect(codeOf(error)).toBe('ERR_TX_TIMEOUT');
      expect(run.seen.sleep).toBeUndefined(); // rejected at once, not after the statement

      await run.callbackDone;
      expect(run.seen.sleep).toMatchObject({ ok: true, value: [[{ s: 0 }], expect.anything()] }); // left to finish
      expect(run.seen.lateInsert).toMatchObject({ ok: false });
      expect(run.seen.lateInsert?.error).toBe(error); // the same ERR_TX_TIMEOUT, from the fence
      await rolledBack;
      expect(await ids(db.side(), table)).toEqual([0]); // neither 1 nor 2
      expect(await isRowLocked(db.side(), table, 0)).toBe(false);
      expect(abandons).toEqual([[expect.objectContaining({ reason: 'timeout', threadId: run.threadId() })]]);
      expect(pool.stats()).toMatchObject({ total: 1, idle: 1, abandoned: 1, rolledBack: 1, destroyed: 0 });
    } finally {
      await pool.end();
    }
  });

  test.each([['kill' as const], [undefined]])(
    "onTimeout %s (the default): the SLEEP is interrupted at once with KILL QUERY; the connection survives",
    async (onTimeout) => {
      const table = await db.table([0]);
      const pool = testPool({ connectionLimit: 1 });
      try {
        const rolledBack = nextEvent(pool, 'rollback');
        const run = slowCallback(pool, table, 5, { timeoutMs: 100, ...(onTimeout ? { onTimeout } : {}) });
        const error = await rejection(run.caller);
        const rejectedAt = Date.now();
        expect(codeOf(error)).toBe('ERR_TX_TIMEOUT');

        await run.callbackDone;
        expect(run.seen.sleep?.ok).toBe(false);
        expect(codeOf(run.seen.sleep?.error)).toBe(ER_QUERY_INTERRUPTED);
        expect(run.seen.sleep!.settledAt - rejectedAt).toBeLessThan(2_000); // far from the 5 s
        expect(run.seen.lateInsert?.error).toBe(error);
        await rolledBack;
        expect(await ids(db.side(), table)).toEqual([0]);
        expect(await isRowLocked(db.side(), table, 0)).toBe(false);
        // KILL QUERY, not KILL: the same connection serves the next user.
        expect(await scalar(pool, 'SELECT CONNECTION_ID()')).toBe(run.threadId());
        expect(pool.stats()).toMatchObject({ total: 1, abandoned: 1, rolledBack: 1, destroyed: 0 });
      } finally {
        await pool.end();
      }
    },
  );

  test("onTimeout 'destroy': the connection is closed and never reused; nothing of the transaction is committed", async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      const destroyed = nextEvent(pool, 'destroy');
      const run = slowCallback(pool, table, 1, { timeoutMs: 100, onTimeout: 'destroy' });
      const error = await rejection(run.caller);
      expect(codeOf(error)).toBe('ERR_TX_TIMEOUT');
      const [event] = await destroyed;
      expect(event.threadId).toBe(run.threadId());
      expect(pool.stats()).toMatchObject({ total: 0, leased: 0 });

      await run.callbackDone;
      expect(run.seen.lateInsert?.error).toBe(error);
      // The server ends the thread once the running statement returns, and rolls its transaction back.
      await waitUntil(async () => !(await threadAlive(db.side(), run.threadId())), 5_000);
      expect(await ids(db.side(), table)).toEqual([0]);
      expect(await isRowLocked(db.side(), table, 0)).toBe(false);
      expect(await scalar(pool, 'SELECT CONNECTION_ID()')).not.toBe(run.threadId());
    } finally {
      await pool.end();
    }
  });

  test('no statement in flight: the rollback runs at once, while the callback is still paused', async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      const resume = deferred();
      let late: { ok: boolean; error?: any } | undefined;
      const caller = pool.transaction(
        async (tx) => {
          await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 0`);
          await resume.promise; // e.g. a slow HTTP call
          late = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (1)`));
        },
        { timeoutMs: 100 },
      );
      const rolledBack = nextEvent(pool, 'rollback');
      const error = await rejection(caller);
      expect(codeOf(error)).toBe('ERR_TX_TIMEOUT');
      await rolledBack;
      expect(await isRowLocked(db.side(), table, 0)).toBe(false); // freed before the callback resumed
      resume.resolve();
      await waitUntil(() => late !== undefined, 2_000);
      expect(late?.error).toBe(error);
      expect(await ids(db.side(), table)).toEqual([0]);
    } finally {
      await pool.end();
    }
  });

  test('conn.transaction(): the lease stays usable; the rollback is queued before its next statement', async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      const conn = await pool.getConnection();
      let handle: Transaction | undefined;
      const resume = deferred();
      const caller = conn.transaction(
        async (tx) => {
          handle = tx;
          await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
          await resume.promise;
        },
        { timeoutMs: 100 },
      );
      expect(codeOf(await rejection(caller))).toBe('ERR_TX_TIMEOUT');
      expect(handle?.state).toBe('abandoned');
      expect(await scalar(conn, 'SELECT @@in_transaction')).toBe(0);
      await conn.query(`INSERT INTO ${table} (id) VALUES (2)`); // autocommit
      resume.resolve();
      expect(await ids(db.side(), table)).toEqual([0, 2]);
      conn.release();
    } finally {
      await pool.end();
    }
  });

  test('tx.transaction() (savepoint) with its own timeout: only the savepoint is undone, the outer transaction goes on', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 });
    try {
      await pool.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        const inner = tx.transaction(
          async (sp) => {
            await sp.query(`INSERT INTO ${table} (id) VALUES (2)`);
            await sp.query('SELECT SLEEP(5)');
          },
          { timeoutMs: 100 },
        );
        expect(codeOf(await rejection(inner))).toBe('ERR_TX_TIMEOUT');
        await tx.query(`INSERT INTO ${table} (id) VALUES (3)`); // runs after the savepoint's rollback
      });
      expect(await ids(db.side(), table)).toEqual([1, 3]);
    } finally {
      await pool.end();
    }
  });

  // Regression test (this was a bug): interrupt() only looks at the timed-out handle's own in-flight statements
  // (tx.hasInFlight). A statement running in a savepoint of it (tx.transaction / tx.begin) is not
  // seen, so 'kill' sends no KILL QUERY (and 'destroy' closes nothing): the ROLLBACK, and the
  // release of every lock the transaction holds, wait for the statement to finish on its own.
  test("onTimeout 'kill' also interrupts a statement running in a savepoint of the timed-out transaction", async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      let sleepSettledAt = 0;
      const caller = pool.transaction(
        async (tx) => {
          await tx.query(`UPDATE ${table} SET v = 1 WHERE id = 0`);
          await tx.transaction(async (sp) => {
            await settle(sp.query('SELECT SLEEP(2)'));
            sleepSettledAt = Date.now();
          });
        },
        { timeoutMs: 100, onTimeout: 'kill' },
      );
      expect(codeOf(await rejection(caller))).toBe('ERR_TX_TIMEOUT');
      const rejectedAt = Date.now();
      await waitUntil(() => sleepSettledAt > 0, 5_000);
      expect(sleepSettledAt - rejectedAt).toBeLessThan(1_000);
    } finally {
      await pool.end();
    }
  });

  // Regression test (this was a bug): the KILL QUERY is sent over a new connection (handshake + auth: several round
  // trips) and nothing waits for it. Meanwhile the statement it targets may finish, the ROLLBACK
  // (one round trip) runs and the connection goes to the next user, whose statement the late KILL
  // QUERY then interrupts (1317). Here a proxy delays only the killer's connection, to make the race
  // deterministic. Expected: the session is not flushed / handed out before the KILL has completed.
  test("a late KILL QUERY never interrupts the next user's statement on that connection", async () => {
    const proxy = await startProxy(mysqlUrl(), { connectDelayMs: (index) => (index === 0 ? 0 : 600) });
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      await pool.query('SELECT 1'); // connection 0: the pool's, not delayed
      const caller = pool.transaction(
        async (tx) => {
          await tx.query('SELECT SLEEP(0.2)'); // in flight at the deadline, done long before the KILL arrives
        },
        { timeoutMs: 50, onTimeout: 'kill' },
      );
      expect(codeOf(await rejection(caller))).toBe('ERR_TX_TIMEOUT');
      // Another request takes the connection as soon as it is rolled back and clean.
      const innocent = await settle(pool.query<RowDataPacket[]>('SELECT SLEEP(1.5) AS s'));
      expect(proxy.connections).toBe(2); // the killer did connect (late)
      expect(innocent.ok ? innocent.value[0] : codeOf(innocent.error)).toEqual([{ s: 0 }]);
    } finally {
      await pool.end();
      await proxy.close();
    }
  });
});

describe('signal', () => {
  test('aborted mid-callback: the caller rejects with the signal\'s reason; later statements reject with it too', async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    const abandons = collect(pool, 'abandon');
    try {
      const controller = new AbortController();
      const reason = new Error('client went away');
      const inside = deferred();
      const resume = deferred();
      let late: { ok: boolean; error?: any } | undefined;
      const caller = pool.transaction(
        async (tx) => {
          await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
          inside.resolve();
          await resume.promise;
          late = await settle(tx.query(`INSERT INTO ${table} (id) VALUES (2)`));
        },
        { signal: controller.signal },
      );
      await inside.promise;
      const rolledBack = nextEvent(pool, 'rollback');
      controller.abort(reason);
      expect(await rejection(caller)).toBe(reason);
      await rolledBack;
      resume.resolve();
      await waitUntil(() => late !== undefined, 2_000);
      expect(late?.error).toBe(reason);
      expect(await ids(db.side(), table)).toEqual([0]);
      expect(abandons).toEqual([[expect.objectContaining({ reason: 'aborted' })]]);
    } finally {
      await pool.end();
    }
  });

  test('aborted with a statement in flight: it is killed (default policy) and nothing is committed', async () => {
    const table = await db.table([0]);
    const pool = testPool({ connectionLimit: 1 });
    try {
      const controller = new AbortController();
      const run = slowCallback(pool, table, 5, { signal: controller.signal });
      // Abort once the SLEEP is running on the transaction's own connection.
      await waitUntil(async () => {
        if (run.threadId() === 0) return false;
        const [rows] = await db.side().query<RowDataPacket[]>(
          "SELECT id FROM information_schema.PROCESSLIST WHERE id = ? AND info LIKE 'SELECT SLEEP%'",
          [run.threadId()],
        );
        return rows.length > 0;
      }, 5_000);
      controller.abort();
      const error = await rejection(run.caller);
      expect(error.name).toBe('AbortError');
      await run.callbackDone;
      expect(codeOf(run.seen.sleep?.error)).toBe(ER_QUERY_INTERRUPTED);
      expect(run.seen.lateInsert?.error).toBe(error);
      await waitUntil(() => pool.stats().idle === 1, 5_000);
      expect(await ids(db.side(), table)).toEqual([0]);
    } finally {
      await pool.end();
    }
  });

  test('already aborted: rejects at once, the callback never runs, no connection is taken', async () => {
    const pool = testPool({ connectionLimit: 1 });
    try {
      const reason = new Error('too late');
      const fn = jest.fn(async () => 'ran');
      expect(await rejection(pool.transaction(fn, { signal: AbortSignal.abort(reason) }))).toBe(reason);
      expect(fn).not.toHaveBeenCalled();
      expect(pool.stats().total).toBe(0);
    } finally {
      await pool.end();
    }
  });
});
