/**
 * What the replica tests share (not a test file): the private primary/replica
 * pair (started in beforeAll, stopped in afterAll; skipped loudly when this
 * machine has no mariadbd), side connections to either server, and waits on
 * conditions (never on time).
 */
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { findMariadbd, startReplicaPair, type ReplicaPair } from '../../scripts/replica-pair';
import { createReplicaPool, type ReplicaPool, type ReplicaPoolOptions, type ReplicaState } from '../../src/index';

export const canRunPair = findMariadbd() !== undefined;
if (!canRunPair) {
  console.warn('SKIPPED: the read-replica tests need mariadbd (apt-get install -y mariadb-server) to start a private primary and replica.');
}

/** `describe`, or `describe.skip` (after the warning above) when no pair can be started. */
export const describePair = canRunPair ? describe : describe.skip;

/** Registers the pair for the file: started before its tests, stopped after them. */
export function usePair(): { readonly pair: ReplicaPair; readonly primaryUrl: string; readonly replicaUrl: string } {
  let pair: ReplicaPair | undefined;
  beforeAll(async () => {
    pair = await startReplicaPair();
  }, 60_000);
  afterAll(async () => {
    await pair?.stop();
  }, 30_000);
  return {
    get pair() {
      if (pair === undefined) throw new Error('the replica pair did not start');
      return pair;
    },
    get primaryUrl() {
      return this.pair.primary.url;
    },
    get replicaUrl() {
      return this.pair.replica.url;
    },
  };
}

/** A plain mysql2 connection (outside every pool under test). */
export function side(url: string): Promise<Connection> {
  return createConnection({ uri: url, connectTimeout: 5_000 });
}

/** A replica pool on the pair, ended after the test by `using`-style cleanup in `pools.endAll()`. */
export class Pools {
  private readonly open: ReplicaPool[] = [];
  create(options: ReplicaPoolOptions): ReplicaPool {
    const pool = createReplicaPool(options);
    this.open.push(pool);
    return pool;
  }
  async endAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((pool) => pool.end()));
  }
}

/** Resolves once replica `index` of `pool` is in `state` (now or after a `health` event); rejects after `timeoutMs`. */
export function untilHealth(pool: ReplicaPool, state: ReplicaState, index = 0, timeoutMs = 10_000): Promise<void> {
  if (pool.health()[index]?.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const listener = (event: { index: number; state: ReplicaState }): void => {
      if (event.index !== index || event.state !== state) return;
      clearTimeout(timer);
      pool.removeListener('health', listener);
      resolve();
    };
    const timer = setTimeout(() => {
      pool.removeListener('health', listener);
      reject(new Error(`replica ${index} not ${state} within ${timeoutMs} ms: ${JSON.stringify(pool.health()[index])}`));
    }, timeoutMs);
    pool.on('health', listener);
  });
}

/** Polls `check` until it is true; rejects when it is still false after `timeoutMs` (a bound, not a race). */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition still false after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The `@@server_id` a statement ran on: 1 is the primary, 2 the replica. */
export function serverOf(rows: unknown): number {
  return Number((rows as RowDataPacket[])[0]?.['s']);
}

/** The primary's `@@gtid_binlog_pos`. */
export async function binlogPos(primary: Connection): Promise<string> {
  const [rows] = await primary.query<RowDataPacket[]>('SELECT @@gtid_binlog_pos AS pos');
  return String(rows[0]?.['pos']);
}
