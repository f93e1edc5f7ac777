/**
 * The three faults of a Galera cluster, under load, each checked with a
 * ledger (support.ts): 0 acknowledged commits lost, 0 certainly-not-committed
 * rows present, no abandon and no failed rollback reported (nothing the
 * workload does abandons anything), and writes resumed on healthy nodes
 * within a bound measured here:
 *
 * - SIGKILL of a node: its pool's connects are refused, the node goes
 *   offline at once (not after 5 errors), calls go to the others; Galera
 *   pauses writes on the survivors until it has evicted the dead node
 *   (`evs.suspect_timeout`, 2 s in scripts/galera.ts), then they resume. The
 *   node rejoins by IST and comes back online by itself (its probe);
 * - a node partitioned away (`gmcast.isolate=1`): it stays up and answers,
 *   and refuses every table statement with 1047; the cluster takes it offline
 *   at its first refusal, a plain Pool on it closes the refused connections
 *   quietly (a `destroy` naming the node state, never `abandon` or
 *   `rollbackError`);
 * - quorum loss (two of three killed at once): the survivor is non-Primary,
 *   every node is offline (`POOL_NONEONLINE`, nothing sent), until
 *   `pc.bootstrap=YES` makes it a primary component of its own; its probe
 *   brings it back and writes resume.
 *
 * Conditions are waited for, never time.
 */
import type { Connection } from 'mysql2/promise';
import { createPool, type PoolCluster } from '../../src/index';
import { rejection } from '../support/async';
import { describeGalera, falseAlarms, Ledger, recordNodeEvents, startLoad, waitFor, type GaleraEnv } from './support';

/** Failover bound of the tests: writes and reads back on healthy nodes within this long after the node is known down. */
const BOUND_MS = 1_000;

function firstAfter(times: Iterable<number>, after: number): number | undefined {
  let first: number | undefined;
  for (const t of times) if (t > after && (first === undefined || t < first)) first = t;
  return first;
}

/** Reads through the cluster until one is served by a node other than `down`; resolves when. */
async function firstReadElsewhere(cluster: PoolCluster, down: string): Promise<number> {
  for (;;) {
    try {
      const [rows] = (await cluster.query('SELECT @@wsrep_node_name AS node')) as unknown as [Array<{ node: string }>];
      if (rows[0]?.node !== down) return Date.now();
    } catch {
      // the dead node's turn: failover takes it out; try again
    }
  }
}

async function checkLedger(ledger: Ledger, conn: Connection, label: string): Promise<Map<number, string>> {
  const result = await ledger.check(conn);
  process.stdout.write(
    `[${label}] ledger: ${ledger.count('committed')} acknowledged (missing ${result.missing.length}), ` +
      `${ledger.count('notCommitted')} certainly not committed (present ${result.ghosts.length}), ` +
      `${ledger.count('unknown')} unknown (${result.unknownPresent} present); errors ${JSON.stringify(Object.fromEntries(ledger.errors))}\n`,
  );
  expect(result.missing).toEqual([]);
  expect(result.ghosts).toEqual([]);
  return result.nodeOf;
}

describeGalera('Galera faults under load', (env: GaleraEnv) => {
  let tables = 0;
  async function freshLedger(): Promise<Ledger> {
    const ledger = new Ledger(`galera_ledger_${++tables}`);
    const conn = await env.direct(0);
    await conn.query(Ledger.ddl(ledger.table));
    return ledger;
  }

  test('SIGKILL of a node under load: offline at once, the others serve, nothing lost, back online after its IST rejoin', async () => {
    const ledger = await freshLedger();
    const cluster = env.poolCluster();
    const events = recordNodeEvents(cluster);
    const load = startLoad(cluster, ledger);
    await waitFor('commits flowing', () => ledger.count('committed') >= 60);

    const killedAt = Date.now();
    await env.node(2).kill();
    await waitFor('g3 offline', () => events.some((e) => e.event === 'offline' && e.id === 'g3'), 10_000);
    const offlineAt = events.find((e) => e.event === 'offline' && e.id === 'g3')!.at;
    const readAt = await firstReadElsewhere(cluster, 'g3');
    // Galera holds writes on the survivors until the dead node is evicted from the view.
    await env.galera.until(15_000, 'g3 evicted', async () => (await env.node(0).status())?.clusterSize === 2);
    const evictedAt = Date.now();
    await waitFor('a commit acknowledged after the eviction', () => firstAfter(ledger.ackedAt.values(), evictedAt) !== undefined, 10_000);
    const resumedAt = firstAfter(ledger.ackedAt.values(), offlineAt)!;
    const afterEviction = firstAfter(ledger.ackedAt.values(), evictedAt)! - evictedAt;
    process.stdout.write(
      `[kill] SIGKILL -> offline ${offlineAt - killedAt} ms; offline -> first read on another node ${readAt - offlineAt} ms; ` +
        `offline -> first acknowledged commit ${resumedAt - offlineAt} ms (Galera evicted g3 ${evictedAt - killedAt} ms after the kill; ` +
        `first commit ${afterEviction} ms after that)\n`,
    );
    expect(readAt - offlineAt).toBeLessThan(BOUND_MS);
    expect(afterEviction).toBeLessThan(BOUND_MS);
    expect(events.filter((e) => e.event === 'remove')).toEqual([]);

    const restartAt = Date.now();
    await env.node(2).start(); // IST, then synced
    await waitFor('g3 online again', () => events.some((e) => e.event === 'online' && e.id === 'g3'), 15_000);
    const onlineAt = events.find((e) => e.event === 'online' && e.id === 'g3')!.at;
    const servedAgain = ledger.token(); // (unused) tokens from here on were issued after g3 came back
    await waitFor('30 commits since', () => [...ledger.ackedAt.values()].filter((t) => t > onlineAt).length >= 30, 10_000);
    await load.stop();
    process.stdout.write(`[kill] restart -> synced -> online ${onlineAt - restartAt} ms (reason: ${events.find((e) => e.event === 'online')!.reason})\n`);

    const nodeOf = await checkLedger(ledger, await env.direct(0), 'kill');
    expect([...nodeOf].some(([token, node]) => token >= servedAgain && node === 'g3')).toBe(true); // g3 serves again
    expect(falseAlarms(cluster)).toEqual({ abandoned: 0, rollbackFailures: 0 });
    expect(cluster.stats()['g3']).toMatchObject({ state: 'online', offlineCount: 1, onlineCount: 1 });
  }, 60_000);

  test('a node partitioned away (gmcast.isolate): 1047 takes it offline at once; a plain Pool on it closes refused BEGINs quietly; nothing lost', async () => {
    const ledger = await freshLedger();
    const cluster = env.poolCluster();
    const events = recordNodeEvents(cluster);
    // A plain Pool on the node that will be partitioned: its refused BEGINs must not look like abandons.
    const single = env.track(createPool({ uri: env.node(1).url, connectionLimit: 2 }));
    const singleEvents: string[] = [];
    single.on('abandon', ({ reason }) => singleEvents.push(`abandon:${reason}`));
    single.on('rollbackError', () => singleEvents.push('rollbackError'));
    single.on('destroy', ({ reason }) => singleEvents.push(`destroy:${reason}`));
    await single.query('SELECT 1');
    const lease = await single.getConnection(); // held across the partition: its own BEGIN is refused too
    const load = startLoad(cluster, ledger);
    await waitFor('commits flowing', () => ledger.count('committed') >= 60);

    const isolatedAt = Date.now();
    await env.node(1).isolate(); // returns once g2 is non-Primary and the others evicted it
    await waitFor('g2 offline', () => events.some((e) => e.event === 'offline' && e.id === 'g2'), 10_000);
    const offline = events.find((e) => e.event === 'offline' && e.id === 'g2')!;
    expect(offline.reason).toMatch(/1047|cannot serve/);
    const readAt = await firstReadElsewhere(cluster, 'g2');
    await waitFor('a commit acknowledged after g2 went offline', () => firstAfter(ledger.ackedAt.values(), Math.max(offline.at, isolatedAt)) !== undefined, 10_000);
    const resumedAt = firstAfter(ledger.ackedAt.values(), offline.at)!;
    process.stdout.write(`[isolate] offline (${offline.reason}); offline -> first read elsewhere ${readAt - offline.at} ms, ` +
      `-> first acknowledged commit ${resumedAt - offline.at} ms\n`);
    expect(readAt - offline.at).toBeLessThan(BOUND_MS);
    expect(resumedAt - offline.at).toBeLessThan(BOUND_MS);

    // The plain Pool: transaction(), begin(), a held lease's beginTransaction(), each refused with 1047.
    expect((await rejection(single.transaction(async () => 'never'))).errno).toBe(1047);
    expect((await rejection(single.begin())).errno).toBe(1047);
    expect((await rejection(lease.beginTransaction())).errno).toBe(1047);
    lease.release();
    await waitFor('the refused connections closed', () => single.stats().total === 0 && single.stats().leased === 0, 5_000);
    expect(singleEvents.length).toBeGreaterThan(0);
    for (const event of singleEvents) expect(event).toMatch(/^destroy:node not ready \(1047 WSREP has not yet prepared node/);
    expect(single.stats()).toMatchObject({ abandoned: 0, rollbackFailures: 0 });

    const rejoinAt = Date.now();
    await env.node(1).rejoin();
    await waitFor('g2 online again', () => events.some((e) => e.event === 'online' && e.id === 'g2'), 15_000);
    process.stdout.write(`[isolate] rejoin -> synced -> online ${events.find((e) => e.event === 'online')!.at - rejoinAt} ms\n`);
    await load.stop();
    await checkLedger(ledger, await env.direct(0), 'isolate');
    expect(falseAlarms(cluster)).toEqual({ abandoned: 0, rollbackFailures: 0 });
  }, 60_000);

  test('quorum loss (two of three killed) then pc.bootstrap: every node offline meanwhile, nothing sent; writes resume once the survivor serves', async () => {
    const ledger = await freshLedger();
    const cluster = env.poolCluster();
    const events = recordNodeEvents(cluster);
    const load = startLoad(cluster, ledger);
    await waitFor('commits flowing', () => ledger.count('committed') >= 60);

    await Promise.all([env.node(1).kill(), env.node(2).kill()]);
    await env.galera.until(15_000, 'g1 non-Primary', async () => (await env.node(0).status())?.clusterStatus === 'non-Primary');
    await waitFor('every node offline', () => ['g1', 'g2', 'g3'].every((id) => events.some((e) => e.event === 'offline' && e.id === id)), 10_000);
    const none = await rejection(cluster.transaction(async () => 'never'));
    expect(none.code).toBe('POOL_NONEONLINE');

    const bootstrapAt = Date.now();
    await env.node(0).bootstrap();
    await waitFor('g1 online again', () => events.some((e) => e.event === 'online' && e.id === 'g1'), 10_000);
    const onlineAt = events.find((e) => e.event === 'online' && e.id === 'g1')!.at;
    await waitFor('a commit acknowledged after the bootstrap', () => firstAfter(ledger.ackedAt.values(), bootstrapAt) !== undefined, 10_000);
    const resumedAt = firstAfter(ledger.ackedAt.values(), bootstrapAt)!;
    process.stdout.write(`[quorum] pc.bootstrap -> g1 online ${onlineAt - bootstrapAt} ms -> first acknowledged commit ${resumedAt - bootstrapAt} ms\n`);
    expect(resumedAt - bootstrapAt).toBeLessThan(2 * BOUND_MS); // the probe's backoff is capped at 1 s
    await load.stop();
    await checkLedger(ledger, await env.direct(0), 'quorum');
    expect(falseAlarms(cluster)).toEqual({ abandoned: 0, rollbackFailures: 0 });
  }, 60_000);
});
