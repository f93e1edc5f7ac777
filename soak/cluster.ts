/**
 * The ledger soak against a private 3-node Galera cluster
 * (`npm run soak -- --cluster`): the same workers and ledger as the
 * single-server soak (workload.ts, ledger.ts), on a `createPoolCluster` of
 * the three nodes (cluster-aware, round robin), while node faults fire one at
 * a time, kills and partitions in turn:
 *
 * - `kill`: SIGKILL of a node, evicted by the others, down 1-3 s more, started again (IST rejoin);
 * - `partition`: `gmcast.isolate=1` on a node (up, answering, refusing every
 *   table statement with 1047), 1-3 s, then `gmcast.isolate=0` (rejoin);
 * - and, all along, `KILL` / `KILL QUERY` of random client connections on
 *   random nodes (the pool's own recovery: abandoned transactions, lost
 *   leases, pending ROLLBACKs, through the cluster).
 *
 * Two-phase scopes are not in this workload: Galera has no XA, and the
 * cluster refuses them (checked once at the start).
 *
 * At the end, after every node is back and synced: every acknowledged commit
 * is in the table and nothing certainly-not-committed is (read with
 * `wsrep_sync_wait`), no sampled checkout found its lease inside a
 * transaction, every node is back online in the pool cluster with nothing
 * leased or pending, a final sweep of every node's connections is clean, no
 * unhandled rejection, and no handle left after teardown. Per fault: how long
 * the node took to go offline, the longest pause of acknowledged commits, and
 * how long after it was synced again it was back online.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createConnection } from 'mysql2/promise';
import { createPoolCluster, type PoolCluster } from '../src/index';
import { startGaleraCluster, type GaleraCluster, type GaleraNode } from '../scripts/galera';
import { bump, Ledger, violationCount, type LedgerCheck } from './ledger';
import { activeResources, describe, finalize, gcFunction, leakedResources, mulberry32, round, waitFor, within } from './run';
import { CheckoutProbe, DEFAULT_WORKLOAD, readsDdl, sleep, worker, type WorkloadContext, type WorkloadOptions } from './workload';

export interface ClusterSoakOptions {
  /** Run time of the workload (setup and checks come on top). */
  durationMs: number;
  workers?: number;
  /** connectionLimit of each node's pool. */
  connectionLimit?: number;
  /** Mean time between two node faults (kill or partition, one at a time). */
  nodeFaultEveryMs?: number;
  /** Mean time between two KILL / KILL QUERY of a client connection. */
  connKillEveryMs?: number;
  seed?: number;
  log?: (line: string) => void;
  progressEveryMs?: number;
}

/** One node fault, measured. */
export interface NodeFaultRecord {
  kind: 'kill' | 'partition';
  node: string;
  /** Fault to the node's `offline` event (undefined: no call reached it meanwhile). */
  offlineMs: number | undefined;
  /** The longest time without an acknowledged commit, from the fault until the node was back. */
  writePauseMs: number;
  /** Restart / rejoin to synced. */
  rejoinMs: number;
  /** Synced to `online` in the pool cluster (its probe). */
  onlineAfterSyncMs: number | undefined;
}

export interface ClusterSoakSummary {
  seed: number;
  durationMs: number;
  workers: number;
  connectionLimit: number;
  clusterStartMs: number;
  transactions: number;
  byOutcome: Record<'committed' | 'notCommitted' | 'unknown', number>;
  byKind: Record<string, number>;
  details: Record<string, number>;
  ledger: LedgerCheck;
  nodeFaults: NodeFaultRecord[];
  connKills: Record<string, number>;
  twoPhaseRefused: boolean;
  probe: { sampled: number; withInnodbTrx: number; failed: number; violations: number; finalSweep: number };
  nodes: Record<string, { offlineCount: number; onlineCount: number; failovers: number; retries: number; probes: number; abandoned: number; rolledBack: number; rollbackFailures: number; destroyed: number }>;
  events: Record<string, number>;
  errors: Record<string, number>;
  heap: { beforeMB: number; afterMB: number };
  unhandledRejections: string[];
  uncaughtExceptions: string[];
  leakedResources: string[];
  violations: string[];
}

const MB = 1024 * 1024;

/** Runs the cluster soak, tears everything down, and checks that nothing was left running. */
export async function runClusterSoak(options: ClusterSoakOptions): Promise<ClusterSoakSummary> {
  const before = activeResources();
  const summary = await soak(options);
  return finalize(summary, await leakedResources(before));
}

async function soak(options: ClusterSoakOptions): Promise<ClusterSoakSummary> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rng = mulberry32(seed);
  const workers = options.workers ?? 8;
  const connectionLimit = options.connectionLimit ?? 4;
  const log = options.log ?? ((): void => undefined);
  const collectGarbage = gcFunction();
  const violations: string[] = [];
  const unhandledRejections: string[] = [];
  const uncaughtExceptions: string[] = [];
  const onUnhandled = (reason: unknown): void => void unhandledRejections.push(describe(reason));
  const onUncaught = (error: unknown): void => void uncaughtExceptions.push(describe(error));
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUncaught);

  let galera: GaleraCluster | undefined;
  let cluster: PoolCluster | undefined;
  const sides = new Map<GaleraNode, Connection>();
  try {
    log('starting a private 3-node Galera cluster...');
    galera = await startGaleraCluster({ log });
    const gc = galera;
    log(`cluster synced in ${gc.startedInMs} ms`);
    const setup = await createConnection({ uri: gc.urls[0]!, connectTimeout: 5_000 });
    const ledgerTable = 'soak_ledger';
    const readsTable = 'soak_reads';
    try {
      await setup.query(Ledger.ddl(ledgerTable));
      for (const sql of readsDdl(readsTable)) await setup.query(sql);
    } finally {
      await setup.end();
    }
    const ledger = new Ledger(ledgerTable);
    let lastCommitAt = Date.now();
    const record = ledger.record.bind(ledger);
    ledger.record = (token, outcome, detail): void => {
      if (outcome === 'committed') lastCommitAt = Date.now();
      record(token, outcome, detail);
    };

    cluster = createPoolCluster({ clusterAware: true });
    const pc = cluster;
    for (const node of gc.nodes) {
      pc.add(node.name, { uri: node.url, connectionLimit, connectTimeout: 2_000, acquireTimeoutMs: 5_000, rollbackTimeoutMs: 2_000 });
    }
    const events = new Map<string, number>();
    const nodeEvents: Array<{ event: string; id: string; at: number }> = [];
    for (const event of ['offline', 'online', 'remove'] as const) {
      pc.on(event, (id, transition) => {
        const reason = transition.reason.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '<addr>').slice(0, 100);
        bump(events, `${event}:${reason}`);
        nodeEvents.push({ event, id, at: Date.now() });
        log(`  ${id} ${event}: ${reason}`);
      });
    }
    pc.on('warn', () => bump(events, 'warn (failover)'));

    // Galera has no XA: a two-phase scope is refused before anything is sent.
    await pc.query('SELECT 1');
    const twoPhaseRefused = await pc.withScope(async () => void (await pc.query('SELECT 1')), { twoPhase: true }).then(
      () => false,
      (error: { code?: string }) => error.code === 'ERR_TWO_PHASE_UNSUPPORTED',
    );
    if (!twoPhaseRefused) violations.push('a two-phase scope was not refused on Galera');

    const workload: WorkloadOptions = { ...DEFAULT_WORKLOAD, weights: { ...DEFAULT_WORKLOAD.weights, scopeXa: 0 } };
    let stopping = false;
    const probe = new CheckoutProbe(workload.probeRate, rng);
    const ctx: WorkloadContext = {
      pool: pc, ledger, readsTable, twinTable: 'unused', probe, options: workload, rng,
      stopping: () => stopping, errors: new Map(),
    };
    const startedAt = Date.now();
    log(`seed ${seed}: ${workers} workers, connectionLimit ${connectionLimit} per node, ${Math.round(options.durationMs / 1000)} s`);
    const running = Array.from({ length: workers }, (_, i) => worker(ctx, i));
    const poolProbes = (async (): Promise<void> => {
      while (!stopping) {
        await sleep(200 + rng() * 300);
        if (!stopping) await probe.run(pc, 'cluster.query');
      }
    })();

    await sleep(Math.min(5_000, options.durationMs / 10));
    collectGarbage?.();
    const heapBefore = process.memoryUsage().heapUsed;

    // KILL / KILL QUERY of random client connections, all along.
    const connKills = new Map<string, number>();
    const killer = (async (): Promise<void> => {
      while (!stopping) {
        await sleep((options.connKillEveryMs ?? 500) * (0.5 + rng()));
        if (stopping) break;
        const node = gc.nodes[Math.floor(rng() * gc.nodes.length)]!;
        if (!node.running) continue;
        const what = rng() < 0.5 ? 'KILL' : 'KILL QUERY';
        if (await killRandomConnection(node, sides, what, rng)) bump(connKills, what);
      }
    })();

    // Node faults, one at a time; the loop ends with every node synced.
    const nodeFaults: NodeFaultRecord[] = [];
    const firstKind = rng() < 0.5 ? 0 : 1;
    const faults = (async (): Promise<void> => {
      const endAt = startedAt + options.durationMs;
      while (!stopping) {
        await sleep((options.nodeFaultEveryMs ?? 20_000) * (0.5 + rng()));
        if (stopping || Date.now() > endAt - 5_000) break;
        const node = gc.nodes[Math.floor(rng() * gc.nodes.length)]!;
        // Kills and partitions alternate (from a random first one), so that a short run has both.
        const kind: NodeFaultRecord['kind'] = (nodeFaults.length + firstKind) % 2 === 0 ? 'kill' : 'partition';
        const at = Date.now();
        let pause = 0;
        const watch = setInterval(() => (pause = Math.max(pause, Date.now() - Math.max(lastCommitAt, at))), 20);
        try {
          if (kind === 'kill') {
            await node.kill();
            // A restart before the others evicted the dead incarnation makes Galera's view change
            // churn (the survivors can drop to non-Primary for seconds): real restarts take longer.
            const others = gc.nodes.filter((other) => other !== node);
            await gc.until(15_000, `${node.name} evicted`, async () => (await others[0]!.status())?.clusterSize === others.length);
          } else {
            await node.isolate(); // returns once the others evicted it
          }
          await sleep(1_000 + rng() * 2_000); // down for a while
          const rejoinAt = Date.now();
          if (kind === 'kill') await node.start();
          else await node.rejoin();
          const syncedAt = Date.now();
          const online = await waitFor(() => nodeEvents.some((e) => e.event === 'online' && e.id === node.name && e.at >= at), 15_000, 20);
          const offlineEvent = nodeEvents.find((e) => e.event === 'offline' && e.id === node.name && e.at >= at);
          const onlineEvent = nodeEvents.find((e) => e.event === 'online' && e.id === node.name && e.at >= at);
          const faultRecord: NodeFaultRecord = {
            kind,
            node: node.name,
            offlineMs: offlineEvent ? offlineEvent.at - at : undefined,
            writePauseMs: pause,
            rejoinMs: syncedAt - rejoinAt,
            onlineAfterSyncMs: online && onlineEvent ? Math.max(0, onlineEvent.at - syncedAt) : undefined,
          };
          nodeFaults.push(faultRecord);
          log(`${kind} ${node.name}: offline after ${faultRecord.offlineMs ?? '-'} ms, writes paused at most ${pause} ms, ` +
            `synced ${faultRecord.rejoinMs} ms after the ${kind === 'kill' ? 'restart' : 'rejoin'}, online ${faultRecord.onlineAfterSyncMs ?? 'never'} ms after that`);
          if (!online) violations.push(`${node.name} was not back online within 15 s after it was synced again (${kind})`);
        } catch (error) {
          violations.push(`node fault ${kind} on ${node.name} failed: ${describe(error)}`);
          await gc.waitHealthy(60_000).catch(() => undefined);
        } finally {
          clearInterval(watch);
        }
      }
    })();

    let nextProgress = startedAt + (options.progressEveryMs ?? 30_000);
    let nextGc = Date.now() + 200;
    const endAt = startedAt + options.durationMs;
    while (Date.now() < endAt) {
      await sleep(50);
      const now = Date.now();
      if (now >= nextGc && collectGarbage) {
        collectGarbage(); // dropped handles come back through the FinalizationRegistry
        nextGc = now + 200;
      }
      if (now >= nextProgress) {
        nextProgress = now + (options.progressEveryMs ?? 30_000);
        const states = Object.entries(pc.stats()).map(([id, s]) => `${id} ${s.state}`).join(', ');
        log(`${Math.round((now - startedAt) / 1000)} s: ${ledger.issued} transactions, ${nodeFaults.length} node faults, ${states}`);
      }
    }

    log('stopping faults and workers...');
    stopping = true;
    await faults;
    await killer;
    const finished = await within(Promise.all([...running, poolProbes]), 30_000);
    if (!finished) violations.push('workers still running 30 s after the stop (a hang)');
    await gc.waitHealthy(60_000).catch((error: unknown) => violations.push(`the Galera cluster did not heal: ${describe(error)}`));

    // Every node back online in the pool cluster, nothing leased or pending anywhere (after GC for dropped handles).
    const settled = await waitFor(() => {
      collectGarbage?.();
      return Object.values(pc.stats()).every((s) => s.state === 'online' && s.pool.leased === 0 && s.pool.pendingRollback === 0 && s.pool.waiting === 0);
    }, 20_000, 20);
    if (!settled) violations.push(`nodes not all online and idle 20 s after the stop: ${JSON.stringify(Object.fromEntries(Object.entries(pc.stats()).map(([id, s]) => [id, { state: s.state, ...s.pool }])))}`);

    const sweep = await finalSweep(pc, connectionLimit);
    violations.push(...sweep.problems);
    collectGarbage?.();
    const heapAfter = process.memoryUsage().heapUsed;
    const nodes = Object.fromEntries(Object.entries(pc.stats()).map(([id, s]) => [id, {
      offlineCount: s.offlineCount, onlineCount: s.onlineCount, failovers: s.failovers, retries: s.retries, probes: s.probes,
      abandoned: s.pool.abandoned, rolledBack: s.pool.rolledBack, rollbackFailures: s.pool.rollbackFailures, destroyed: s.pool.destroyed,
    }]));
    await pc.end();
    cluster = undefined;
    for (const side of sides.values()) side.destroy();
    sides.clear();

    // The ledger, read on a synced node once it has applied everything (wsrep_sync_wait).
    const check = await withConnection(gc.urls[0]!, async (conn) => {
      await conn.query('SET SESSION wsrep_sync_wait = 1');
      return ledger.check(conn);
    });
    if (violationCount(check) > 0) {
      violations.push(`ledger: ${check.committedMissing} acknowledged commit(s) missing, ${check.notCommittedPresent} ` +
        `certainly-not-committed token(s) present, ${check.pending} without outcome, ${check.strangers} stranger row(s)`);
      for (const v of check.violations) violations.push(`  ${v.what}: token ${v.token} (${v.kind})`);
    }
    if (probe.violationCount > 0) violations.push(...probe.violations.map((v) => v.what));
    for (const [detail, n] of ledger.details) {
      if (detail.includes('workload bug')) violations.push(`${n} transaction(s) the workload could not classify: ${detail}`);
    }
    const sum = (outcome: string): number => [...ledger.byKind].filter(([key]) => key.endsWith(`:${outcome}`)).reduce((a, [, n]) => a + n, 0);
    return {
      seed,
      durationMs: Date.now() - startedAt,
      workers,
      connectionLimit,
      clusterStartMs: gc.startedInMs,
      transactions: ledger.issued,
      byOutcome: { committed: sum('committed'), notCommitted: sum('notCommitted'), unknown: sum('unknown') },
      byKind: Object.fromEntries([...ledger.byKind].sort()),
      details: Object.fromEntries([...ledger.details].sort((a, b) => b[1] - a[1])),
      ledger: check,
      nodeFaults,
      connKills: Object.fromEntries(connKills),
      twoPhaseRefused,
      probe: { sampled: probe.sampled, withInnodbTrx: probe.withInnodbTrx, failed: probe.failed, violations: probe.violationCount, finalSweep: sweep.probed },
      nodes,
      events: Object.fromEntries([...events].sort((a, b) => b[1] - a[1])),
      errors: Object.fromEntries([...ctx.errors].sort((a, b) => b[1] - a[1])),
      heap: { beforeMB: round(heapBefore / MB), afterMB: round(heapAfter / MB) },
      unhandledRejections,
      uncaughtExceptions,
      leakedResources: [],
      violations,
    };
  } finally {
    await cluster?.end().catch(() => undefined);
    for (const side of sides.values()) side.destroy();
    await galera?.stop();
    process.removeListener('unhandledRejection', onUnhandled);
    process.removeListener('uncaughtException', onUncaught);
  }
}

/** KILL or KILL QUERY of one random client connection (of the workload: database `test`) on `node`. */
async function killRandomConnection(node: GaleraNode, sides: Map<GaleraNode, Connection>, what: string, rng: () => number): Promise<boolean> {
  let side = sides.get(node);
  try {
    if (side === undefined) {
      side = await createConnection({ uri: node.url.replace(/\/test$/, '/'), connectTimeout: 1_000 });
      side.on('error', () => undefined);
      sides.set(node, side);
    }
    const [rows] = await side.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'test' AND ID <> CONNECTION_ID()");
    if (rows.length === 0) return false;
    const id = Number(rows[Math.floor(rng() * rows.length)]!['ID']);
    await side.query(`${what} ${id}`);
    return true;
  } catch (error) {
    if ((error as { fatal?: boolean }).fatal || side === undefined) {
      side?.destroy();
      sides.delete(node);
    }
    return false; // the node is down or refuses (1047), the thread was gone (1094): this one misses
  }
}

/** Every connection of every node checked out at once and probed: none inside a transaction. */
async function finalSweep(cluster: PoolCluster, connectionLimit: number): Promise<{ probed: number; problems: string[] }> {
  const problems: string[] = [];
  let probed = 0;
  for (const id of Object.keys(cluster.stats())) {
    const leases = await Promise.allSettled(Array.from({ length: connectionLimit }, () => cluster.getConnection(id)));
    for (const lease of leases) {
      if (lease.status === 'rejected') {
        problems.push(`final sweep: a checkout on ${id} failed: ${describe(lease.reason)}`);
        continue;
      }
      try {
        const [rows] = (await lease.value.query('SELECT @@in_transaction AS t, @@autocommit AS a')) as unknown as [Array<{ t: number; a: number }>];
        probed++;
        if (Number(rows[0]!.t) !== 0 || Number(rows[0]!.a) !== 1) problems.push(`final sweep: a connection of ${id} has @@in_transaction ${rows[0]!.t}, @@autocommit ${rows[0]!.a}`);
      } catch (error) {
        problems.push(`final sweep: probe failed on ${id}: ${describe(error)}`);
      }
    }
    for (const lease of leases) if (lease.status === 'fulfilled') lease.value.release();
  }
  return { probed, problems };
}

export function formatClusterSummary(s: ClusterSoakSummary): string {
  const lines: string[] = [];
  const pct = (n: number): string => `${((100 * n) / Math.max(1, s.transactions)).toFixed(2)} %`;
  lines.push(`rollback-pool Galera cluster soak: ${(s.durationMs / 60_000).toFixed(1)} min, seed ${s.seed}, ${s.workers} workers, ` +
    `3 nodes x connectionLimit ${s.connectionLimit} (cluster cold start ${s.clusterStartMs} ms)`);
  lines.push('');
  lines.push(`transactions: ${s.transactions} (${(s.transactions / (s.durationMs / 1000)).toFixed(0)}/s)`);
  lines.push(`  acknowledged commit:     ${s.byOutcome.committed} (${pct(s.byOutcome.committed)}): present ${s.ledger.committedPresent}, missing ${s.ledger.committedMissing}`);
  lines.push(`  certainly not committed: ${s.byOutcome.notCommitted} (${pct(s.byOutcome.notCommitted)}): absent ${s.ledger.notCommittedAbsent}, present ${s.ledger.notCommittedPresent}`);
  lines.push(`  unknown outcome:         ${s.byOutcome.unknown} (${pct(s.byOutcome.unknown)}): present ${s.ledger.unknownPresent}, absent ${s.ledger.unknownAbsent}`);
  lines.push(`  pending ${s.ledger.pending}, strangers ${s.ledger.strangers}`);
  lines.push('');
  lines.push(`node faults: ${s.nodeFaults.length} (${s.nodeFaults.filter((f) => f.kind === 'kill').length} kills, ${s.nodeFaults.filter((f) => f.kind === 'partition').length} partitions)`);
  for (const kind of ['kill', 'partition'] as const) {
    const of = s.nodeFaults.filter((f) => f.kind === kind);
    if (of.length === 0) continue;
    const stat = (pick: (f: NodeFaultRecord) => number | undefined): string => {
      const values = of.map(pick).filter((v): v is number => v !== undefined);
      return values.length === 0 ? '-' : `median ${median(values)} / max ${Math.max(...values)} ms`;
    };
    lines.push(`  ${kind}: fault -> offline ${stat((f) => f.offlineMs)}; longest pause of acknowledged commits ${stat((f) => f.writePauseMs)}; ` +
      `rejoin -> synced ${stat((f) => f.rejoinMs)}; synced -> online ${stat((f) => f.onlineAfterSyncMs)}`);
  }
  lines.push(`connection kills: ${JSON.stringify(s.connKills)}; two-phase scope refused on Galera: ${s.twoPhaseRefused}`);
  lines.push(`probe: ${s.probe.sampled} checkouts sampled (${s.probe.withInnodbTrx} with innodb_trx), ${s.probe.failed} failed, ${s.probe.violations} violations; final sweep ${s.probe.finalSweep} connections`);
  lines.push(`nodes: ${JSON.stringify(s.nodes)}`);
  lines.push(`events: ${JSON.stringify(s.events)}`);
  lines.push(`by kind: ${JSON.stringify(s.byKind)}`);
  lines.push(`details (top): ${JSON.stringify(Object.fromEntries(Object.entries(s.details).slice(0, 25)))}`);
  lines.push(`errors seen by workers: ${JSON.stringify(s.errors)}`);
  lines.push(`heap after GC: ${s.heap.beforeMB} MB after warm-up, ${s.heap.afterMB} MB at the end`);
  lines.push(`unhandled rejections ${s.unhandledRejections.length}, uncaught exceptions ${s.uncaughtExceptions.length}, handles left ${s.leakedResources.length}`);
  lines.push('');
  lines.push(s.violations.length === 0 ? 'VIOLATIONS: none' : `VIOLATIONS (${s.violations.length}):\n  ${s.violations.join('\n  ')}`);
  return lines.join('\n');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function withConnection<T>(url: string, fn: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await createConnection({ uri: url, connectTimeout: 5_000 });
  try {
    return await fn(conn);
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}


