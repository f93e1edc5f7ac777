/**
 * Helpers of the Galera tests (not a test file): one private 3-node cluster
 * per test file (scripts/galera.ts), the rollback-pool clusters built on it,
 * and the ledger that checks, after each fault, that no acknowledged commit
 * was lost and no certainly-not-committed row appeared.
 *
 * When Galera cannot run here (a package is missing), the suite is skipped
 * with a loud message naming the package, never silently. When the packages
 * are there but the cluster does not start within its bound, the tests fail
 * with the nodes' log tails: a broken setup must not pass as a skip.
 */
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { createPoolCluster, type PoolCluster, type PoolClusterOptions, type PoolOptions } from '../../src/index';
import { galeraMissing, startGaleraCluster, type GaleraCluster, type GaleraNode } from '../../scripts/galera';

/** Cold start of the cluster (the packages are there: it must come up). */
const START_BOUND_MS = 60_000;

/** `describe` that starts a Galera cluster for its tests, or `describe.skip` with the reason printed loudly. */
export function describeGalera(name: string, body: (env: GaleraEnv) => void): void {
  const missing = galeraMissing();
  if (missing !== undefined) {
    const banner = `\n${'!'.repeat(78)}\n  GALERA TESTS SKIPPED (${name}): ${missing}\n  .ci/run installs them (apt-get install -y galera-4 rsync).\n${'!'.repeat(78)}\n`;
    process.stderr.write(banner);
    describe.skip(`${name} (skipped: ${missing})`, () => body(new GaleraEnv()));
    return;
  }
  describe(name, () => {
    const env = new GaleraEnv();
    beforeAll(async () => {
      env.cluster = await startGaleraCluster({ timeoutMs: START_BOUND_MS });
      process.stdout.write(`[${name}] Galera cluster of 3 synced in ${env.cluster.startedInMs} ms\n`);
    }, START_BOUND_MS + 30_000);
    afterAll(async () => {
      await env.closeAll(); // ours first (their connections would hold the nodes' shutdown)
      await env.cluster?.stop(); // always, after a failure too (and an exit hook kills whatever is left)
    }, 60_000);
    body(env);
  });
}

/** What a Galera test file shares. */
export class GaleraEnv {
  cluster: GaleraCluster | undefined;
  private readonly opened: Array<{ end(): Promise<void> }> = [];

  get galera(): GaleraCluster {
    if (this.cluster === undefined) throw new Error('the Galera cluster did not start');
    return this.cluster;
  }

  node(index: number): GaleraNode {
    return this.galera.nodes[index]!;
  }

  /** A rollback-pool cluster with nodes g1, g2, g3 (ended after the file). */
  poolCluster(options: PoolClusterOptions = {}, poolOptions: Omit<PoolOptions, 'uri'> = {}): PoolCluster {
    const cluster = createPoolCluster({ clusterAware: true, ...options });
    this.galera.nodes.forEach((node) => cluster.add(node.name, { uri: node.url, connectionLimit: 4, connectTimeout: 2_000, acquireTimeoutMs: 4_000, ...poolOptions }));
    this.track(cluster);
    return cluster;
  }

  /**
   * A plain connection to one node. `causal` (default): its reads wait until
   * the node has applied every write set committed anywhere before them
   * (`wsrep_sync_wait = 1`); Galera applies other nodes' commits
   * asynchronously, so a plain read right after a commit elsewhere may not
   * see it yet.
   */
  async direct(index: number, causal = true): Promise<Connection> {
    const conn = await createConnection({ uri: this.node(index).url, connectTimeout: 2_000 });
    conn.on('error', () => undefined); // a node killed under it
    if (causal) await conn.query('SET SESSION wsrep_sync_wait = 1');
    this.track({ end: () => conn.end().catch(() => conn.destroy()) });
    return conn;
  }

  track<T extends { end(): Promise<void> }>(thing: T): T {
    this.opened.push(thing);
    return thing;
  }

  async closeAll(): Promise<void> {
    const all = this.opened.splice(0);
    await Promise.all(all.map((thing) => thing.end().catch(() => undefined)));
  }
}

/** Polls `check` until it holds; throws after `timeoutMs` (a bound, not a wait). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`still not ${what} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What the ledger was told about one token. */
export type Told = 'committed' | 'notCommitted' | 'unknown';

/**
 * The ledger of a fault test: every write is one unique token; what the
 * client was told decides its class, and after the fault the table must
 * agree: every acknowledged commit present, no certainly-not-committed token
 * present. The contract read from the library's documentation:
 *
 * - `cluster.transaction()` resolving: committed; rejecting with
 *   `ERR_COMMIT_OUTCOME_UNKNOWN`: unknown; with anything else: not committed
 *   (the runner rolled back, the server did, or the COMMIT was refused);
 * - an autocommit `cluster.execute()` resolving: committed; rejecting with a
 *   server's error reply (it refused or rolled it back), one of our refusals
 *   (no node online, not ready, no connection) or a connection known dead
 *   before it was sent: not committed; with a lost connection, or 1180
 *   (its replication failed part way): unknown.
 */
export class Ledger {
  private next = 0;
  readonly told = new Map<number, Told>();
  /** When each acknowledged commit resolved (Date.now()). */
  readonly ackedAt = new Map<number, number>();
  readonly errors = new Map<string, number>();

  constructor(readonly table: string) {}

  static ddl(table: string): string {
    return `CREATE TABLE ${table} (token INT NOT NULL PRIMARY KEY, node VARCHAR(16) NOT NULL) ENGINE=InnoDB`;
  }

  get insertSql(): string {
    return `INSERT INTO ${this.table} (token, node) VALUES (?, @@wsrep_node_name)`;
  }

  token(): number {
    return ++this.next;
  }

  record(token: number, told: Told, error?: unknown): void {
    this.told.set(token, told);
    if (told === 'committed') this.ackedAt.set(token, Date.now());
    if (error !== undefined) {
      const key = `${told}:${codeOf(error)}`;
      this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
    }
  }

  count(told: Told): number {
    let n = 0;
    for (const value of this.told.values()) if (value === told) n++;
    return n;
  }

  /** Compares with the table (read on a synced node); returns the violations and the node of each row. */
  async check(conn: Connection): Promise<{ missing: number[]; ghosts: number[]; unknownPresent: number; unknownAbsent: number; nodeOf: Map<number, string> }> {
    const [rows] = await conn.query<RowDataPacket[]>(`SELECT token, node FROM ${this.table}`);
    const nodeOf = new Map<number, string>(rows.map((row) => [Number(row['token']), String(row['node'])]));
    const missing: number[] = [];
    const ghosts: number[] = [];
    let unknownPresent = 0;
    let unknownAbsent = 0;
    for (const [token, told] of this.told) {
      const present = nodeOf.has(token);
      if (told === 'committed' && !present) missing.push(token);
      if (told === 'notCommitted' && present) ghosts.push(token);
      if (told === 'unknown') {
        if (present) unknownPresent++;
        else unknownAbsent++;
      }
    }
    return { missing, ghosts, unknownPresent, unknownAbsent, nodeOf };
  }
}

/** Classifies a rejected `cluster.transaction()` (see `Ledger`). */
export function toldByTransaction(error: unknown): Told {
  return codeOf(error) === 'ERR_COMMIT_OUTCOME_UNKNOWN' ? 'unknown' : 'notCommitted';
}

/** Classifies a rejected autocommit statement (see `Ledger`). */
export function toldByStatement(error: unknown): Told {
  const e = error as { code?: unknown; errno?: unknown; fatal?: unknown; neverSent?: unknown; sqlState?: unknown } | null;
  // No connection to send it on (checkout refused): it never ran.
  if (typeof e?.code === 'string' && ['POOL_NONEONLINE', 'ERR_NODE_NOT_READY', 'ERR_ACQUIRE_TIMEOUT', 'ECONNREFUSED'].includes(e.code)) return 'notCommitted';
  if (e?.neverSent === true) return 'notCommitted';
  if (e?.fatal === true) return 'unknown'; // lost with the statement in flight: it may have run
  if (e?.errno === 1180) return 'unknown'; // ER_ERROR_DURING_COMMIT: Galera's replication failed part way; it may have committed elsewhere
  if (typeof e?.sqlState === 'string') return 'notCommitted'; // the server's error reply: refused or rolled back
  return 'unknown';
}

export function codeOf(error: unknown): string {
  const e = error as { code?: unknown; errno?: unknown } | null;
  if (typeof e?.errno === 'number' && e.errno > 0 && typeof e.code === 'string' && !e.code.startsWith('ERR_')) return `${e.errno} ${e.code}`;
  if (typeof e?.code === 'string') return e.code;
  return error instanceof Error ? `${error.name}: ${error.message.slice(0, 60)}` : String(error);
}

/** Load on a pool cluster: workers writing ledger tokens until stopped, half in transactions, half autocommit. */
export function startLoad(cluster: PoolCluster, ledger: Ledger, workers = 4, thinkMs = 10): { stop(): Promise<void> } {
  let stopping = false;
  const worker = async (n: number): Promise<void> => {
    for (let i = 0; !stopping; i++) {
      const token = ledger.token();
      if ((n + i) % 2 === 0) {
        try {
          await cluster.transaction(async (tx) => {
            await tx.execute(ledger.insertSql, [token]);
          }, { retries: 5 });
          ledger.record(token, 'committed');
        } catch (error) {
          ledger.record(token, toldByTransaction(error), error);
        }
      } else {
        try {
          await cluster.execute(ledger.insertSql, [token], { retries: 3 });
          ledger.record(token, 'committed');
        } catch (error) {
          ledger.record(token, toldByStatement(error), error);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * thinkMs));
    }
  };
  const running = Array.from({ length: workers }, (_, n) => worker(n));
  return {
    stop: async () => {
      stopping = true;
      await Promise.all(running);
    },
  };
}

/** Records a cluster's node events with their time. */
export function recordNodeEvents(cluster: PoolCluster): Array<{ event: 'offline' | 'online' | 'remove'; id: string; reason: string; at: number }> {
  const events: Array<{ event: 'offline' | 'online' | 'remove'; id: string; reason: string; at: number }> = [];
  for (const event of ['offline', 'online', 'remove'] as const) {
    cluster.on(event, (id, transition) => events.push({ event, id, reason: transition.reason, at: Date.now() }));
  }
  return events;
}

/** No node pool saw an abandon or a failed rollback: nothing the workload did abandons anything. */
export function falseAlarms(cluster: PoolCluster): { abandoned: number; rollbackFailures: number } {
  let abandoned = 0;
  let rollbackFailures = 0;
  for (const node of Object.values(cluster.stats())) {
    abandoned += node.pool.abandoned;
    rollbackFailures += node.pool.rollbackFailures;
  }
  return { abandoned, rollbackFailures };
}
