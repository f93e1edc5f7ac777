/**
 * Drop-in compatibility: one scripted usage run against mysql2/promise's own
 * pool and against ours, with the same options, compared with toEqual. Nothing
 * is normalised except what differs by construction: each pool has its own
 * tables (their names are replaced by placeholders) and connection-specific
 * values (thread ids).
 */
import * as mysql from 'mysql2/promise';
import type { Connection } from 'mysql2/promise';
import { createPool } from '../src';
import { mysqlUrl, sideConnection, uniqueTable } from './support/db';

/** The surface both pools share, as a user of mysql2/promise sees it. */
interface AnyConnection {
  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  beginTransaction(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  release(): void;
  escape(value: unknown): string;
  escapeId(value: unknown): string;
  format(sql: string, values?: unknown): string;
  threadId: number;
}
interface AnyPool {
  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  getConnection(): Promise<AnyConnection>;
  escape(value: unknown): string;
  escapeId(value: unknown): string;
  format(sql: string, values?: unknown): string;
  end(): Promise<void>;
}

type Impl = 'mysql2' | 'ours';
const IMPLS: Impl[] = ['mysql2', 'ours'];

function makePool(impl: Impl, options: Record<string, unknown>): AnyPool {
  const full = { uri: mysqlUrl(), connectionLimit: 3, ...options };
  return (impl === 'mysql2' ? mysql.createPool(full as mysql.PoolOptions) : createPool(full as never)) as unknown as AnyPool;
}

interface Ctx {
  impl: Impl;
  pool: AnyPool;
  /** multipleStatements: true */
  multi: AnyPool;
  /** namedPlaceholders: true at the pool level */
  named: AnyPool;
  items: string;
  tags: string;
}

const ctx = {} as Record<Impl, Ctx>;
let side: Connection;
/** A table nobody creates, the same name for both (it appears in the error message). */
const MISSING = uniqueTable('missing');

function normalise(value: unknown, c: Ctx): unknown {
  if (typeof value === 'string') return value.split(c.items).join('<items>').split(c.tags).join('<tags>');
  if (Array.isArray(value)) return value.map((item) => normalise(item, c));
  if (value instanceof Date || Buffer.isBuffer(value) || value === null || typeof value !== 'object') return value;
  if (isField(value)) return normalise(describeField(value), c);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = normalise(item, c);
  return { __class: value.constructor?.name, ...out };
}

/** mysql2's ColumnDefinition keeps most attributes in lazy getters; compare what a user reads. */
function isField(value: object): boolean {
  return value.constructor?.name === 'ColumnDefinition';
}
function describeField(field: object): Record<string, unknown> {
  const f = field as Record<string, unknown>;
  const keys = ['catalog', 'db', 'schema', 'table', 'orgTable', 'name', 'orgName', 'characterSet', 'encoding',
    'columnLength', 'columnType', 'type', 'flags', 'decimals', 'typeName'];
  return Object.fromEntries(keys.map((key) => [key, f[key]]));
}

function describeError(error: unknown, c: Ctx): Record<string, unknown> {
  const e = error as Record<string, unknown>;
  return normalise({
    isError: error instanceof Error,
    name: e.name,
    message: e.message,
    code: e.code,
    errno: e.errno,
    sqlState: e.sqlState,
    sqlMessage: e.sqlMessage,
    sql: e.sql,
  }, c) as Record<string, unknown>;
}

/** Runs `step` against each pool in turn (mysql2's first) and returns the normalised results. */
async function both<T>(step: (c: Ctx) => Promise<T>): Promise<Record<Impl, unknown>> {
  const out = {} as Record<Impl, unknown>;
  for (const impl of IMPLS) out[impl] = normalise(await step(ctx[impl]), ctx[impl]);
  return out;
}

async function expectSame<T>(step: (c: Ctx) => Promise<T>): Promise<unknown> {
  const out = await both(step);
  expect(out.ours).toEqual(out.mysql2);
  return out.mysql2;
}

/** Runs `step`, which must reject; returns the normalised error fields. */
async function rejection(c: Ctx, step: () => Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await step();
  } catch (error) {
    return describeError(error, c);
  }
  throw new Error(`${c.impl}: expected a rejection`);
}

beforeAll(async () => {
  side = await sideConnection();
  for (const impl of IMPLS) {
    const c: Ctx = {
      impl,
      pool: makePool(impl, {}),
      multi: makePool(impl, { multipleStatements: true }),
      named: makePool(impl, { namedPlaceholders: true }),
      items: uniqueTable(`compat_items_${impl}`),
      tags: uniqueTable(`compat_tags_${impl}`),
    };
    ctx[impl] = c;
    await side.query(`CREATE TABLE ${c.items} (
      id INT AUTO_INCREMENT PRIMARY KEY,
      name VARCHAR(50) NOT NULL UNIQUE,
      qty INT NULL,
      price DECIMAL(10,2) NULL,
      created DATETIME NULL,
      flag TINYINT(1) NULL,
      doc JSON NULL,
      bin VARBINARY(16) NULL
    ) ENGINE=InnoDB`);
    await side.query(`CREATE TABLE ${c.tags} (id INT PRIMARY KEY, item_id INT NOT NULL, tag VARCHAR(20) NOT NULL) ENGINE=InnoDB`);
  }
});

afterAll(async () => {
  for (const impl of IMPLS) {
    const c = ctx[impl];
    if (c === undefined) continue;
    await Promise.all([c.pool.end(), c.multi.end(), c.named.end()]);
    await side.query(`DROP TABLE IF EXISTS ${c.items}, ${c.tags}`);
  }
  await side?.end();
});

const CREATED = new Date(2024, 0, 15, 10, 30, 45);

describe('results are identical', () => {
  // The tests in this block build on each other's rows (same script on both sides).

  test('INSERT with a values array -> ResultSetHeader', async () => {
    const result = await expectSame(async (c) => {
      const [header] = await c.pool.query(
        `INSERT INTO ${c.items} (name, qty, price, created, flag, doc, bin) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ['apple', 3, '1.50', CREATED, true, JSON.stringify({ a: [1, 2] }), Buffer.from([1, 2, 3])],
      );
      return header;
    });
    expect(result).toMatchObject({ __class: 'ResultSetHeader', affectedRows: 1, insertId: 1 });
  });

  test('bulk INSERT with VALUES ? and nested arrays', async () => {
    const result = await expectSame(async (c) => {
      const [header] = await c.pool.query(`INSERT INTO ${c.items} (name, qty, price, flag) VALUES ?`, [
        [
          ['banana', 5, '0.25', false],
          ['cherry', null, '12.00', null],
        ],
      ]);
      return header;
    });
    expect(result).toMatchObject({ affectedRows: 2, insertId: 2 });
  });

  test('execute INSERT (prepared) -> ResultSetHeader', async () => {
    await expectSame(async (c) => {
      const [header] = await c.pool.execute(`INSERT INTO ${c.items} (name, qty, price, created, flag) VALUES (?, ?, ?, ?, ?)`, [
        'damson',
        7,
        '3.10',
        CREATED,
        1,
      ]);
      return header;
    });
  });

  test('INSERT with an object (SET ?)', async () => {
    await expectSame(async (c) => {
      const [header] = await c.pool.query(`INSERT INTO ${c.items} SET ?`, { name: 'elder', qty: 1, price: '9.99' });
      return header;
    });
  });

  test('UPDATE -> affectedRows, changedRows, info', async () => {
    const result = await expectSame(async (c) => {
      const [changed] = await c.pool.query(`UPDATE ${c.items} SET qty = qty + 1 WHERE qty IS NOT NULL`);
      const [unchanged] = await c.pool.execute(`UPDATE ${c.items} SET price = price WHERE name = ?`, ['apple']);
      return { changed, unchanged };
    });
    expect(result).toMatchObject({ changed: { affectedRows: 4, changedRows: 4 } });
  });

  test('SELECT via query: rows and fields', async () => {
    const result = (await expectSame(async (c) => c.pool.query(`SELECT * FROM ${c.items} ORDER BY id`))) as [unknown[], unknown[]];
    expect(result[0]).toHaveLength(5);
    expect(result[1]).toHaveLength(8);
  });

  test('SELECT via execute (binary protocol): rows and fields', async () => {
    await expectSame(async (c) => c.pool.execute(`SELECT * FROM ${c.items} WHERE id >= ? ORDER BY id`, [2]));
  });

  test('expressions, NULLs, big numbers, dates, strings with quotes', async () => {
    await expectSame(async (c) =>
      c.pool.query(
        "SELECT 1 AS one, NULL AS nothing, 9007199254740993 AS big, 1.5e3 AS dbl, CAST('2024-02-29 12:00:00' AS DATETIME) AS dt, " +
          "DATE('2024-02-29') AS d, 'it''s' AS quoted, ? AS param, ? AS bin, ? AS lst",
        ['a "b" \\ c', Buffer.from('xyz'), [1, 2, 3]],
      ),
    );
  });

  test('a scalar instead of a values array', async () => {
    await expectSame(async (c) => c.pool.query('SELECT ? AS v', 5));
  });

  test('options object { sql, values } for query and execute', async () => {
    await expectSame(async (c) => ({
      query: await c.pool.query({ sql: `SELECT name, qty FROM ${c.items} WHERE id <= ? ORDER BY id`, values: [2] }),
      execute: await c.pool.execute({ sql: `SELECT name, qty FROM ${c.items} WHERE id <= ? ORDER BY id`, values: [2] }),
      // The values argument takes precedence over/merges with the object, as mysql2 decides.
      both: await c.pool.query({ sql: 'SELECT ? AS v', values: [1] }, [2]),
    }));
  });

  test('{ sql, rowsAsArray: true }', async () => {
    const result = (await expectSame(async (c) => ({
      query: await c.pool.query({ sql: `SELECT id, name FROM ${c.items} ORDER BY id`, rowsAsArray: true }),
      execute: await c.pool.execute({ sql: `SELECT id, name FROM ${c.items} WHERE id > ? ORDER BY id`, rowsAsArray: true }, [3]),
    }))) as { query: [unknown[]] };
    expect(result.query[0][0]).toEqual([1, 'apple']);
  });

  test('namedPlaceholders per query, with an object of values', async () => {
    await expectSame(async (c) => ({
      query: await c.pool.query({ sql: `SELECT name FROM ${c.items} WHERE id > :min AND qty > :qty ORDER BY id`, namedPlaceholders: true }, { min: 1, qty: 2 }),
      execute: await c.pool.execute({ sql: 'SELECT :a + :b AS s, :a AS again', namedPlaceholders: true }, { a: 1, b: 2 }),
    }));
  });

  test('namedPlaceholders: true as a pool option', async () => {
    const result = await expectSame(async (c) => ({
      query: await c.named.query(`SELECT name FROM ${c.items} WHERE name = :name`, { name: 'banana' }),
      execute: await c.named.execute('SELECT :x * 2 AS doubled', { x: 21 }),
      positional: await c.named.query('SELECT ? AS p', [7]),
    }));
    expect((result as { execute: [unknown] }).execute[0]).toEqual([{ __class: 'Object', doubled: 42 }]);
  });

  test('typeCast function', async () => {
    const typeCast = (field: { type: string; length: number; string(): string | null }, next: () => unknown): unknown => {
      if (field.type === 'TINY' && field.length === 1) {
        const value = field.string();
        return value === null ? null : value === '1';
      }
      if (field.type === 'NEWDECIMAL') return `€${field.string()}`;
      return next();
    };
    const result = (await expectSame(async (c) => c.pool.query({ sql: `SELECT name, flag, price FROM ${c.items} ORDER BY id`, typeCast }))) as [
      Array<{ flag: unknown }>,
    ];
    expect(result[0][0]).toMatchObject({ flag: true, price: '€1.50' });
  });

  test('nestTables: true and nestTables: "_"', async () => {
    await expectSame(async (c) => {
      await c.pool.query(`INSERT INTO ${c.tags} (id, item_id, tag) VALUES (1, 1, 'red'), (2, 1, 'fruit'), (3, 2, 'yellow')`);
      const sql = `SELECT i.id, i.name, t.tag FROM ${c.items} i JOIN ${c.tags} t ON t.item_id = i.id ORDER BY t.id`;
      return {
        nested: await c.pool.query({ sql, nestTables: true }),
        underscore: await c.pool.query({ sql, nestTables: '_' }),
      };
    });
  });

  test('multipleStatements: several result sets and OK packets', async () => {
    const result = (await expectSame(async (c) =>
      c.multi.query(
        `SELECT 1 AS a; INSERT INTO ${c.tags} (id, item_id, tag) VALUES (10, 3, 'x'); ` +
          `SELECT id, tag FROM ${c.tags} WHERE id >= ? ORDER BY id; UPDATE ${c.tags} SET tag = 'y' WHERE id = 10`,
        [3],
      ),
    )) as [unknown[]];
    expect(result[0]).toHaveLength(4);
  });

  test('a statement with warnings', async () => {
    await expectSame(async (c) => {
      const [header] = await c.pool.query(`UPDATE ${c.items} SET qty = 'not a number' WHERE id = -1`);
      const [rows] = await c.pool.query("SELECT CAST('12abc' AS SIGNED) AS n");
      return { header, rows };
    });
  });
});

describe('errors are identical', () => {
  test('ER_DUP_ENTRY', async () => {
    const result = await expectSame(async (c) => ({
      query: await rejection(c, () => c.pool.query(`INSERT INTO ${c.items} (name) VALUES (?)`, ['apple'])),
      execute: await rejection(c, () => c.pool.execute(`INSERT INTO ${c.items} (id, name) VALUES (?, ?)`, [1, 'zzz'])),
    }));
    expect(result).toMatchObject({ query: { isError: true, code: 'ER_DUP_ENTRY', errno: 1062, sqlState: '23000' } });
  });

  test('ER_PARSE_ERROR', async () => {
    const result = await expectSame(async (c) => ({
      query: await rejection(c, () => c.pool.query('SELEC 1')),
      execute: await rejection(c, () => c.pool.execute('SELECT FROM WHERE ?', [1])),
    }));
    expect(result).toMatchObject({ query: { isError: true, code: 'ER_PARSE_ERROR', errno: 1064 } });
  });

  test('ER_NO_SUCH_TABLE', async () => {
    const result = await expectSame(async (c) => ({
      query: await rejection(c, () => c.pool.query(`SELECT * FROM ${MISSING}`)),
      execute: await rejection(c, () => c.pool.execute(`SELECT * FROM ${MISSING} WHERE id = ?`, [1])),
    }));
    expect(result).toMatchObject({ query: { isError: true, code: 'ER_NO_SUCH_TABLE', errno: 1146, sqlState: '42S02' } });
  });

  test('errors on a connection from getConnection, and the connection stays usable', async () => {
    await expectSame(async (c) => {
      const conn = await c.pool.getConnection();
      try {
        return {
          dup: await rejection(c, () => conn.query(`INSERT INTO ${c.items} (name) VALUES ('apple')`)),
          parse: await rejection(c, () => conn.execute('SELEC ?', [1])),
          missing: await rejection(c, () => conn.query(`SELECT 1 FROM ${MISSING}`)),
          after: (await conn.query('SELECT 2 AS still_ok'))[0],
        };
      } finally {
        conn.release();
      }
    });
  });

  test('execute with undefined in the values rejects the same way', async () => {
    const result = await expectSame(async (c) => ({
      error: await rejection(c, () => c.pool.execute('SELECT ? AS v', [undefined])),
    }));
    expect(result).toMatchObject({ error: { isError: true, name: 'TypeError', message: expect.stringContaining('undefined') } });
  });

  test('passing a callback throws the same message synchronously', async () => {
    const callback = (): void => undefined;
    const result = await expectSame(async (c) => {
      const conn = await c.pool.getConnection();
      const thrown = (fn: () => unknown): unknown => {
        try {
          const result = fn();
          // Do not leave a stray promise behind if it did not throw.
          if (result instanceof Promise) result.catch(() => undefined);
          return 'did not throw';
        } catch (error) {
          return { isError: error instanceof Error, message: (error as Error).message };
        }
      };
      try {
        return {
          poolQuery: thrown(() => c.pool.query('SELECT 1', callback)),
          poolExecute: thrown(() => c.pool.execute('SELECT 1', callback)),
          connQuery: thrown(() => conn.query('SELECT 1', callback)),
          connExecute: thrown(() => conn.execute('SELECT 1', callback)),
        };
      } finally {
        conn.release();
      }
    });
    const expected = { isError: true, message: 'Callback function is not available with promise clients.' };
    expect(result).toMatchObject({ poolQuery: expected, poolExecute: expected, connQuery: expected, connExecute: expected });
  });
});

describe('transactions on getConnection behave the same', () => {
  async function visibleNames(c: Ctx): Promise<string[]> {
    const [rows] = await side.query(`SELECT name FROM ${c.items} WHERE name LIKE 'tx-%' ORDER BY name`);
    return (rows as Array<{ name: string }>).map((row) => row.name);
  }

  test('commit is visible, rollback is not, and a rolled-back insert id is not reused', async () => {
    const result = await expectSame(async (c) => {
      const conn = await c.pool.getConnection();
      try {
        await conn.beginTransaction();
        const [committed] = await conn.query(`INSERT INTO ${c.items} (name) VALUES ('tx-committed')`);
        const beforeCommit = await visibleNames(c);
        await conn.commit();
        const afterCommit = await visibleNames(c);

        await conn.beginTransaction();
        const [rolledBack] = await conn.execute(`INSERT INTO ${c.items} (name) VALUES (?)`, ['tx-rolled-back']);
        const [inside] = await conn.query(`SELECT name FROM ${c.items} WHERE name LIKE 'tx-%' ORDER BY name`);
        await conn.rollback();
        const afterRollback = await visibleNames(c);
        return { committed, beforeCommit, afterCommit, rolledBack, inside, afterRollback };
      } finally {
        conn.release();
      }
    });
    expect(result).toMatchObject({
      beforeCommit: [],
      afterCommit: ['tx-committed'],
      inside: [{ name: 'tx-committed' }, { name: 'tx-rolled-back' }],
      afterRollback: ['tx-committed'],
    });
  });

  test('the statements of a transaction report the same server status flags', async () => {
    await expectSame(async (c) => {
      const conn = await c.pool.getConnection();
      try {
        await conn.beginTransaction();
        const [insert] = await conn.query(`INSERT INTO ${c.items} (name) VALUES ('tx-flags')`);
        const [update] = await conn.execute(`UPDATE ${c.items} SET qty = 1 WHERE name = ?`, ['tx-flags']);
        await conn.rollback();
        const [after] = await conn.query(`UPDATE ${c.items} SET qty = 1 WHERE name = 'tx-flags'`);
        return { insert, update, after };
      } finally {
        conn.release();
      }
    });
  });
});

describe('escape, escapeId and format are identical', () => {
  const values: unknown[] = [
    'plain',
    "it's \"quoted\" \\ with\nnewline\0nul",
    42,
    -1.5,
    0,
    true,
    false,
    null,
    undefined,
    new Date(2024, 1, 29, 23, 59, 58, 123),
    new Date(Number.NaN),
    Buffer.from([0, 1, 254, 255]),
    [1, 'two', null],
    [[1, 2], ['a', 'b']],
    { a: 1, 'b c': 'x', d: null },
    { toSqlString: () => 'NOW()' },
    BigInt('9007199254740993'),
  ];
  const ids: unknown[] = ['col', 'db.table', 'weird`name', ['a', 'b.c'], 'x.*'];
  const formats: Array<[string, unknown]> = [
    ['SELECT ?, ?', ['a', 1]],
    ['SELECT * FROM ?? WHERE ?? = ?', ['t', 'c', "o'k"]],
    ['INSERT INTO t SET ?', [{ a: 1, b: 'x' }]],
    ['SELECT ?', [[1, 2, 3]]],
    ['SELECT ? AS a, ? AS b', ['only one']],
    ['SELECT 1', undefined],
    ['SELECT ?', 5],
    ['SELECT :named', { named: 1 }],
  ];

  function table(target: Pick<AnyPool, 'escape' | 'escapeId' | 'format'>): unknown {
    const capture = (fn: () => string): string => {
      try {
        return fn();
      } catch (error) {
        return `throws: ${(error as Error).message}`;
      }
    };
    return {
      escape: values.map((value) => capture(() => target.escape(value))),
      escapeId: ids.map((id) => capture(() => target.escapeId(id))),
      format: formats.map(([sql, args]) => capture(() => target.format(sql, args))),
    };
  }

  test('on the pool', async () => {
    await expectSame(async (c) => table(c.pool));
  });

  test('on a connection', async () => {
    await expectSame(async (c) => {
      const conn = await c.pool.getConnection();
      try {
        return table(conn);
      } finally {
        conn.release();
      }
    });
  });

  test('with pool options that change escaping (timezone, stringifyObjects)', async () => {
    const made: AnyPool[] = [];
    try {
      await expectSame(async (c) => {
        const pool = makePool(c.impl, { timezone: '+05:30', stringifyObjects: true });
        made.push(pool);
        return table(pool);
      });
    } finally {
      await Promise.all(made.map((pool) => pool.end()));
    }
  });
});

describe('around the edges', () => {
  // mysql2 emits neither `release` nor `acquire` when a released connection goes straight to a
  // queued waiter; ours emits both. Both keep acquire - release = connections in use, which is
  // what monitoring relies on, so that (and the other events) is what is compared.
  test("mysql2's pool events: same connection/enqueue counts, acquire/release balance", async () => {
    const made: AnyPool[] = [];
    try {
      const result = await expectSame(async (c) => {
        const pool = makePool(c.impl, { connectionLimit: 1 });
        made.push(pool);
        const count: Record<string, number> = { connection: 0, acquire: 0, release: 0, enqueue: 0 };
        const emitter = pool as unknown as NodeJS.EventEmitter;
        for (const name of Object.keys(count)) emitter.on(name, () => count[name]++);
        const inUse = (): number => count.acquire - count.release;
        const trace: unknown[] = [];
        await pool.query('SELECT 1');
        trace.push(inUse());
        const conn = await pool.getConnection();
        trace.push(inUse());
        const waiting = pool.query('SELECT 2'); // has to wait for conn
        await new Promise((resolve) => setTimeout(resolve, 20));
        trace.push(count.enqueue);
        conn.release();
        await waiting;
        trace.push(inUse());
        await pool.execute('SELECT 3');
        trace.push(inUse());
        return { trace, connection: count.connection, enqueue: count.enqueue };
      });
      expect(result).toMatchObject({ trace: [0, 1, 1, 0, 0], connection: 1, enqueue: 1 });
    } finally {
      await Promise.all(made.map((pool) => pool.end()));
    }
  });

  test('a query on an ended pool rejects with the same message', async () => {
    await expectSame(async (c) => {
      const pool = makePool(c.impl, {});
      await pool.query('SELECT 1');
      await pool.end();
      // Ours adds a code (ERR_POOL_CLOSED) and a class name; the message is mysql2's.
      const pick = ({ isError, message }: Record<string, unknown>): unknown => ({ isError, message });
      return {
        query: pick(await rejection(c, () => pool.query('SELECT 1'))),
        execute: pick(await rejection(c, () => pool.execute('SELECT 1'))),
        getConnection: pick(await rejection(c, () => pool.getConnection())),
      };
    });
  });

  // mysql2 throws synchronously from execute() on an `undefined` bind value (nothing is
  // sent). The statement must not stay counted as in flight, or every later release of that
  // connection would look like an abandoned transaction (abandon event + ROLLBACK round trip).
  test('a statement mysql2 refuses before sending (undefined bind value) leaves the connection clean', async () => {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
    try {
      const abandoned: unknown[] = [];
      pool.on('abandon', (event) => abandoned.push(event));
      await expect(pool.execute('SELECT ? AS v', [undefined] as never)).rejects.toThrow(/undefined/);
      const conn = await pool.getConnection();
      await expect(conn.execute('SELECT ? AS v', [undefined] as never)).rejects.toThrow(/undefined/);
      conn.release();
      for (let i = 0; i < 3; i++) await pool.query('SELECT 1');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(abandoned).toEqual([]);
      expect(pool.stats()).toMatchObject({ abandoned: 0, rolledBack: 0 });
    } finally {
      await pool.end();
    }
  });

  // mysql2/promise (with its default `trace: true`) gives a server error the stack of the
  // call that ran the query; so do we.
  test("a server error's stack points at the caller's line, as with mysql2/promise", async () => {
    const result = await both(async (c) => {
      const stacks: string[] = [];
      for (const run of [() => c.pool.query('SELEC 1'), () => c.pool.execute('SELEC ?', [1])]) {
        try {
          await run();
        } catch (error) {
          stacks.push(String((error as Error).stack));
        }
      }
      const conn = await c.pool.getConnection();
      try {
        await conn.query('SELEC 2');
      } catch (error) {
        stacks.push(String((error as Error).stack));
      } finally {
        conn.release();
      }
      return stacks.map((stack) => stack.includes('compat.test.ts'));
    });
    expect(result.mysql2).toEqual([true, true, true]);
    expect(result.ours).toEqual(result.mysql2);
  });
});
