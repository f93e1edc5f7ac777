/**
 * Found by the ledger soak (the `release` end kind that opens its transaction with
 * `conn.begin()`): a transaction handle left on a lease that was then released must be
 * reported abandoned once. The release reports it (`abandon`, reason
 * `released-in-transaction`) and the pool rolls it back; when the handle is later
 * garbage collected, the FinalizationRegistry safety net (`lost` in
 * src/tx/transaction.ts) must not report it again: by then the session's thread id may
 * belong to another user's lease, and `stats().abandoned` would count it twice.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AbandonEvent, Pool } from '../../src/index';
import { testPool, waitUntil } from '../tx/helpers';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const collected = new Set<string>();
const probe = new FinalizationRegistry<string>((name) => collected.add(name));

/** Takes a connection, begins a transaction handle on it, releases the connection and drops the handle. */
async function leaveHandleOnReleasedLease(pool: Pool): Promise<number> {
  const conn = await pool.getConnection();
  const tx = await conn.begin();
  probe.register(tx, 'handle');
  conn.release();
  return conn.threadId;
}

test('a handle left on a released lease is abandoned once, not again when it is garbage collected', async () => {
  const pool = testPool({ connectionLimit: 1 });
  try {
    const abandons: AbandonEvent[] = [];
    pool.on('abandon', (event) => abandons.push(event));
    await leaveHandleOnReleasedLease(pool);
    await waitUntil(() => {
      gc();
      return collected.has('handle');
    }, 10_000);
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10)); // let finalization callbacks run
    }
    expect(abandons.map((event) => event.reason)).toEqual(['released-in-transaction']);
    expect(pool.stats().abandoned).toBe(1);
  } finally {
    await pool.end();
  }
});

test('control: the same handle, still referenced, is abandoned once (the release), and the connection is clean', async () => {
  const pool = testPool({ connectionLimit: 1 });
  try {
    const abandons: AbandonEvent[] = [];
    pool.on('abandon', (event) => abandons.push(event));
    const conn = await pool.getConnection();
    const tx = await conn.begin();
    conn.release();
    await waitUntil(() => pool.stats().rolledBack === 1, 5_000);
    expect(abandons.map((event) => event.reason)).toEqual(['released-in-transaction']);
    expect(pool.stats().abandoned).toBe(1);
    expect(tx.state).toBe('active'); // not ended until it is used again (then ERR_TX_ABANDONED)
  } finally {
    await pool.end();
  }
});
