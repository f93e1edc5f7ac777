/**
 * A lease its owner loses without `release()` (a library holding a connection for
 * a transaction nobody finishes, a forgotten lease) must not cost a connection
 * slot forever, nor keep its transaction's locks: once it is garbage collected
 * its session is given back as abandoned (`garbage-collected`) and rolled back.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createPool, type AbandonEvent, type Pool } from '../../src/index';
import { mysqlUrl } from '../support/db';
import { nextEvent, scenarioTable, visible, waitUntil } from './helpers';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const { table, side, insert } = scenarioTable('lost_lease');

/** Takes the only connection, writes in a transaction, and loses the lease (no release, no reference kept). */
async function loseLeaseInTransaction(pool: Pool, scenario: string): Promise<number> {
  const conn = await pool.getConnection();
  await conn.beginTransaction();
  await conn.query(insert(scenario, 1));
  return conn.threadId;
}

test('a lease lost inside a transaction is rolled back and its slot comes back once it is collected', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1, captureStacks: true });
  try {
    const abandons: AbandonEvent[] = [];
    pool.on('abandon', (event) => abandons.push(event));
    const rolledBack = nextEvent(pool, 'rollback', 15_000);
    const threadId = await loseLeaseInTransaction(pool, 'lost');

    await waitUntil(() => {
      gc();
      return abandons.length > 0;
    }, 10_000);
    await rolledBack;
    expect(abandons).toHaveLength(1);
    expect(abandons[0]).toMatchObject({ threadId, reason: 'garbage-collected' });
    expect(abandons[0]?.stack).toContain('lost-lease.test.ts'); // where the lost lease was taken

    // The only slot is usable again, on the same connection, outside any transaction.
    const next = await pool.getConnection();
    expect(next.threadId).toBe(threadId);
    await next.query(insert('lost', 2));
    next.release();
    expect(await visible(side, table, 'lost')).toEqual([2]);
    expect(pool.stats()).toMatchObject({ total: 1, leased: 0, abandoned: 1, rolledBack: 1 });
  } finally {
    await pool.end();
  }
});

test('a released lease, and a lease still referenced, are never reclaimed', async () => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 2 });
  try {
    const abandons: AbandonEvent[] = [];
    pool.on('abandon', (event) => abandons.push(event));
    const kept = await pool.getConnection();
    await kept.beginTransaction();
    await kept.query(insert('kept', 1));
    await (async () => {
      const released = await pool.getConnection();
      await released.query('SELECT 1');
      released.release();
    })();
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20)); // let finalization callbacks run
    }
    expect(abandons).toEqual([]);
    await kept.commit(); // still ours, still in its transaction
    kept.release();
    expect(await visible(side, table, 'kept')).toEqual([1]);
  } finally {
    await pool.end();
  }
});

test.each([
  ['a raw START TRANSACTION', "query('START TRANSACTION')"],
  ["execute('begin')", "execute('begin')"],
  ['SET autocommit=0 and one INSERT', 'autocommit'],
])('a lease lost right after %s (nothing after it) is reclaimed too', async (_label, how) => {
  const pool = createPool({ uri: mysqlUrl(), connectionLimit: 1 });
  try {
    const abandons: AbandonEvent[] = [];
    pool.on('abandon', (event) => abandons.push(event));
    const threadId = await (async () => {
      const conn = await pool.getConnection();
      if (how === 'autocommit') {
        await conn.query('SET autocommit=0');
        await conn.query(insert('raw', 1)); // opens a transaction: the last statement on this lease
      } else if (how.startsWith('execute')) {
        await conn.execute('begin');
      } else {
        await conn.query('START TRANSACTION');
      }
      return conn.threadId;
    })();
    await waitUntil(() => {
      gc();
      return abandons.length > 0;
    }, 10_000);
    expect(abandons[0]).toMatchObject({ threadId, reason: 'garbage-collected' });
    const next = await pool.getConnection(); // the only slot came back
    expect(next.threadId).toBe(threadId);
    next.release();
    expect(await visible(side, table, 'raw')).toEqual([]);
  } finally {
    await pool.end();
  }
});
