/**
 * Session hygiene (`resetOnRelease: 'whenDirty'`): session state set on one
 * lease is never visible to the next one, one row per kind of state, with
 * `connectionLimit: 1` so the next lease is the same connection. Each row
 * also runs on mysql2's pool and on ours with `resetOnRelease: false`, where
 * the same state leaks (so every row can fail). Clean releases never reset.
 */
import { randomBytes } from 'node:crypto';
import * as mysql from 'mysql2/promise';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPool, type Pool, type ResetEvent } from '../../src';
import { isRowLocked, mysqlUrl, sideConnection, uniqueTable } from '../support/db';

const table = uniqueTable('hygiene');
const other = uniqueTable('hygiene_other');
const tag = randomBytes(3).toString('hex');
const lockName = `rp_hygiene_${tag}`;
const procedure = `rp_hygiene_proc_${tag}`;
let side: Connection;
/** What a fresh connection sees, read from the side connection before any test. */
let defaults: { waitTimeout: number; timeZone: string; sqlMode: string; charset: string };

/** The part of a lease (ours or mysql2's) the rows use. */
interface Lease {
  query(sql: string): Promise<unknown>;
  release(): void;
}
interface AnyPool {
  getConnection(): Promise<Lease>;
  end(): Promise<void>;
}

async function value(lease: Lease, sql: string): Promise<unknown> {
  const [rows] = (await lease.query(sql)) as [RowDataPacket[]];
  return rows[0]?.v;
}

/** The errno a statement fails with, or 'ok'. */
async function outcome(lease: Lease, sql: string): Promise<number | 'ok'> {
  try {
    await lease.query(sql);
    return 'ok';
  } catch (error) {
    return (error as { errno: number }).errno;
  }
}

interface Row {
  kind: string;
  /** Run on the first lease. */
  set: string[];
  /** What the next lease (or the side connection) observes. */
  probe(next: Lease): Promise<unknown>;
  /** What a clean connection observes. */
  clean(): unknown;
  /** Ours with `resetOnRelease: false` already cleans this kind (it is part of a transaction's cleanup). */
  cleanedWithoutReset?: boolean;
}

const rows: Row[] = [
  { kind: 'user variable', set: ['SET @rp_user = 42'], probe: (n) => value(n, 'SELECT @rp_user AS v'), clean: () => null },
  {
    kind: 'session variable',
    set: ['SET SESSION wait_timeout = 1234'],
    probe: async (n) => Number(await value(n, 'SELECT @@session.wait_timeout AS v')),
    clean: () => defaults.waitTimeout,
  },
  { kind: 'time zone', set: ["SET time_zone = '+05:00'"], probe: (n) => value(n, 'SELECT @@session.time_zone AS v'), clean: () => defaults.timeZone },
  { kind: 'sql_mode', set: ["SET SESSION sql_mode = 'ANSI_QUOTES'"], probe: (n) => value(n, 'SELECT @@session.sql_mode AS v'), clean: () => defaults.sqlMode },
  { kind: 'character set', set: ['SET NAMES latin1'], probe: (n) => value(n, 'SELECT @@character_set_client AS v'), clean: () => defaults.charset },
  {
    kind: 'temporary table',
    set: [`CREATE TEMPORARY TABLE rp_tmp_${tag} (a INT)`],
    probe: (n) => outcome(n, `SELECT * FROM rp_tmp_${tag}`),
    clean: () => 1146,
  },
  {
    kind: 'temporary table from a SELECT (no flag)',
    set: [`CREATE TEMPORARY TABLE rp_tmps_${tag} SELECT 1 AS a`],
    probe: (n) => outcome(n, `SELECT * FROM rp_tmps_${tag}`),
    clean: () => 1146,
  },
  { kind: 'current schema', set: ['USE mysql'], probe: (n) => value(n, 'SELECT DATABASE() AS v'), clean: () => 'test' },
  {
    kind: 'LOCK TABLES (no flag)',
    set: [`LOCK TABLES ${table} WRITE`],
    // Under LOCK TABLES, any other table is refused (1100): the next user is stuck with the lock.
    probe: (n) => outcome(n, `SELECT * FROM ${other}`),
    clean: () => 'ok',
  },
  {
    kind: 'GET_LOCK (no flag)',
    set: [`SELECT GET_LOCK('${lockName}', 0) AS v`],
    probe: async () => {
      const [free] = await side.query<RowDataPacket[]>('SELECT IS_FREE_LOCK(?) AS v', [lockName]);
      return free[0]?.v;
    },
    clean: () => 1,
  },
  {
    kind: 'SQL PREPARE',
    set: [`PREPARE rp_stmt_${tag} FROM 'SELECT 1'`],
    probe: (n) => outcome(n, `EXECUTE rp_stmt_${tag}`),
    clean: () => 1243,
  },
  {
    kind: 'autocommit',
    set: ['SET autocommit = 0'],
    probe: async (n) => Number(await value(n, 'SELECT @@autocommit AS v')),
    clean: () => 1,
    cleanedWithoutReset: true,
  },
  {
    kind: 'isolation for the next transaction',
    set: ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE'],
    // SERIALIZABLE turns a plain SELECT in a transaction into a locking read.
    probe: async (n) => {
      await n.query('START TRANSACTION');
      await n.query(`SELECT * FROM ${table} WHERE id = 1`);
      const locked = await isRowLocked(side, table, 1);
      await n.query('ROLLBACK');
      return locked;
    },
    clean: () => false,
    cleanedWithoutReset: true,
  },
  { kind: 'user variable inside a SELECT (no flag)', set: ['SELECT @rp_sel := 7 AS v'], probe: (n) => value(n, 'SELECT @rp_sel AS v'), clean: () => null },
  { kind: 'SELECT ... INTO @v (no flag)', set: ['SELECT 8 INTO @rp_into'], probe: (n) => value(n, 'SELECT @rp_into AS v'), clean: () => null },
  { kind: 'a procedure that sets one', set: [`CALL ${procedure}()`], probe: (n) => value(n, 'SELECT @rp_proc AS v'), clean: () => null },
];

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
  await side.query(`CREATE TABLE ${other} (id INT PRIMARY KEY) ENGINE=InnoDB`);
  await side.query(`INSERT INTO ${table} (id) VALUES (1)`);
  // Its body is invisible to the pool: SELECT ... INTO @v inside a procedure is not flagged by the server.
  await side.query(`CREATE PROCEDURE ${procedure}() BEGIN SELECT 9 INTO @rp_proc; END`);
  const fresh = await sideConnection();
  const [d] = await fresh.query<RowDataPacket[]>(
    'SELECT @@session.wait_timeout AS w, @@session.time_zone AS tz, @@session.sql_mode AS m, @@character_set_client AS cs',
  );
  await fresh.end();
  defaults = { waitTimeout: Number(d[0]?.w), timeZone: String(d[0]?.tz), sqlMode: String(d[0]?.m), charset: String(d[0]?.cs) };
});
afterAll(async () => {
  await side.query(`DROP PROCEDURE IF EXISTS ${procedure}`);
  await side.query(`DROP TABLE IF EXISTS ${table}, ${other}`);
  await side.end();
});

/** Sets the row's state on one lease, releases it, and probes it on the next lease (the same connection). */
async function leakedInto(pool: AnyPool, row: Row): Promise<{ seen: unknown; sameConnection: boolean }> {
  const first = (await pool.getConnection()) as Lease & { threadId: number };
  for (const sql of row.set) await first.query(sql);
  const firstId = first.threadId;
  first.release();
  const next = (await pool.getConnection()) as Lease & { threadId: number };
  try {
    return { seen: await row.probe(next), sameConnection: next.threadId === firstId };
  } finally {
    next.release();
  }
}

function urlFor(): string {
  return mysqlUrl();
}

describe.each(rows)('$kind', (row) => {
  test("resetOnRelease: 'whenDirty': the next lease (same connection) sees a clean session", async () => {
    const pool = createPool({ uri: urlFor(), connectionLimit: 1, resetOnRelease: 'whenDirty' });
    const resets: ResetEvent[] = [];
    pool.on('reset', (event) => resets.push(event));
    try {
      const { seen, sameConnection } = await leakedInto(pool as unknown as AnyPool, row);
      expect(sameConnection).toBe(true);
      expect(seen).toEqual(row.clean());
      if (!row.cleanedWithoutReset) expect(resets).toHaveLength(1);
    } finally {
      await pool.end();
    }
  });

  test("mysql2's pool: the same state leaks into the next lease", async () => {
    const pool = mysql.createPool({ uri: urlFor(), connectionLimit: 1 });
    try {
      const { seen, sameConnection } = await leakedInto(pool as unknown as AnyPool, row);
      expect(sameConnection).toBe(true);
      expect(seen).not.toEqual(row.clean());
    } finally {
      await pool.end();
      await side.query(`SELECT RELEASE_LOCK(?)`, [lockName]);
    }
  });

  test(`ours with resetOnRelease: false: ${row.cleanedWithoutReset ? 'cleaned anyway (part of the rollback)' : 'leaks, as mysql2'}`, async () => {
    const pool = createPool({ uri: urlFor(), connectionLimit: 1 });
    try {
      const { seen } = await leakedInto(pool as unknown as AnyPool, row);
      if (row.cleanedWithoutReset) expect(seen).toEqual(row.clean());
      else expect(seen).not.toEqual(row.clean());
    } finally {
      await pool.end();
    }
  });
});

describe("'whenDirty' on clean connections", () => {
  test('1,000 clean checkouts with execute: no reset, and no prepare beyond the first', async () => {
    const pool: Pool = createPool({ uri: urlFor(), connectionLimit: 1, resetOnRelease: 'whenDirty' });
    let resets = 0;
    pool.on('reset', () => resets++);
    try {
      const prepares = async (): Promise<number> => {
        const lease = await pool.getConnection();
        try {
          const [r] = await lease.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'");
          return Number(r[0]?.Value);
        } finally {
          lease.release();
        }
      };
      const before = await prepares();
      for (let i = 0; i < 1_000; i++) {
        const lease = await pool.getConnection();
        await lease.execute(`SELECT ? AS n FROM ${table}`, [i]);
        await lease.query('SELECT 1');
        await lease.query(`UPDATE ${table} SET id = id WHERE id = 1`);
        lease.release();
      }
      expect(await prepares()).toBe(before + 1);
      expect(resets).toBe(0);
      expect(pool.stats().resets).toBe(0);
    } finally {
      await pool.end();
    }
  });

  test('the statement cache stays valid across a reset: execute before and after', async () => {
    const pool = createPool({ uri: urlFor(), connectionLimit: 1, resetOnRelease: 'whenDirty' });
    try {
      const lease = await pool.getConnection();
      await expect(lease.execute(`SELECT ? + 1 AS v FROM ${table}`, [1])).resolves.toEqual([[{ v: 2 }], expect.anything()]);
      await lease.query('SET @dirty = 1');
      lease.release();
      const next = await pool.getConnection();
      // mysql2 would send the old statement id, which the reset closed on the server, were its cache not cleared.
      await expect(next.execute(`SELECT ? + 1 AS v FROM ${table}`, [41])).resolves.toEqual([[{ v: 42 }], expect.anything()]);
      next.release();
      expect(pool.stats().resets).toBe(1);
    } finally {
      await pool.end();
    }
  });
});

describe('initSql', () => {
  test('runs on every new connection and again after each reset; never counted as dirty', async () => {
    const pool = createPool({
      uri: urlFor(),
      connectionLimit: 1,
      resetOnRelease: 'whenDirty',
      initSql: ["SET time_zone = '+02:00'", "SET SESSION sql_mode = 'STRICT_ALL_TABLES'"],
    });
    const resets: ResetEvent[] = [];
    pool.on('reset', (event) => resets.push(event));
    try {
      const read = async (): Promise<RowDataPacket | undefined> => {
        const lease = await pool.getConnection();
        try {
          const [r] = await lease.query<RowDataPacket[]>('SELECT @@session.time_zone AS tz, @@session.sql_mode AS m');
          return r[0];
        } finally {
          lease.release();
        }
      };
      expect(await read()).toEqual({ tz: '+02:00', m: 'STRICT_ALL_TABLES' });
      expect(resets).toHaveLength(0); // the baseline is not dirt
      const lease = await pool.getConnection();
      await lease.query("SET time_zone = '+09:00'");
      lease.release();
      expect(await read()).toEqual({ tz: '+02:00', m: 'STRICT_ALL_TABLES' });
      expect(resets).toEqual([{ threadId: expect.any(Number), reason: 'session state changed', durationMs: expect.any(Number) }]);
    } finally {
      await pool.end();
    }
  });

  test('a connection listener that changes session state gets a one-time warning pointing to initSql', async () => {
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const pool = createPool({ uri: urlFor(), connectionLimit: 2, resetOnRelease: 'whenDirty' });
    pool.on('connection', (connection) => {
      connection.query("SET time_zone = '+03:00'");
    });
    try {
      const [a, b] = await Promise.all([pool.getConnection(), pool.getConnection()]);
      await a.query('SELECT 1');
      await b.query('SELECT 1');
      a.release();
      b.release();
      const warnings = spy.mock.calls.filter(([, options]) => (options as { code?: string } | undefined)?.code === 'ROLLBACK_POOL_CONNECTION_STATE');
      expect(warnings).toHaveLength(1);
      expect(String(warnings[0]?.[0])).toContain('initSql');
    } finally {
      spy.mockRestore();
      await pool.end();
    }
  });

  test("a listener that only reads (or 'whenDirty' off) gets no warning", async () => {
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const reading = createPool({ uri: urlFor(), connectionLimit: 1, resetOnRelease: 'whenDirty' });
    reading.on('connection', (connection) => {
      connection.query('SELECT 1');
    });
    const off = createPool({ uri: urlFor(), connectionLimit: 1 });
    off.on('connection', (connection) => {
      connection.query("SET time_zone = '+03:00'");
    });
    try {
      await reading.query('SELECT 2');
      await off.query('SELECT 2');
      expect(spy.mock.calls.filter(([, options]) => (options as { code?: string } | undefined)?.code === 'ROLLBACK_POOL_CONNECTION_STATE')).toHaveLength(0);
    } finally {
      spy.mockRestore();
      await Promise.all([reading.end(), off.end()]);
    }
  });

  test("a reset re-applies trackGtid's and refuseWrites' session settings", async () => {
    const pool = createPool({ uri: urlFor(), connectionLimit: 1, resetOnRelease: 'whenDirty', trackGtid: true });
    const guarded = createPool({ uri: urlFor(), connectionLimit: 1, resetOnRelease: true, refuseWrites: true });
    try {
      const lease = await pool.getConnection();
      await lease.query('SET @dirty = 1');
      lease.release();
      const [rows] = await pool.query<RowDataPacket[]>('SELECT @@session.session_track_system_variables AS v, @dirty AS d');
      expect(rows[0]?.d).toBeNull(); // it was reset
      expect(String(rows[0]?.v)).toContain('last_gtid');
      expect(pool.stats().resets).toBe(1);
      for (let i = 0; i < 2; i++) {
        const [ro] = await guarded.query<RowDataPacket[]>('SELECT @@session.tx_read_only AS v');
        expect(Number(ro[0]?.v)).toBe(1);
      }
      expect(guarded.stats().resets).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all([pool.end(), guarded.end()]);
    }
  });

  test('a bad initSql is ERR_INVALID_OPTION; a failing one fails the connect with the server error', async () => {
    expect(() => createPool({ uri: urlFor(), initSql: [42] as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => createPool({ uri: urlFor(), resetOnRelease: 'sometimes' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    const pool = createPool({ uri: urlFor(), connectionLimit: 1, initSql: 'SET SESSION no_such_variable = 1' });
    try {
      await expect(pool.query('SELECT 1')).rejects.toMatchObject({ errno: 1193 });
    } finally {
      await pool.end();
    }
  });
});
