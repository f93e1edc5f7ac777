/**
 * A private MariaDB primary and replica (or several) on free loopback ports, with GTID
 * replication (`MASTER_USE_GTID=slave_pos`), for the read-replica tests and
 * `npm run bench -- --replica`. Both are throwaway servers from
 * `scripts/server.ts` (own data directory, socket and port, stopped by PID);
 * the shared server on 3306 is never touched.
 *
 * - primary: `--log-bin --server-id=1` (GTIDs come from its binary log);
 * - replica: `--server-id=2 --read-only`, no binary log of its own (it needs
 *   none to apply events or to answer `MASTER_GTID_WAIT`). Its `test` database
 *   comes from the primary through replication, so the two never diverge.
 *
 * `npx tsx scripts/replica-pair.ts` starts a pair, prints both URLs, stops them;
 * `--hold` keeps them running until Ctrl-C.
 */
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { startThrowawayMariadb, type ThrowawayServer } from './server';

export interface ReplicaPair {
  readonly primary: ThrowawayServer;
  /** The first replica (server id 2). */
  readonly replica: ThrowawayServer;
  /** Every replica, server ids 2, 3, ... */
  readonly replicas: readonly ThrowawayServer[];
  /** Resolves once every replica has applied everything the primary has binlogged so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  /** Stops every server (replicas first) and deletes their data directories. */
  stop(): Promise<void>;
}

const RUNNING_TIMEOUT_MS = 20_000;

/** The installed `mariadbd` (undefined: this machine cannot run a pair). */
export { findMariadbd } from './server';

/**
 * Starts a primary and `replicas` replicas of it (default 1), and waits until
 * replication runs and every replica caught up.
 */
export async function startReplicaPair(options: { replicas?: number } = {}): Promise<ReplicaPair> {
  const count = options.replicas ?? 1;
  const primary = await startThrowawayMariadb({ args: ['--log-bin=primary-bin', '--server-id=1', '--binlog-format=ROW'] });
  const replicas: ThrowawayServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const replica = await startThrowawayMariadb({ args: [`--server-id=${2 + i}`, '--read-only', '--relay-log=replica-relay'], createTestDatabase: false });
      replicas.push(replica);
      await startReplication(replica, primary.port);
    }
    const pair = makePair(primary, replicas);
    await pair.caughtUp();
    return pair;
  } catch (error) {
    for (const replica of replicas) await replica.stop().catch(() => undefined);
    await primary.stop().catch(() => undefined);
    throw error;
  }
}

function makePair(primary: ThrowawayServer, replicas: ThrowawayServer[]): ReplicaPair {
  let stopped: Promise<void> | undefined;
  return {
    primary,
    replica: replicas[0]!,
    replicas,
    caughtUp: async (timeoutMs = RUNNING_TIMEOUT_MS) => {
      for (const replica of replicas) await waitCaughtUp(primary, replica, timeoutMs);
    },
    stop: () => (stopped ??= Promise.all(replicas.map((replica) => replica.stop())).then(() => primary.stop())),
  };
}

async function startReplication(replica: ThrowawayServer, primaryPort: number): Promise<void> {
  const conn = await connect(replica);
  try {
    // root with an empty password over TCP is how the throwaway servers are set up; no secret to leak.
    await conn.query(
      `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primaryPort}, MASTER_USER='root', MASTER_PASSWORD='', ` +
        'MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1',
    );
    await conn.query('START SLAVE');
    await waitRunning(conn, RUNNING_TIMEOUT_MS);
  } finally {
    await conn.end();
  }
}

/** Polls SHOW SLAVE STATUS until both replication threads run; fails with the server's last error otherwise. */
export async function waitRunning(conn: Connection, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [rows] = await conn.query<RowDataPacket[]>('SHOW SLAVE STATUS');
    const status = rows[0];
    if (status?.['Slave_IO_Running'] === 'Yes' && status['Slave_SQL_Running'] === 'Yes') return;
    if (Date.now() > deadline) {
      const why = status ? `IO ${String(status['Slave_IO_Running'])} (${String(status['Last_IO_Error'])}), SQL ${String(status['Slave_SQL_Running'])} (${String(status['Last_SQL_Error'])})` : 'no replication configured';
      throw new Error(`replication did not start within ${timeoutMs} ms: ${why}`);
    }
    await pause(20);
  }
}

/** The replica waits (server side, MASTER_GTID_WAIT) for the primary's current binlog position. */
async function waitCaughtUp(primary: ThrowawayServer, replica: ThrowawayServer, timeoutMs: number): Promise<void> {
  const [p, r] = await Promise.all([connect(primary), connect(replica)]);
  try {
    const [[row]] = await p.query<RowDataPacket[]>('SELECT @@gtid_binlog_pos AS pos');
    const pos = String(row?.['pos'] ?? '');
    const [[wait]] = await r.query<RowDataPacket[]>('SELECT MASTER_GTID_WAIT(?, ?) AS w', [pos, timeoutMs / 1_000]);
    if (Number(wait?.['w']) !== 0) throw new Error(`the replica did not reach ${pos} within ${timeoutMs} ms`);
  } finally {
    await Promise.all([p.end(), r.end()]);
  }
}

function connect(server: ThrowawayServer): Promise<Connection> {
  return createConnection({ uri: `mysql://root@127.0.0.1:${server.port}/`, connectTimeout: 5_000 });
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// CLI: `npx tsx scripts/replica-pair.ts` starts a pair, prints both URLs and stops it again;
// with `--hold` it keeps the pair running (to try the README's snippet) until Ctrl-C.
if (require.main === module) {
  const hold = process.argv.includes('--hold');
  const startedAt = performance.now();
  startReplicaPair()
    .then(async (pair) => {
      console.log(`primary ${pair.primary.url}\nreplica ${pair.replica.url}\nreplicating after ${Math.round(performance.now() - startedAt)} ms`);
      if (!hold) {
        await pair.stop();
        return;
      }
      console.log(`PRIMARY_URL=${pair.primary.url} REPLICA_URL=${pair.replica.url}; Ctrl-C stops both`);
      const keepAlive = setInterval(() => undefined, 1 << 30);
      const stop = (): void => {
        clearInterval(keepAlive);
        void pair.stop().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    });
}
