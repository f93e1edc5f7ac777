/**
 * pool.withScope: every connection a request takes runs in the scope's unit of
 * work, and the scope's decision commits or rolls back all of them together.
 */
import type { RowDataPacket } from 'mysql2/promise';
import { createPool, ScopeCommitError, type Pool } from '../../src/index';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';

const table = uniqueTable('scope');
let side: Awaited<ReturnType<typeof sideConnection>>;
let pool: Pool;

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
  pool = createPool({ uri: mysqlUrl(), connectionLimit: 4 });
});

afterEach(async () => {
  await side.query(`DELETE FROM ${table}`);
});

afterAll(async () => {
  await pool.end();
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
});

async function visible(): Promise<number[]> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table} ORDER BY id`);
  return rows.map((row) => Number(row.id));
}

const insert = (id: number): string => `INSERT INTO ${table} VALUES (${id})`;

test('a scope that resolves commits two connections and pool.query together, and not before it ends', async () => {
  let seenInside: number[] = [];
  const result = await pool.withScope(async () => {
    const a = await pool.getConnection();
    const b = await pool.getConnection();
    expect(a.threadId).not.toBe(b.threadId);
    await a.query(insert(1));
    await b.query(insert(2));
    await pool.query(insert(3));
    await pool.execute(insert(4));
    a.release(); // handed to the scope, not committed yet
    seenInside = await visible();
    return 'done';
  });
  expect(result).toBe('done');
  expect(seenInside).toEqual([]);
  expect(await visible()).toEqual([1, 2, 3, 4]);
  expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0 });
});

test('decide: a failure returned without throwing (a 502) rolls back every connection', async () => {
  const response = await pool.withScope(
    async () => {
      const conn = await pool.getConnection();
      await conn.query(insert(1));
      await pool.query(insert(2));
      return { status: 502 };
    },
    { decide: (outcome) => (outcome.ok && (outcome.value as { status: number }).status < 400 ? 'commit' : 'rollback') },
  );
  expect(response).toEqual({ status: 502 });
  expect(await visible()).toEqual([]);
});

test('a thrown error rolls back and is rethrown unchanged', async () => {
  const failure = new Error('payment service failed');
  await expect(
    pool.withScope(async () => {
      await pool.query(insert(1));
      const conn = await pool.getConnection(); // still held when the scope ends: taken over
      await conn.query(insert(2));
      throw failure;
    }),
  ).rejects.toBe(failure);
  expect(await visible()).toEqual([]);
  expect(pool.stats()).toMatchObject({ leased: 0 });
});

test('a transaction the handler committed itself stays committed, even when the scope rolls back', async () => {
  await pool.withScope(
    async () => {
      await pool.transaction(async (tx) => {
        await tx.query(insert(1));
      });
      await pool.query(insert(2));
    },
    { decide: () => 'rollback' },
  );
  expect(await visible()).toEqual([1]);
});

test('a nested withScope joins the outer scope: its writes follow the outer decision', async () => {
  await pool.withScope(
    async () => {
      await pool.withScope(async () => {
        await pool.query(insert(1));
      }); // the inner scope resolving commits nothing on its own
      expect(await visible()).toEqual([]);
    },
    { decide: () => 'rollback' },
  );
  expect(await visible()).toEqual([]);
});

test('outside any scope nothing changes: pool.query autocommits at once', async () => {
  await pool.query(insert(1));
  expect(await visible()).toEqual([1]);
});

test('a commit that fails part way rolls back the rest and says which committed and which did not', async () => {
  let second = 0;
  const error = await pool
    .withScope(
      async () => {
        const a = await pool.getConnection();
        const b = await pool.getConnection();
        const c = await pool.getConnection();
        second = b.threadId;
        await a.query(insert(1));
        await b.query(insert(2));
        await c.query(insert(3));
      },
      {
        decide: async (): Promise<'commit'> => {
          await side.query(`KILL ${second}`); // the second connection's COMMIT will fail
          return 'commit';
        },
      },
    )
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ScopeCommitError);
  const scopeError = error as ScopeCommitError;
  expect(scopeError.code).toBe('ERR_SCOPE_COMMIT_FAILED');
  expect(scopeError.committed).toHaveLength(1);
  expect(scopeError.failed.map((f) => f.threadId)).toEqual([second]);
  expect(scopeError.rolledBack).toHaveLength(1);
  expect(await visible()).toEqual([1]); // committed before the failure; 2 lost with its connection; 3 rolled back
  expect(pool.stats()).toMatchObject({ leased: 0 });
});

test('an aborted scope (client gone) rolls back, and later work in it rejects instead of autocommitting', async () => {
  const handle = pool.openScope();
  await handle.run(() => pool.query(insert(1)));
  await handle.abort();
  await expect(handle.run(() => pool.query(insert(2)))).rejects.toMatchObject({ code: 'ERR_SCOPE_CLOSED' });
  await expect(handle.run(() => pool.getConnection())).rejects.toMatchObject({ code: 'ERR_SCOPE_CLOSED' });
  expect(await visible()).toEqual([]);
  expect(pool.stats()).toMatchObject({ leased: 0 });
});

test('a connection still being acquired when the scope ends never reaches the code, and goes back to the pool', async () => {
  const handle = pool.openScope();
  const late = handle.run(() => pool.getConnection());
  await handle.finish('rollback');
  await expect(late).rejects.toMatchObject({ code: 'ERR_SCOPE_CLOSED' });
  expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0 });
});
