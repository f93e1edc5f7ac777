/**
 * Two-phase request scopes (`twoPhase: true`): the scope's connections are XA
 * branches of one global transaction, committed all or none, and
 * `pool.recoverXa()` finishes what a crash of the coordinator left prepared,
 * as its decision record says.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import express from 'express';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, ScopeCommitError, type Pool } from '../../src/index';
import { scope } from '../../src/scope/express';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { startProxy } from '../support/fault-proxy';
import { close, listen } from './http-support';

const table = uniqueTable('scope_xa');
const xaLogTable = uniqueTable('xa_log');
let side: Connection;
let pool: Pool;

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
  pool = createPool({ uri: mysqlUrl(), connectionLimit: 4, xaLogTable });
});

afterEach(async () => {
  await side.query(`DELETE FROM ${table}`);
});

afterAll(async () => {
  await pool.end();
  // Nothing of ours may stay prepared: it would hold its locks until someone recovers it.
  for (const row of await preparedOfThisFile()) await side.query(`XA ROLLBACK X'${row.gtrid.toString('hex')}',X'${row.bqual.toString('hex')}'`);
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.query(`DROP TABLE IF EXISTS ${xaLogTable}`);
  await side.end();
});

async function visible(): Promise<number[]> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table} ORDER BY id`);
  return rows.map((row) => Number(row.id));
}

const insert = (id: number): string => `INSERT INTO ${table} VALUES (${id})`;

/**
 * The global transaction ids of a pool start with a tag of its decision table
 * (a recovery touches only its own): this file's prepared branches.
 */
async function preparedOfThisFile(logTable = xaLogTable): Promise<Array<{ gtrid: Buffer; bqual: Buffer }>> {
  const tag = `rp:${createHash('sha256').update(`\`${logTable}\``).digest('hex').slice(0, 8)}:`;
  const [rows] = await side.query<RowDataPacket[]>('XA RECOVER');
  return rows
    .map((row) => {
      const data = row['data'] as Buffer;
      const gtridLength = Number(row['gtrid_length']);
      return { gtrid: data.subarray(0, gtridLength), bqual: data.subarray(gtridLength) };
    })
    .filter((x) => x.gtrid.toString('latin1').startsWith(tag));
}

async function logRows(logTable = xaLogTable): Promise<Array<{ gtrid: string; decision: string }>> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT gtrid, decision FROM ${logTable}`).catch(() => [[] as RowDataPacket[]]);
  return rows.map((row) => ({ gtrid: String(row['gtrid']), decision: String(row['decision']) }));
}

/** True while the server has a transaction open on the connection `threadId`. */
async function transactionOpen(threadId: number): Promise<boolean> {
  const [trx] = await side.query<RowDataPacket[]>('SELECT 1 FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?', [threadId]);
  return trx.length > 0;
}

test('a two-phase scope commits two connections and pool.query all together, and leaves no record behind', async () => {
  const threads: number[] = [];
  let seenInside: number[] = [];
  let openInside = false;
  await pool.withScope(
    async () => {
      const a = await pool.getConnection();
      const b = await pool.getConnection();
      threads.push(a.threadId, b.threadId);
      await a.query(insert(1));
      await b.query(insert(2));
      await pool.query(insert(3));
      openInside = await transactionOpen(a.threadId);
      a.release(); // handed to the scope
      seenInside = await visible();
    },
    { twoPhase: true },
  );
  expect(openInside).toBe(true);
  expect(seenInside).toEqual([]);
  expect(await visible()).toEqual([1, 2, 3]);
  expect(await logRows()).toEqual([]); // the commit record is dropped once every branch committed
  expect(await preparedOfThisFile()).toEqual([]);
  expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0 });
  // The connections are clean and reusable: plain autocommit work on them is permanent at once.
  await pool.query(insert(9));
  expect(await visible()).toEqual([1, 2, 3, 9]);
});

test('a two-phase scope decided rollback leaves nothing, on any connection', async () => {
  await pool.withScope(
    async () => {
      const a = await pool.getConnection();
      await a.query(insert(1));
      await pool.query(insert(2));
    },
    { twoPhase: true, decide: () => 'rollback' },
  );
  expect(await visible()).toEqual([]);
  expect(await preparedOfThisFile()).toEqual([]);
  expect(pool.stats()).toMatchObject({ leased: 0, pendingRollback: 0 });
});

test('one connection commits in one phase, with no decision record', async () => {
  await pool.withScope(() => pool.query(insert(1)), { twoPhase: true });
  expect(await visible()).toEqual([1]);
  expect(await logRows()).toEqual([]);
});

test('a connection lost before the end makes the whole scope roll back: the others are not committed alone', async () => {
  let victim = 0;
  const error = await pool
    .withScope(
      async () => {
        const a = await pool.getConnection();
        const b = await pool.getConnection();
        victim = b.threadId;
        await a.query(insert(1));
        await b.query(insert(2));
        await pool.query(insert(3));
      },
      {
        twoPhase: true,
        decide: async (): Promise<'commit'> => {
          await side.query(`KILL ${victim}`);
          return 'commit';
        },
      },
    )
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ScopeCommitError);
  const scopeError = error as ScopeCommitError;
  expect(scopeError.code).toBe('ERR_SCOPE_COMMIT_FAILED');
  expect(scopeError.committed).toEqual([]);
  expect(scopeError.failed.map((f) => f.threadId)).toEqual([victim]);
  expect(scopeError.rolledBack).toHaveLength(2);
  expect(await visible()).toEqual([]); // without two-phase commit, 1 and 3 would now be permanent
  expect(await preparedOfThisFile()).toEqual([]);
});

test('an XA PREPARE that fails rolls back every branch, the prepared ones too', async () => {
  // The second connection's XA PREPARE never reaches the server: its connection is cut.
  const proxy = await startProxy(mysqlUrl(), { onQuery: (sql, index) => (index === 1 && sql.startsWith('XA PREPARE') ? 'cut' : 'forward') });
  const proxied = createPool({ uri: proxy.url, connectionLimit: 3, xaLogTable });
  try {
    const error = await proxied
      .withScope(
        async () => {
          const a = await proxied.getConnection();
          const b = await proxied.getConnection();
          await a.query(insert(1));
          await b.query(insert(2));
        },
        { twoPhase: true },
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScopeCommitError);
    expect((error as ScopeCommitError).committed).toEqual([]);
    expect((error as ScopeCommitError).leftPrepared).toEqual([]);
    expect(proxy.queries.some((q) => q.index === 0 && q.sql.startsWith('XA PREPARE'))).toBe(true); // the first one was prepared
    expect(proxy.queries.some((q) => q.index === 0 && q.sql.startsWith('XA ROLLBACK'))).toBe(true); // ...and rolled back
    expect(await visible()).toEqual([]);
    expect(await preparedOfThisFile()).toEqual([]);
  } finally {
    await proxied.end();
    await proxy.close();
  }
});

test.each([
  ['never reaches the server', 'cut'],
  ['reaches the server but its reply is lost', 'lose-reply'],
] as const)('an XA COMMIT that %s with its connection is finished from another connection: all committed', async (_label, action) => {
  const proxy = await startProxy(mysqlUrl(), { onQuery: (sql, index) => (index === 1 && sql.startsWith('XA COMMIT') ? action : 'forward') });
  const proxied = createPool({ uri: proxy.url, connectionLimit: 3, xaLogTable });
  try {
    await proxied.withScope(
      async () => {
        const a = await proxied.getConnection();
        const b = await proxied.getConnection();
        await a.query(insert(1));
        await b.query(insert(2));
      },
      { twoPhase: true },
    );
    expect(await visible()).toEqual([1, 2]);
    expect(await preparedOfThisFile()).toEqual([]);
    expect(await logRows()).toEqual([]);
  } finally {
    await proxied.end();
    await proxy.close();
  }
});

test('code inside a two-phase scope cannot commit part of it: the server refuses COMMIT, and the scope still decides', async () => {
  const error = await pool
    .withScope(
      async () => {
        const conn = await pool.getConnection();
        await conn.query(insert(1));
        await conn.commit();
      },
      { twoPhase: true },
    )
    .catch((e: unknown) => e);
  expect(error).toMatchObject({ code: 'ER_XAER_RMFAIL' });
  expect(await visible()).toEqual([]); // it threw: the scope rolled back
});

test('a recovery racing a live coordinator wins cleanly: its rollback decision makes the coordinator roll back too', async () => {
  const internals = pool as unknown as { openSideConnection(): Promise<Connection> };
  const open = internals.openSideConnection;
  const recovery = createPool({ uri: mysqlUrl(), connectionLimit: 1, xaLogTable });
  let report: Awaited<ReturnType<Pool['recoverXa']>> | undefined;
  // Every branch is prepared when the coordinator opens its side connection to record the decision:
  // a recovery run exactly then sees them prepared and undecided.
  internals.openSideConnection = async function (this: Pool) {
    report ??= await recovery.recoverXa();
    return open.call(this);
  };
  try {
    const error = await pool
      .withScope(
        async () => {
          const a = await pool.getConnection();
          const b = await pool.getConnection();
          await a.query(insert(1));
          await b.query(insert(2));
        },
        { twoPhase: true },
      )
      .catch((e: unknown) => e);
    expect(report?.inUse).toHaveLength(2); // still owned by the coordinator's live connections
    expect(report?.committed).toEqual([]);
    expect(error).toBeInstanceOf(ScopeCommitError);
    expect((error as ScopeCommitError).rolledBack).toHaveLength(2);
    expect(await visible()).toEqual([]);
    expect(await preparedOfThisFile()).toEqual([]);
    expect((await logRows()).map((r) => r.decision)).toEqual(['rollback']); // kept, for a coordinator that was only slow
  } finally {
    internals.openSideConnection = open;
    await recovery.end();
    await side.query(`DELETE FROM ${xaLogTable}`);
  }
});

describe('recovery after the coordinator crashed', () => {
  function crashChild(moment: 'before-decision' | 'after-decision'): Promise<string> {
    const script = join(__dirname, 'fixtures', 'xa-crash.ts');
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', script, table, xaLogTable, moment],
        { cwd: join(__dirname, '..', '..'), env: { ...process.env, MYSQL_URL: mysqlUrl() }, timeout: 40_000 },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
      );
    });
  }

  /** The server keeps a dead coordinator's prepared branches; it may take a moment to see the sockets close. */
  async function waitForPrepared(count: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await preparedOfThisFile()).length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} prepared branches`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  test('a crash after the commit decision: recoverXa commits every prepared branch', async () => {
    const out = await crashChild('after-decision');
    expect(out).toContain('crashing');
    await waitForPrepared(2);
    expect(await visible()).toEqual([]); // prepared, not committed: invisible (and their rows locked)
    expect((await logRows()).map((r) => r.decision)).toEqual(['commit']);

    // A pool recording its decisions elsewhere is another application's coordinator: hands off.
    const otherLog = uniqueTable('xa_log_other');
    const stranger = createPool({ uri: mysqlUrl(), connectionLimit: 1, xaLogTable: otherLog });
    try {
      expect(await stranger.recoverXa()).toEqual({ committed: [], rolledBack: [], inUse: [] });
    } finally {
      await stranger.end();
      await side.query(`DROP TABLE IF EXISTS ${otherLog}`);
    }
    expect(await preparedOfThisFile()).toHaveLength(2);

    const report = await pool.recoverXa();
    expect(report.committed).toHaveLength(2);
    expect(report.rolledBack).toEqual([]);
    expect(await visible()).toEqual([1, 2]);
    expect(await preparedOfThisFile()).toEqual([]);
    expect(await logRows()).toEqual([]); // done with
  });

  test('a crash before the decision: recoverXa rolls every prepared branch back (presumed abort)', async () => {
    const out = await crashChild('before-decision');
    expect(out).toContain('crashing');
    await waitForPrepared(2);
    const report = await pool.recoverXa();
    expect(report.rolledBack).toHaveLength(2);
    expect(report.committed).toEqual([]);
    expect(await visible()).toEqual([]);
    expect(await preparedOfThisFile()).toEqual([]);
    expect(await pool.recoverXa()).toEqual({ committed: [], rolledBack: [], inUse: [] }); // idempotent
    await side.query(`DELETE FROM ${xaLogTable}`);
  });
});

test('rollback-pool/express with twoPhase: a 2xx commits both connections, a 502 leaves nothing', async () => {
  const app = express();
  app.use(scope(pool, { twoPhase: true }));
  app.post('/ok', async (_req, res) => {
    const a = await pool.getConnection();
    await a.query(insert(1));
    await pool.query(insert(2));
    res.status(201).json({ ok: true });
  });
  app.post('/bad-gateway', async (_req, res) => {
    const a = await pool.getConnection();
    await a.query(insert(3));
    await pool.query(insert(4));
    res.status(502).json({ error: 'payment service failed' });
  });
  const server = createServer(app);
  const url = await listen(server);
  try {
    const ok = await fetch(`${url}/ok`, { method: 'POST' });
    expect(ok.status).toBe(201);
    expect(await visible()).toEqual([1, 2]); // committed before the response was sent
    const bad = await fetch(`${url}/bad-gateway`, { method: 'POST' });
    expect(bad.status).toBe(502);
    expect(await visible()).toEqual([1, 2]);
    expect(await preparedOfThisFile()).toEqual([]);
  } finally {
    await close(server);
  }
});

/**
 * Runs `fn` with a pool logged in as a fresh user who may read and write the database's
 * tables but not create any, recording its XA decisions in `logTable`; drops the user after.
 */
async function asUserWithoutCreate(logTable: string, fn: (limited: Pool) => Promise<void>): Promise<void> {
  const user = `rp_xa_${Date.now() % 100000}`;
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const url = new URL(mysqlUrl());
  const database = url.pathname.slice(1) || 'test';
  await side.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
  await side.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${database}\`.* TO ?@?`, [user, '%']);
  const limited = createPool({ host: url.hostname, port: Number(url.port || 3306), user, password, database, connectionLimit: 3, xaLogTable: logTable });
  try {
    await fn(limited);
  } finally {
    await limited.end();
    for (const row of await preparedOfThisFile(logTable)) await side.query(`XA ROLLBACK X'${row.gtrid.toString('hex')}',X'${row.bqual.toString('hex')}'`);
    await side.query('DROP USER IF EXISTS ?@?', [user, '%']);
  }
}

/** Two connections of `pool`'s scope write rows 1 and 2; the scope commits two-phase. */
function writeTwoRowsTwoPhase(pool: Pool): Promise<void> {
  return pool.withScope(
    async () => {
      const a = await pool.getConnection();
      const b = await pool.getConnection();
      await a.query(insert(1));
      await b.query(insert(2));
    },
    { twoPhase: true },
  );
}

test('a user without the CREATE privilege commits two-phase and recovers, once the log table exists', async () => {
  const ownLog = uniqueTable('xa_log_pre');
  await side.query(`CREATE TABLE ${ownLog} (gtrid VARBINARY(64) NOT NULL PRIMARY KEY, decision ENUM('commit','rollback') NOT NULL, decided_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB`);
  try {
    await asUserWithoutCreate(ownLog, async (limited) => {
      await writeTwoRowsTwoPhase(limited);
      expect(await visible()).toEqual([1, 2]);
      expect(await limited.recoverXa()).toEqual({ committed: [], rolledBack: [], inUse: [] });
    });
  } finally {
    await side.query(`DROP TABLE IF EXISTS ${ownLog}`);
  }
});

test('a decision the server refuses to record (no log table, no CREATE privilege) rolls every branch back at once', async () => {
  const missingLog = uniqueTable('xa_log_missing');
  await asUserWithoutCreate(missingLog, async (limited) => {
    const error = await writeTwoRowsTwoPhase(limited).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScopeCommitError);
    expect((error as ScopeCommitError).rolledBack).toHaveLength(2);
    expect((error as ScopeCommitError).leftPrepared).toEqual([]);
    expect(await preparedOfThisFile(missingLog)).toEqual([]); // nothing left holding locks until a recovery
    expect(await visible()).toEqual([]);
  });
});
