/**
 * The callback face (src/pool/callback.ts) against the real server: `pool.pool` (mysql2's
 * callback Pool API) and `lease.connection` (mysql2's callback connection API). Every
 * statement through it must go through the lease's fence and the session's transaction
 * tracking, in callback mode and in stream mode alike.
 */
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FieldPacket, Query, QueryError, QueryResult } from 'mysql2';
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, type CallbackConnection, type Pool } from '../../src';
import { isRowLocked, mysqlUrl, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent, pause, waitUntil } from './helpers';

const T = uniqueTable('cbface');
const { side, committed } = ownerTable(T, ", pad VARCHAR(600) NOT NULL DEFAULT ''");





async function withPool<R>(fn: (pool: Pool) => Promise<R>, connectionLimit = 1): Promise<R> {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

type Outcome = { rows: QueryResult; fields: FieldPacket[] | undefined };
type StatementCb = (err: QueryError | null, rows?: QueryResult, fields?: FieldPacket[]) => void;

/** `conn.query(sql, values, cb)` as a promise. */
function cbQuery(conn: CallbackConnection | Pool['pool'], sql: string, values?: unknown[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const cb = (err: QueryError | null, rows?: QueryResult, fields?: FieldPacket[]): void => {
      if (err) reject(err);
      else resolve({ rows: rows!, fields });
    };
    if (values === undefined) conn.query(sql, cb);
    else conn.query(sql, values as never, cb);
  });
}

function cbGetConnection(pool: Pool): Promise<CallbackConnection> {
  return new Promise((resolve, reject) => {
    pool.pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn!)));
  });
}

/** Reads a streamed statement to its end; resolves with its rows/OK packets, rejects with its error. */
async function drain(query: Query): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const row of query.stream()) out.push(row);
  return out;
}

async function threadIdVia(conn: CallbackConnection | Pool['pool']): Promise<number> {
  const { rows } = await cbQuery(conn, 'SELECT CONNECTION_ID() AS id');
  return Number((rows as RowDataPacket[])[0]?.id);
}

describe('lease.connection: callback mode', () => {
  test('pool.pool.getConnection(cb) + conn.query(sql, values, cb): rows and fields, threadId and config as mysql2', async () => {
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      expect(pool.stats().leased).toBe(1);
      const { rows, fields } = await cbQuery(conn, 'SELECT ? + 1 AS two, ? AS s', [1, 'x']);
      expect(rows).toEqual([{ two: 2, s: 'x' }]);
      expect(fields?.map((f) => f.name)).toEqual(['two', 's']);
      expect(await threadIdVia(conn)).toBe(conn.threadId);
      expect(conn.config).toMatchObject({ host: '127.0.0.1', database: 'test' });
      const header = await cbQuery(conn, `INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [1, 'basic']);
      expect(header.rows).toMatchObject({ affectedRows: 1 });
      conn.release();
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
      expect(await committed('basic')).toEqual([{ id: 1, n: 0 }]);
    });
  });

  test('beginTransaction/commit/rollback/ping(cb) and execute(sql, values, cb) on the callback connection', async () => {
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      const step = (fn: (cb: (err: Error | null) => void) => void): Promise<void> =>
        new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
      await step((cb) => conn.ping(cb));
      await step((cb) => conn.beginTransaction(cb));
      await new Promise<void>((resolve, reject) =>
        conn.execute(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [10, 'tx-cb'], (err) => (err ? reject(err) : resolve())),
      );
      expect(await committed('tx-cb')).toEqual([]);
      await step((cb) => conn.commit(cb));
      expect(await committed('tx-cb')).toEqual([{ id: 10, n: 0 }]);
      await step((cb) => conn.beginTransaction(cb));
      await cbQuery(conn, `UPDATE ${T} SET n = 1 WHERE id = 10`);
      expect(await isRowLocked(side, T, 10)).toBe(true);
      await step((cb) => conn.rollback(cb));
      expect(await isRowLocked(side, T, 10)).toBe(false);
      conn.release();
      expect(await committed('tx-cb')).toEqual([{ id: 10, n: 0 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  test('a raw START TRANSACTION through the callback face, then release(): rolled back; lock freed; the next user of the connection commits alone', async () => {
    await side.query(`INSERT INTO ${T} (id, owner) VALUES (20, 'raw')`);
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      await cbQuery(conn, 'START TRANSACTION');
      await cbQuery(conn, `UPDATE ${T} SET n = 1 WHERE id = 20`);
      await cbQuery(conn, `INSERT INTO ${T} (id, owner) VALUES (21, 'raw')`);
      expect(await isRowLocked(side, T, 20)).toBe(true);
      const threadId = conn.threadId;
      const abandoned = nextEvent(pool, 'abandon');
      const rolledBack = nextEvent(pool, 'rollback');
      conn.release();
      const [[abandon], [rollback]] = await Promise.all([abandoned, rolledBack]);
      expect(abandon.threadId).toBe(threadId);
      expect(rollback.threadId).toBe(threadId);
      expect(await isRowLocked(side, T, 20)).toBe(false);
      expect(await committed('raw')).toEqual([{ id: 20, n: 0 }]);

      const next = await cbGetConnection(pool);
      expect(next.threadId).toBe(threadId);
      await cbQuery(next, `INSERT INTO ${T} (id, owner) VALUES (29, 'raw-next')`);
      next.release();
      expect(await committed('raw-next')).toEqual([{ id: 29, n: 0 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1, rollbackFailures: 0 });
    });
  });
});

test.each(['query', 'execute'] as const)(
  "released on the `end` of a callback-mode %s (as mysql2's own pool releases) that opened a transaction: its status was read before `end`, so it is rolled back; the next user's INSERT commits alone",
  async (method) => {
    const owner = `on-end-${method}`;
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      const rolledBack = nextEvent(pool, 'rollback');
      await new Promise<void>((resolve) => {
        (conn[method] as (sql: string, cb: StatementCb) => Query)('START TRANSACTION', () => resolve()).once('end', () => conn.release());
      });
      await rolledBack;
      const next = await cbGetConnection(pool);
      expect(next.threadId).toBe(conn.threadId);
      await cbQuery(next, `INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [method === 'query' ? 25 : 26, owner]);
      next.release();
      expect(await committed(owner)).toEqual([{ id: method === 'query' ? 25 : 26, n: 0 }]);
      expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0 });
    });
  },
);

test('while the session is held back (a KILL QUERY on its way), execute and query through the callback face wait, and run in order after the gate, with the promise API\'s statements', async () => {
  await withPool(async (pool) => {
    const lease = await pool.getConnection();
    const conn = lease.connection;
    let open!: () => void;
    lease.session.holdUntil(new Promise<void>((resolve) => (open = resolve))); // what killRunningQuery does
    const order: string[] = [];
    const done = Promise.all([
      new Promise((resolve) => conn.execute('SELECT 1 AS a', (err) => resolve(order.push(err ? `execute failed: ${err.message}` : 'execute')))),
      lease.query('SELECT 2').then(() => order.push('promise query')),
      new Promise((resolve) => conn.query('SELECT 3', (err) => resolve(order.push(err ? 'query failed' : 'query')))),
      new Promise((resolve) => conn.execute('SELECT 4').on('end', () => resolve(order.push('streamed execute')))),
    ]);
    await pause(100);
    expect(order).toEqual([]); // still nothing: a statement written would have been answered by now
    // The server agrees: that connection is idle, nothing reached it.
    const [rows] = await side.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND = 'Sleep'", [conn.threadId]);
    expect(rows).toEqual([{ n: 1 }]);
    open();
    await done;
    expect(order).toEqual(['execute', 'promise query', 'query', 'streamed execute']);
    lease.release();
    expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
  });
});

describe('lease.connection: stream mode (query(sql) without a callback)', () => {
  test.each([
    ['START TRANSACTION', 'stream-begin', 30],
    ['SET autocommit = 0', 'stream-ac0', 40],
  ])('%j sent as a streamed statement is tracked: every statement streamed, then release() rolls back; the next user commits alone', async (opener, owner, id) => {
    await side.query(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [id, owner]);
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      const threadId = conn.threadId;
      const [openerOk] = await drain(conn.query(opener));
      expect(openerOk).toHaveProperty('serverStatus'); // the OK packet is the stream's one "row"
      const [updateOk] = await drain(conn.query(`UPDATE ${T} SET n = 1 WHERE id = ?`, [id]));
      expect(updateOk).toMatchObject({ affectedRows: 1 });
      await drain(conn.query(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [id + 1, owner]));
      expect(await isRowLocked(side, T, id)).toBe(true);

      const rolledBack = nextEvent(pool, 'rollback');
      conn.release();
      await rolledBack;
      expect(await isRowLocked(side, T, id)).toBe(false);
      expect(await committed(owner)).toEqual([{ id, n: 0 }]);

      const next = await cbGetConnection(pool);
      expect(next.threadId).toBe(threadId);
      const { rows } = await cbQuery(next, 'SELECT @@autocommit AS ac, @@in_transaction AS tx');
      expect(rows).toEqual([{ ac: 1, tx: 0 }]); // SET autocommit=0 was undone too
      await drain(next.query(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [id + 9, `${owner}-next`]));
      next.release();
      expect(await committed(`${owner}-next`)).toEqual([{ id: id + 9, n: 0 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1, rollbackFailures: 0 });
    });
  });

  test('a streamed SELECT of 2,000 rows: backpressure holds the rest back while the reader is slow; all rows arrive in order; the connection stays clean', async () => {
    const pad = 'p'.repeat(500);
    const rows = Array.from({ length: 2_000 }, (_, i) => [1_000 + i, 'many', i, pad]);
    await side.query(`INSERT INTO ${T} (id, owner, n, pad) VALUES ?`, [rows]);
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      const stream = conn.query(`SELECT id, n, pad FROM ${T} WHERE owner = 'many' ORDER BY id`).stream({ highWaterMark: 8 });
      // Nobody reads for a while: mysql2 pauses the socket once the buffer is full (about 1 MB of rows is waiting).
      await once(stream, 'readable');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const bufferedWhilePaused = stream.readableLength;
      expect(bufferedWhilePaused).toBeGreaterThan(0);
      expect(bufferedWhilePaused).toBeLessThan(1_000);

      let count = 0;
      let ordered = true;
      let maxBuffered = 0;
      await pipeline(
        stream,
        new Writable({
          objectMode: true,
          highWaterMark: 1,
          write(row: { id: number; n: number; pad: string }, _enc, done) {
            if (row.n !== count || row.pad.length !== 500) ordered = false;
            count++;
            maxBuffered = Math.max(maxBuffered, stream.readableLength);
            if (count % 100 === 0) setTimeout(done, 1); // a slow consumer
            else done();
          },
        }),
      );
      expect(count).toBe(2_000);
      expect(ordered).toBe(true);
      expect(maxBuffered).toBeLessThan(1_000);
      // The statement ended: the lease is clean, a plain release gives it back without a ROLLBACK.
      expect(await threadIdVia(conn)).toBe(conn.threadId);
      conn.release();
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0, rolledBack: 0 });
    });
  });
});

describe('a released callback connection sends nothing', () => {
  test("query(cb), query().stream(), execute, beginTransaction, ping: ERR_LEASE_RELEASED; the side-effect INSERTs never reach the server", async () => {
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      const threadId = conn.threadId;
      conn.release();
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });

      await expect(cbQuery(conn, `INSERT INTO ${T} (id, owner) VALUES (50, 'fenced')`)).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });

      const streamed = conn.query(`INSERT INTO ${T} (id, owner) VALUES (51, 'fenced')`).stream();
      const [streamError] = (await once(streamed, 'error')) as [NodeJS.ErrnoException];
      expect(streamError.code).toBe('ERR_LEASE_RELEASED');

      const evented = conn.query(`INSERT INTO ${T} (id, owner) VALUES (52, 'fenced')`);
      const [eventError] = (await once(evented, 'error')) as [NodeJS.ErrnoException];
      expect(eventError.code).toBe('ERR_LEASE_RELEASED');

      const viaCallback = (fn: (cb: (err: Error | null) => void) => void): Promise<Error | null> => new Promise((resolve) => fn(resolve));
      expect(await viaCallback((cb) => conn.execute(`INSERT INTO ${T} (id, owner) VALUES (53, 'fenced')`, [], cb))).toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      expect(await viaCallback((cb) => conn.beginTransaction(cb))).toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      expect(await viaCallback((cb) => conn.ping(cb))).toMatchObject({ code: 'ERR_LEASE_RELEASED' });

      // Nothing was sent: no row, and that connection's own counter of statements did not move.
      const next = await cbGetConnection(pool);
      expect(next.threadId).toBe(threadId);
      const { rows } = await cbQuery(next, "SHOW SESSION STATUS LIKE 'Com_insert'");
      expect(Number((rows as RowDataPacket[])[0]?.Value)).toBe(0);
      next.release();
      expect(await committed('fenced')).toEqual([]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  test('conn.end() gives the connection back like release() (and calls back); the connection is fenced afterwards', async () => {
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      await cbQuery(conn, 'SELECT 1');
      await new Promise<void>((resolve, reject) => conn.end((err) => (err ? reject(err) : resolve())));
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, destroyed: 0 });
      await expect(cbQuery(conn, 'SELECT 1')).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
    });
  });

  test('conn.destroy() closes the connection instead: the server rolls back what was open', async () => {
    await side.query(`INSERT INTO ${T} (id, owner) VALUES (60, 'destroyed')`);
    await withPool(async (pool) => {
      const conn = await cbGetConnection(pool);
      await cbQuery(conn, 'START TRANSACTION');
      await cbQuery(conn, `UPDATE ${T} SET n = 1 WHERE id = 60`);
      expect(await isRowLocked(side, T, 60)).toBe(true);
      conn.destroy();
      await waitUntil(async () => !(await isRowLocked(side, T, 60)), 5_000);
      expect(pool.stats()).toMatchObject({ leased: 0, destroyed: 1, abandoned: 0 });
      await expect(cbQuery(conn, 'SELECT 1')).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
      expect(await committed('destroyed')).toEqual([{ id: 60, n: 0 }]);
    });
  });
});

describe('pool.pool: one statement on any free connection', () => {
  test('query(sql, cb), query(sql, values, cb), execute(sql, values, cb): the connection goes back after each', async () => {
    await withPool(async (pool) => {
      expect((await cbQuery(pool.pool, 'SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect((await cbQuery(pool.pool, 'SELECT ? AS v', ['x'])).rows).toEqual([{ v: 'x' }]);
      const executed = await new Promise<QueryResult>((resolve, reject) =>
        pool.pool.execute(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [70, 'pool-cb'], (err, rows) => (err ? reject(err) : resolve(rows!))),
      );
      expect(executed).toMatchObject({ affectedRows: 1 });
      await expect(cbQuery(pool.pool, 'SELECT nope FROM nowhere')).rejects.toMatchObject({ code: 'ER_NO_SUCH_TABLE' });
      expect(pool.stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
      expect(await committed('pool-cb')).toEqual([{ id: 70, n: 0 }]);
      expect(pool.pool.escape("it's")).toBe("'it\\'s'");
      expect(pool.pool.escapeId('a.b')).toBe('`a`.`b`');
      expect(pool.pool.format('SELECT ?', [1])).toBe('SELECT 1');
    });
  });

  test('query(sql).stream(): streamed on a connection taken for it, which goes back to the pool when the stream ends; a transaction it opens does not outlive it', async () => {
    const rows = Array.from({ length: 300 }, (_, i) => [5_000 + i, 'pool-stream', i]);
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES ?`, [rows]);
    await withPool(async (pool) => {
      const query = pool.pool.query(`SELECT n FROM ${T} WHERE owner = 'pool-stream' ORDER BY id`);
      let count = 0;
      let leasedWhileStreaming = -1;
      for await (const row of query.stream()) {
        if (count === 0) leasedWhileStreaming = pool.stats().leased;
        expect((row as { n: number }).n).toBe(count);
        count++;
      }
      expect(count).toBe(300);
      expect(leasedWhileStreaming).toBe(1);
      await waitUntil(() => pool.stats().idle === 1, 2_000);
      expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0, rollbackFailures: 0, destroyed: 0 });

      const before = pool.stats().rolledBack;
      await drain(pool.pool.query('START TRANSACTION'));
      await drain(pool.pool.query(`INSERT INTO ${T} (id, owner) VALUES (6000, 'pool-stream-tx')`));
      await waitUntil(() => pool.stats().idle === 1, 2_000);
      expect(pool.stats().rolledBack).toBeGreaterThan(before);
      expect((await cbQuery(pool.pool, 'SELECT @@in_transaction AS tx')).rows).toEqual([{ tx: 0 }]);
      // The INSERT ran on the same (only) connection after the ROLLBACK: autocommit, committed alone.
      expect(await committed('pool-stream-tx')).toEqual([{ id: 6000, n: 0 }]);
    });
  });

  // The lease taken for the stream is released after the session saw the statement end
  // (registered after send()), so a clean streamed statement is a clean release.
  test('a clean streamed SELECT through pool.pool.query(sql).stream() is not reported as abandoned', async () => {
    await withPool(async (pool) => {
      const abandons: unknown[] = [];
      pool.on('abandon', (event) => abandons.push(event));
      const rows = await drain(pool.pool.query('SELECT 1 AS one UNION ALL SELECT 2'));
      expect(rows).toEqual([{ one: 1 }, { one: 2 }]);
      await waitUntil(() => pool.stats().idle === 1, 2_000);
      expect(abandons).toEqual([]);
      expect(pool.stats()).toMatchObject({ abandoned: 0, rolledBack: 0 });
    });
  });

  test('a raw START TRANSACTION through pool.pool.query(sql, cb) does not reach the next statement', async () => {
    await withPool(async (pool) => {
      await cbQuery(pool.pool, 'START TRANSACTION');
      await cbQuery(pool.pool, `INSERT INTO ${T} (id, owner) VALUES (80, 'pool-raw')`);
      expect(await committed('pool-raw')).toEqual([{ id: 80, n: 0 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1 });
    });
  });

  test('end(cb): calls back once the pool is closed; later getConnection(cb) gets ERR_POOL_CLOSED', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    await cbQuery(pool.pool, 'SELECT 1');
    const ended = await new Promise<Error | undefined>((resolve) => pool.pool.end(resolve));
    expect(ended).toBeUndefined();
    expect(pool.closed).toBe(true);
    await expect(cbGetConnection(pool)).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
    await expect(cbQuery(pool.pool, 'SELECT 1')).rejects.toMatchObject({ code: 'ERR_POOL_CLOSED' });
  });

  test("pool.getConnection(cb) (the promise pool) throws mysql2's message instead of ignoring the callback", async () => {
    await withPool(async (pool) => {
      const callback = jest.fn();
      expect(() => (pool.getConnection as (cb: unknown) => unknown)(callback)).toThrow('Callback function is not available with promise clients.');
      expect(callback).not.toHaveBeenCalled();
      expect(pool.stats()).toMatchObject({ leased: 0, waiting: 0 });
    });
  });
});

describe('inside pool.withScope the callback face takes part in the scope', () => {
  test.each([
    ['rollback', [] as Array<{ id: number; n: number }>],
    ['commit', [{ id: 90, n: 0 }, { id: 91, n: 0 }]],
  ] as const)('a scope decided %s: writes via pool.pool.getConnection and pool.pool.query follow the decision', async (decision, expected) => {
    const owner = `scope-${decision}`;
    await withPool(async (pool) => {
      const seenInside = await pool.withScope(
        async () => {
          const conn = await cbGetConnection(pool);
          await cbQuery(conn, `INSERT INTO ${T} (id, owner) VALUES (90, ?)`, [owner]);
          conn.release(); // handed to the scope, not committed
          await cbQuery(pool.pool, `INSERT INTO ${T} (id, owner) VALUES (91, ?)`, [owner]);
          return committed(owner);
        },
        { decide: () => decision },
      );
      expect(seenInside).toEqual([]);
      expect(await committed(owner)).toEqual(expected);
      expect(pool.stats()).toMatchObject({ leased: 0, rollbackFailures: 0 });
    }, 2);
  });

  test("pool.pool.query(sql, cb), query(sql).stream() and execute (callback and stream) all run on the scope's one shared connection, and follow its decision", async () => {
    await withPool(async (pool) => {
      const ids = await pool.withScope(
        async () => {
          const viaCallback = await threadIdVia(pool.pool);
          const [streamed] = (await drain(pool.pool.query('SELECT CONNECTION_ID() AS id'))) as Array<{ id: number }>;
          const executed = await new Promise<number>((resolve, reject) =>
            pool.pool.execute('SELECT CONNECTION_ID() AS id', (err, rows) => (err ? reject(err) : resolve(Number((rows as RowDataPacket[])[0]?.id)))),
          );
          await drain(pool.pool.execute(`INSERT INTO ${T} (id, owner) VALUES (?, 'scope-shared')`, [95]));
          await cbQuery(pool.pool, `INSERT INTO ${T} (id, owner) VALUES (96, 'scope-shared')`);
          expect(pool.stats().leased).toBe(1);
          return [viaCallback, Number(streamed?.id), executed];
        },
        { decide: () => 'rollback' },
      );
      expect(new Set(ids).size).toBe(1);
      expect(await committed('scope-shared')).toEqual([]);
      expect(pool.stats()).toMatchObject({ leased: 0, rollbackFailures: 0 });
    }, 2);
  });
});

describe("pool.pool.query / execute with a callback return the command that runs (mysql2's)", () => {
  test('its `fields` and `end` events fire, `end` before the callback (as mysql2); the connection is back before the callback runs', async () => {
    await withPool(async (pool) => {
      for (const method of ['query', 'execute'] as const) {
        const order: string[] = [];
        await new Promise<void>((resolve, reject) => {
          const command = (pool.pool[method] as (sql: string, cb: StatementCb) => Query)('SELECT 1 AS one', (err) => {
            order.push(`callback (idle ${pool.stats().idle})`);
            if (err) reject(err);
            else resolve();
          });
          command.on('fields', () => order.push('fields')).on('end', () => order.push('end'));
        });
        expect(order).toEqual(['fields', 'end', 'callback (idle 1)']);
      }
    });
  });
});
