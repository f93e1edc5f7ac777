/**
 * `KILL <id>` and `KILL QUERY <id>` from a side connection, landing exactly during
 * BEGIN, COMMIT and the pool's pending ROLLBACK. The fault proxy learns each
 * connection's thread id from the handshake and, when the statement passes, sends
 * the KILL: before the statement reaches the server, at the same time, or after the
 * server answered but before the client got the answer. In every case the client's
 * outcome agrees with the table (resolved COMMIT: present; no COMMIT, or a COMMIT
 * that never reached the server: absent), the server keeps no transaction of that
 * thread, and the pool is back at full size with clean connections.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { Pool, Transaction } from '../../src/index';
import { startProxy, type Proxy, type QueryAction } from '../support/fault-proxy';
import { mysqlUrl } from '../support/db';
import { codeOf, ids, LOCK_POLL_MS, nextEvent, rejection, settle, sideDb, testPool, threadAlive, waitUntil } from '../tx/helpers';
import { bulkInsertSql, expectWhole, settled } from './helpers';

const db = sideDb('chaos_kill');

type When = 'before' | 'concurrent' | 'after-reply';
let proxy: Proxy;
let armed: { match: (sql: string) => boolean; kill: 'KILL' | 'KILL QUERY'; when: When; fired?: number } | undefined;

beforeAll(async () => {
  proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql, _index, conn): QueryAction => {
      const a = armed;
      if (!a || a.fired !== undefined || !a.match(sql) || conn.threadId === undefined) return 'forward';
      a.fired = conn.threadId;
      const kill = (): Promise<unknown> => db.side().query(`${a.kill} ${conn.threadId}`).catch(() => undefined);
      if (a.when === 'before') return { before: kill };
      if (a.when === 'after-reply') return { holdReply: kill };
      void kill();
      return 'forward';
    },
  });
});
afterAll(async () => {
  await proxy.close();
});
beforeEach(() => {
  armed = undefined;
});

function arm(match: (sql: string) => boolean, kill: 'KILL' | 'KILL QUERY', when: When): void {
  armed = { match, kill, when };
}

function expectFired(): number {
  expect(armed?.fired).toBeDefined();
  return armed!.fired!;
}

/** The server has no InnoDB transaction for `threadId` any more (INNODB_TRX is polled slower than its cache). */
async function noTransactionLeft(threadId: number): Promise<void> {
  await waitUntil(async () => {
    const [rows] = await db.side().query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?', [threadId]);
    return Number(rows[0]!.n) === 0;
  }, 15_000, LOCK_POLL_MS);
}

const isBegin = (sql: string): boolean => sql.startsWith('START TRANSACTION');
const isCommit = (sql: string): boolean => sql === 'COMMIT';
const isRollback = (sql: string): boolean => sql === 'ROLLBACK';

describe('during BEGIN', () => {
  test('KILL before START TRANSACTION reaches the server: begin() rejects, nothing runs outside a transaction, the pool is whole', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      await expectWhole(pool, 1);
      arm(isBegin, 'KILL', 'before');
      const error = await rejection(pool.begin());
      expect((error as { fatal?: boolean }).fatal).toBe(true);
      const killed = expectFired();
      const [next] = await expectWhole(pool, 1);
      expect(next).not.toBe(killed);
      await pool.transaction((tx) => tx.query(`INSERT INTO ${table} (id) VALUES (1)`));
      expect(await ids(db.side(), table)).toEqual([1]);
    } finally {
      await pool.end();
    }
  });

  test('KILL after the server opened the transaction, before the client heard: its work never commits', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      arm(isBegin, 'KILL', 'after-reply');
      let tx: Transaction | undefined;
      const outcome = await settle((async () => {
        tx = await pool.begin(); // resolves: the OK was sent before the kill
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        await tx.commit();
      })());
      expect(outcome.ok).toBe(false);
      expect(tx?.state).toBe('active'); // the INSERT failed on the dead connection; the handle is still ours
      await tx!.rollback().catch(() => undefined); // gives the connection back (it is destroyed)
      const killed = expectFired();
      await waitUntil(async () => !(await threadAlive(db.side(), killed)), 10_000);
      expect(await ids(db.side(), table)).toEqual([]);
      await settled(pool);
      await expectWhole(pool, 1);
    } finally {
      await pool.end();
    }
  });

  test.each(['before', 'concurrent', 'after-reply'] as const)(
    'KILL QUERY (%s) at START TRANSACTION: the connection survives, and what the client was told holds',
    async (when) => {
      const table = await db.table();
      const pool = testPool({ connectionLimit: 1 }, proxy.url);
      try {
        await expectWhole(pool, 1);
        arm(isBegin, 'KILL QUERY', when);
        const outcome = await settle(pool.transaction((tx) => tx.query(`INSERT INTO ${table} (id) VALUES (1)`)));
        expectFired();
        // A transaction reported committed is there; one that failed left nothing behind.
        expect(await ids(db.side(), table)).toEqual(outcome.ok ? [1] : []);
        await settled(pool);
        await expectWhole(pool, 1);
        expect(pool.stats().rollbackFailures).toBe(0);
      } finally {
        await pool.end();
      }
    },
  );
});

describe('during COMMIT', () => {
  test('KILL before COMMIT reaches the server: ERR_COMMIT_OUTCOME_UNKNOWN, and here it was not committed', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      const tx = await pool.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      arm(isCommit, 'KILL', 'before');
      expect(codeOf(await rejection(tx.commit()))).toBe('ERR_COMMIT_OUTCOME_UNKNOWN');
      expect(tx.state).toBe('outcomeUnknown');
      await waitUntil(async () => !(await threadAlive(db.side(), tx.threadId)), 10_000);
      expect(await ids(db.side(), table)).toEqual([]);
      await expectWhole(pool, 1);
    } finally {
      await pool.end();
    }
  });

  test('KILL after the server committed, before the client heard: the commit resolves and the row is there; the dead connection is not reused', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      const tx = await pool.begin();
      await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
      arm(isCommit, 'KILL', 'after-reply');
      await tx.commit();
      expect(tx.state).toBe('committed');
      expect(await ids(db.side(), table)).toEqual([1]);
      const [next] = await expectWhole(pool, 1);
      expect(next).not.toBe(tx.threadId);
    } finally {
      await pool.end();
    }
  });

  test.each(['before', 'concurrent', 'after-reply'] as const)(
    'KILL QUERY (%s) at COMMIT: resolved means present, rejected means absent, the connection is reused',
    async (when) => {
      const table = await db.table();
      const pool = testPool({ connectionLimit: 1 }, proxy.url);
      try {
        const tx: Transaction = await pool.begin();
        await tx.query(`INSERT INTO ${table} (id) VALUES (1)`);
        arm(isCommit, 'KILL QUERY', when);
        const outcome = await settle(tx.commit());
        expectFired();
        if (!outcome.ok) expect(tx.state).toBe('rolledBack'); // an error answer to COMMIT: the library says rolled back
        expect(await ids(db.side(), table)).toEqual(outcome.ok ? [1] : []);
        await settled(pool);
        const [next] = await expectWhole(pool, 1);
        expect(next).toBe(tx.threadId); // KILL QUERY never costs the connection
      } finally {
        await pool.end();
      }
    },
  );
});

describe("during the pool's pending ROLLBACK", () => {
  /** A lease released inside a transaction holding `rows` inserted rows; resolves with its thread id. */
  async function abandon(pool: Pool, table: string, rows: number): Promise<number> {
    const conn = await pool.getConnection();
    await conn.beginTransaction();
    await conn.query(bulkInsertSql(table, 1, rows));
    const threadId = conn.threadId;
    conn.release(); // the pool sends ROLLBACK now, in the background
    return threadId;
  }

  test('KILL before the ROLLBACK reaches the server: rollbackError, the connection is destroyed, the server rolled back, the pool is whole', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      arm(isRollback, 'KILL', 'before');
      const failed = nextEvent(pool, 'rollbackError');
      const threadId = await abandon(pool, table, 100);
      await failed;
      expect(expectFired()).toBe(threadId);
      await noTransactionLeft(threadId);
      expect(await ids(db.side(), table)).toEqual([]);
      const [next] = await expectWhole(pool, 1);
      expect(next).not.toBe(threadId);
    } finally {
      await pool.end();
    }
  });

  test('KILL after the ROLLBACK finished, before the pool heard: the connection is not handed out again', async () => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      arm(isRollback, 'KILL', 'after-reply');
      const destroyed = nextEvent(pool, 'destroy');
      const threadId = await abandon(pool, table, 100);
      const [{ threadId: destroyedId }] = await destroyed;
      expect(destroyedId).toBe(threadId);
      expect(await ids(db.side(), table)).toEqual([]);
      const [next] = await expectWhole(pool, 1);
      expect(next).not.toBe(threadId);
    } finally {
      await pool.end();
    }
  });

  test.each([
    ['KILL', 'concurrent'],
    ['KILL QUERY', 'concurrent'],
    ['KILL QUERY', 'before'],
    ['KILL QUERY', 'after-reply'],
  ] as const)('%s (%s) during the ROLLBACK of 5000 rows: rolled back or destroyed, never reused dirty; the pool is whole', async (kill, when) => {
    const table = await db.table();
    const pool = testPool({ connectionLimit: 1 }, proxy.url);
    try {
      const outcome = { rolledBack: 0, failed: 0 };
      pool.on('rollback', () => outcome.rolledBack++);
      pool.on('rollbackError', () => outcome.failed++);
      arm(isRollback, kill, when);
      const threadId = await abandon(pool, table, 5_000);
      await waitUntil(() => outcome.rolledBack + outcome.failed === 1, 10_000);
      expect(expectFired()).toBe(threadId);
      await noTransactionLeft(threadId);
      expect(await ids(db.side(), table)).toEqual([]);
      await settled(pool);
      const [next] = await expectWhole(pool, 1);
      if (outcome.failed === 1 || kill === 'KILL') expect(next).not.toBe(threadId);
    } finally {
      await pool.end();
    }
  });
});
