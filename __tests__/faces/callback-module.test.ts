/**
 * `rollback-pool/mysql2` (src/mysql2/index.ts) used exactly as a mysql2
 * callback user uses `require('mysql2')`, against the real server: pool and
 * connection callbacks, the command objects `query()` and `execute()` return
 * (events, `.stream()`, `.setMaxListeners()`), the pool's events, and the
 * guarantee the module exists for: a transaction abandoned through it is
 * rolled back before the connection serves anyone else.
 * (The built package resolved by name is in __tests__/package.test.ts.)
 */
import type { FieldPacket, Query } from 'mysql2';
import * as mysql from '../../src/mysql2';
import { isRowLocked, mysqlUrl, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent, waitUntil } from '../pool/helpers';

const T = uniqueTable('cbmodule');
const { side, committed } = ownerTable(T);

type Outcome = { rows: unknown; fields: FieldPacket[] | undefined };
type Runner = (cb: (err: Error | null, rows?: unknown, fields?: FieldPacket[]) => void) => unknown;

/** Runs a callback-style statement; resolves with its rows and fields. */
function run(fn: Runner): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    fn((err, rows, fields) => (err ? reject(err) : resolve({ rows, fields })));
  });
}

function getConnection(pool: mysql.Pool): Promise<mysql.PoolConnection> {
  return new Promise((resolve, reject) => pool.getConnection((err, conn) => (err ? reject(err) : resolve(conn))));
}

/** The events of a command until its `end`: what mysql2's emitter API shows. */
function eventsOf(command: Query): Promise<{ fields: number; results: unknown[]; errors: unknown[] }> {
  const seen = { fields: 0, results: [] as unknown[], errors: [] as unknown[] };
  return new Promise((resolve) => {
    command
      .on('fields', () => seen.fields++)
      .on('result', (row: unknown) => seen.results.push(row))
      .on('error', (error: unknown) => seen.errors.push(error))
      .on('end', () => resolve(seen));
  });
}

async function readStream(command: Query): Promise<unknown[]> {
  const rows: unknown[] = [];
  for await (const row of command.stream()) rows.push(row);
  return rows;
}

let pool: mysql.Pool;
beforeEach(() => {
  pool = mysql.createPool({ uri: mysqlUrl(), connectionLimit: 1 });
});
afterEach(async () => {
  await new Promise((resolve) => pool.end(resolve));
});

test('a mysql2 callback program, unchanged: getConnection, query and execute with callbacks, release, pool.query/execute, the pool events, end(cb)', async () => {
  const events: Array<[string, number | undefined]> = [];
  for (const name of ['connection', 'acquire', 'release', 'enqueue'] as const) {
    pool.on(name, (connection?: { threadId: number }) => events.push([name, connection?.threadId]));
  }
  const conn = await getConnection(pool);
  const threadId = conn.threadId;
  const inserted = await run((cb) => conn.query(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [1, 'program'], cb));
  expect(inserted.rows).toMatchObject({ affectedRows: 1 });
  const selected = await run((cb) => conn.execute(`SELECT id, owner FROM ${T} WHERE id = ?`, [1], cb));
  expect(selected.rows).toEqual([{ id: 1, owner: 'program' }]);
  expect(selected.fields?.map((f) => f.name)).toEqual(['id', 'owner']);

  // A second getConnection waits for the only connection: `enqueue`, then it gets the released one.
  const waiting = getConnection(pool);
  conn.release();
  const second = await waiting;
  expect(second.threadId).toBe(threadId);
  second.release();

  expect((await run((cb) => pool.query('SELECT ? AS v', ['q'], cb))).rows).toEqual([{ v: 'q' }]);
  expect((await run((cb) => pool.execute('SELECT ? AS v', [42], cb))).rows).toEqual([{ v: 42 }]);
  await expect(run((cb) => pool.query('SELECT nope FROM nowhere', cb))).rejects.toMatchObject({ code: 'ER_NO_SUCH_TABLE' });

  expect(events).toEqual([
    ['connection', threadId],
    ['acquire', threadId],
    ['enqueue', undefined],
    ['release', threadId], // handed to the waiter:
    ['acquire', threadId],
    ['release', threadId],
    ...Array(3).fill([['acquire', threadId], ['release', threadId]]).flat(),
  ]);
  expect(pool.promise().stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0, destroyed: 0 });
  expect(await committed('program')).toEqual([{ id: 1, n: 0 }]);
});

test('streaming: pool.query(sql).stream(), conn.query(sql).stream(), pool.execute(sql, values).stream(); each connection goes back once its stream ends', async () => {
  const rows = Array.from({ length: 50 }, (_, i) => [100 + i, 'stream', i]);
  await side.query(`INSERT INTO ${T} (id, owner, n) VALUES ?`, [rows]);
  const sql = `SELECT n FROM ${T} WHERE owner = 'stream' ORDER BY id`;
  const expected = rows.map(([, , n]) => ({ n }));

  expect(await readStream(pool.query(sql))).toEqual(expected);
  await waitUntil(() => pool.promise().stats().idle === 1, 2_000);
  expect(await readStream(pool.execute(`${sql.replace("'stream'", '?')}`, ['stream']))).toEqual(expected);
  await waitUntil(() => pool.promise().stats().idle === 1, 2_000);

  const conn = await getConnection(pool);
  expect(await readStream(conn.query(sql))).toEqual(expected);
  expect(await readStream(conn.execute(`${sql.replace("'stream'", '?')}`, ['stream']))).toEqual(expected);
  conn.release();
  expect(pool.promise().stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0, rolledBack: 0 });
});

describe('an abandoned transaction through the callback module is rolled back before anyone else gets the connection', () => {
  test.each([
    ['beginTransaction(cb), then query(cb)', async (conn: mysql.PoolConnection, id: number) => {
      await run((cb) => conn.beginTransaction(cb));
      await run((cb) => conn.query(`UPDATE ${T} SET n = 1 WHERE id = ?`, [id], cb));
    }],
    ['a raw BEGIN through execute (streamed), then execute(cb)', async (conn: mysql.PoolConnection, id: number) => {
      await eventsOf(conn.execute('BEGIN'));
      await run((cb) => conn.execute(`UPDATE ${T} SET n = 1 WHERE id = ?`, [id], cb));
    }],
    ['START TRANSACTION through query (streamed), then a streamed execute', async (conn: mysql.PoolConnection, id: number) => {
      await readStream(conn.query('START TRANSACTION'));
      await readStream(conn.execute(`UPDATE ${T} SET n = 1 WHERE id = ?`, [id]));
    }],
  ])('%s, then release(): the row lock is freed and the change undone; the next user of the connection commits alone', async (_how, open) => {
    const id = 200 + Math.floor(Math.random() * 1_000_000);
    const owner = `abandon-${id}`;
    await side.query(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [id, owner]);
    const conn = await getConnection(pool);
    const threadId = conn.threadId;
    await open(conn, id);
    expect(await isRowLocked(side, T, id)).toBe(true);

    const rolledBack = nextEvent(pool.promise(), 'rollback');
    conn.release();
    const [{ threadId: rolledBackThread }] = await rolledBack;
    expect(rolledBackThread).toBe(threadId);
    expect(await isRowLocked(side, T, id)).toBe(false);
    expect(await committed(owner)).toEqual([{ id, n: 0 }]);

    const next = await getConnection(pool);
    expect(next.threadId).toBe(threadId);
    const { rows } = await run((cb) => next.query('SELECT @@in_transaction AS tx', cb));
    expect(rows).toEqual([{ tx: 0 }]);
    await run((cb) => next.execute(`INSERT INTO ${T} (id, owner) VALUES (?, ?)`, [id + 1, owner], cb));
    next.release();
    expect(await committed(owner)).toEqual([{ id, n: 0 }, { id: id + 1, n: 0 }]);
    expect(pool.promise().stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1, rollbackFailures: 0 });
  });
});

describe("execute() and query() return mysql2's command object, on the pool and on a connection", () => {
  test('Sequelize\'s `connection.execute(sql, values, cb).setMaxListeners(n)`: chainable, the callback runs, `fields` and `end` are emitted', async () => {
    const conn = await getConnection(pool);
    let called: Outcome | undefined;
    const command = conn.execute('SELECT ? AS v', [7], (err, rows, fields) => {
      called = { rows: err ?? rows, fields };
    });
    expect(command.setMaxListeners(0)).toBe(command);
    const seen = await eventsOf(command);
    expect(seen.fields).toBe(1);
    await waitUntil(() => called !== undefined, 2_000); // mysql2 calls back on the tick after `end`
    expect(called?.rows).toEqual([{ v: 7 }]);
    const queried = conn.query('SELECT 8 AS v', () => undefined);
    expect(queried.setMaxListeners(5)).toBe(queried);
    expect((await eventsOf(queried)).fields).toBe(1);
    conn.release();
  });

  test("without a callback: `fields`, one `result` per row, `end`; on the pool face too, whose connection goes back after `end`", async () => {
    const sql = 'SELECT 1 AS a UNION ALL SELECT 2';
    const conn = await getConnection(pool);
    // Listen at once: a command sent behind another may end before the first one's `end` is awaited.
    for (const seen of [conn.execute(sql), conn.query(sql)].map(eventsOf)) {
      expect(await seen).toEqual({ fields: 1, results: [{ a: 1 }, { a: 2 }], errors: [] });
    }
    conn.release();
    for (const seen of [pool.execute(sql), pool.query(sql)].map(eventsOf)) {
      expect(await seen).toEqual({ fields: 1, results: [{ a: 1 }, { a: 2 }], errors: [] });
    }
    await waitUntil(() => pool.promise().stats().idle === 1, 2_000);
    expect(pool.promise().stats()).toMatchObject({ leased: 0, abandoned: 0, destroyed: 0 });
  });

  test('a statement that fails: the callback gets the error, or `error` then `end` without one; the pool face gives its connection back either way', async () => {
    const bad = 'SELECT nope FROM nowhere';
    await expect(run((cb) => pool.execute(bad, cb))).rejects.toMatchObject({ code: 'ER_NO_SUCH_TABLE' });
    for (const command of [pool.execute(bad), pool.query(bad)]) {
      const seen = await eventsOf(command);
      expect(seen.errors).toEqual([expect.objectContaining({ code: 'ER_NO_SUCH_TABLE' })]);
    }
    await expect(readStream(pool.execute(bad))).rejects.toMatchObject({ code: 'ER_NO_SUCH_TABLE' });
    await waitUntil(() => pool.promise().stats().idle === 1, 2_000);
    const conn = await getConnection(pool);
    expect((await eventsOf(conn.execute(bad))).errors).toEqual([expect.objectContaining({ code: 'ER_NO_SUCH_TABLE' })]);
    await expect(run((cb) => conn.execute(bad, cb))).rejects.toMatchObject({ code: 'ER_NO_SUCH_TABLE' });
    expect((await run((cb) => conn.execute('SELECT 1 AS ok', cb))).rows).toEqual([{ ok: 1 }]);
    conn.release();
    expect(pool.promise().stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0, destroyed: 0 });
  });

  test("bind values mysql2 refuses: conn.execute throws at once as mysql2's does (nothing sent); pool.execute calls back with the TypeError and gives its connection back", async () => {
    const conn = await getConnection(pool);
    expect(() => conn.execute('SELECT ?', [undefined] as never, () => undefined)).toThrow(TypeError);
    expect((await run((cb) => conn.execute('SELECT 3 AS three', cb))).rows).toEqual([{ three: 3 }]);
    conn.release();
    expect(pool.promise().stats()).toMatchObject({ leased: 0, idle: 1, abandoned: 0 });
    await expect(run((cb) => pool.execute('SELECT ?', [undefined] as never, cb))).rejects.toBeInstanceOf(TypeError);
    await waitUntil(() => pool.promise().stats().idle === 1, 2_000);
    expect(pool.promise().stats()).toMatchObject({ leased: 0, abandoned: 0 });
  });

  test('a released connection: execute() still returns a command, which fails with ERR_LEASE_RELEASED (callback, or `error` then `end`) and sends nothing', async () => {
    const conn = await getConnection(pool);
    conn.release();
    await expect(run((cb) => conn.execute(`INSERT INTO ${T} (id, owner) VALUES (90, 'fenced')`, cb))).rejects.toMatchObject({ code: 'ERR_LEASE_RELEASED' });
    const seen = await eventsOf(conn.execute(`INSERT INTO ${T} (id, owner) VALUES (91, 'fenced')`));
    expect(seen.errors).toEqual([expect.objectContaining({ code: 'ERR_LEASE_RELEASED' })]);
    expect(await committed('fenced')).toEqual([]);
  });
});

test.each(['query', 'execute'] as const)(
  "a read-only error through pool.%s: the connection taken for it is destroyed instead of given back, as mysql2's pool does",
  async (method) => {
    const readOnly = mysql.createPool({ uri: mysqlUrl(), connectionLimit: 1, multipleStatements: method === 'query' });
    try {
      const run1792 = (cb: (err: Error | null) => void): unknown =>
        method === 'query'
          ? readOnly.query(`START TRANSACTION READ ONLY; INSERT INTO ${T} (id, owner) VALUES (300, 'read-only')`, cb)
          : readOnly.execute(`INSERT INTO ${T} (id, owner) VALUES (300, 'read-only')`, cb);
      if (method === 'execute') {
        // A prepared statement cannot start the read-only transaction: the session default does it.
        await run((cb) => readOnly.query('SET SESSION TRANSACTION READ ONLY', cb));
      }
      await expect(run(run1792)).rejects.toMatchObject({ errno: 1792 });
      await waitUntil(() => readOnly.promise().stats().destroyed === 1, 2_000);
      expect(readOnly.promise().stats()).toMatchObject({ leased: 0, total: 0, abandoned: 0 });
      expect(await committed('read-only')).toEqual([]);
    } finally {
      await readOnly.promise().end();
    }
  },
);

test('pool.execute after end(): the callback gets ERR_POOL_CLOSED; the command still ends', async () => {
  await new Promise((resolve) => pool.end(resolve));
  let error: unknown;
  const ended = eventsOf(pool.execute('SELECT 1', (err) => (error = err)));
  await ended;
  await waitUntil(() => error !== undefined, 2_000);
  expect(error).toMatchObject({ code: 'ERR_POOL_CLOSED' });
  const rows = await run((cb) => pool.query('SELECT 1', cb)).catch((e: unknown) => e);
  expect(rows).toMatchObject({ code: 'ERR_POOL_CLOSED' });
});
