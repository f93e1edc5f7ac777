/**
 * A server restart in the middle of a run: a private mariadbd (its own data
 * directory, a free port; the shared server is never touched) is killed with
 * SIGKILL while workers commit and abandon transactions, and started again (InnoDB
 * crash recovery). While it is down, checkouts fail within their bound instead of
 * hanging; once it is back the pool recovers to full size by itself, every
 * acknowledged commit survived the crash, and nothing uncommitted is there.
 */
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { createPool, type Pool } from '../../src/index';
import { startThrowawayMariadb, type ThrowawayServer } from '../../scripts/server';
import { rejection, waitUntil } from '../tx/helpers';
import { expectWhole, since } from './helpers';

const LIMIT = 4;
const TABLE = 'chaos_restart_ledger';

let server: ThrowawayServer;

beforeAll(async () => {
  server = await startThrowawayMariadb();
  const conn = await direct();
  await conn.query(`CREATE TABLE ${TABLE} (token INT NOT NULL PRIMARY KEY) ENGINE=InnoDB`);
  await conn.end();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

function direct(): Promise<Connection> {
  return createConnection({ uri: server.url, connectTimeout: 5_000 });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('SIGKILL and restart mid-run: checkouts fail fast while down, the pool recovers to full size, the ledger holds', async () => {
  const pool: Pool = createPool({ uri: server.url, connectionLimit: LIMIT, connectTimeout: 2_000, acquireTimeoutMs: 3_000 });
  const committed: number[] = [];
  const notCommitted: number[] = [];
  const unknown: number[] = [];
  let next = 0;
  let stop = false;
  let failures = 0;

  const worker = async (): Promise<void> => {
    while (!stop) {
      const token = ++next;
      let callbackResolved = false;
      try {
        if (token % 3 === 0) {
          // Released without commit: must never be there.
          const conn = await pool.getConnection();
          try {
            await conn.beginTransaction();
            await conn.query(`INSERT INTO ${TABLE} (token) VALUES (?)`, [token]);
          } finally {
            conn.release();
          }
          notCommitted.push(token);
        } else {
          await pool.transaction(async (tx) => {
            await tx.query(`INSERT INTO ${TABLE} (token) VALUES (?)`, [token]);
            callbackResolved = true;
          });
          committed.push(token);
        }
      } catch (error) {
        failures++;
        // COMMIT is sent only after the callback resolved; before that, nothing can be committed.
        if (token % 3 !== 0 && callbackResolved) unknown.push(token);
        else notCommitted.push(token);
        await sleep(50);
      }
      await sleep(5);
    }
  };

  try {
    const workers = Array.from({ length: LIMIT + 2 }, () => worker());
    await waitUntil(() => committed.length >= 50 && pool.stats().total === LIMIT, 15_000);

    const killedAt = Date.now();
    await server.kill();
    const committedBeforeKill = committed.length;
    await waitUntil(() => pool.stats().total === 0, 10_000); // every connection noticed the crash

    // While it is down, a checkout fails within acquireTimeoutMs (with the connect error as cause), never hangs.
    const downAt = Date.now();
    const error = await rejection(pool.getConnection());
    expect(since(downAt)).toBeLessThan(3_000 + 2_000);
    expect(['ECONNREFUSED', 'ERR_ACQUIRE_TIMEOUT']).toContain((error as { code?: string }).code);

    await server.start();
    const upAt = Date.now();
    const recoveryMs = await waitUntil(async () => {
      if (pool.stats().total < LIMIT) return false;
      return pool.query('SELECT 1').then(() => true, () => false);
    }, 15_000, 10);
    const committedAtRecovery = committed.length;
    await waitUntil(() => committed.length >= committedAtRecovery + 50, 15_000); // and it keeps committing
    stop = true;
    await Promise.all(workers);

    console.log(`server restart: down ${upAt - killedAt} ms; pool back at full size (${LIMIT}) ${recoveryMs} ms after the server answered`);
    expect(committedBeforeKill).toBeGreaterThan(0);
    expect(failures).toBeGreaterThan(0); // the crash was felt
    await expectWhole(pool, LIMIT);
  } finally {
    stop = true;
    await pool.end();
  }

  const conn = await direct();
  try {
    const [rows] = await conn.query<RowDataPacket[]>(`SELECT token FROM ${TABLE}`);
    const present = new Set(rows.map((row) => Number(row.token)));
    expect(committed.filter((token) => !present.has(token))).toEqual([]); // acknowledged: survived the crash
    expect(notCommitted.filter((token) => present.has(token))).toEqual([]); // never committed: absent
    expect(unknown.length).toBeLessThanOrEqual(LIMIT + 2); // at most one per worker, at the crash
  } finally {
    await conn.end();
  }
}, 90_000);
