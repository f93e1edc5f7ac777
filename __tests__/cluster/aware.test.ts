/**
 * Cluster-aware nodes (`clusterAware`), on the shared server (no Galera
 * needed; the real cluster is in __tests__/galera/):
 *
 * - `'auto'` (default) finds out per node at its first connection: a server
 *   without Galera keeps mysql2's rules (the side-by-side traces of
 *   failover.test.ts still hold);
 * - `true`: a refused connection takes the node offline at once, whatever
 *   `removeNodeErrorCount` says, and never removes it (`restoreNodeTimeout:
 *   0`); a background probe with exponential backoff (not a hot loop) brings
 *   it back `online`, with the reason;
 * - a statement refused with 1047 goes to another node (it never ran); the
 *   probe brings the node back;
 * - `transaction(fn, { retries })` re-runs on another node after 1213, never
 *   after ERR_COMMIT_OUTCOME_UNKNOWN;
 * - `cluster.stats()` per node; no password anywhere.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createPoolCluster, type PoolCluster } from '../../src/index';
import { rejection } from '../support/async';
import { mysqlUrl, sideConnection, uniqueTable } from '../support/db';
import { startProxy, type Proxy, type QueryAction } from '../support/fault-proxy';
import { recordEvents, startNodeProxy, waitUntil, type NodeProxy } from './helpers';

const table = uniqueTable('cluster_aware');
const FAIL_COMMIT = `rp_cluster_certification_${process.pid}`;
const NOT_READY = "SIGNAL SQLSTATE '08S01' SET MYSQL_ERRNO = 1047, MESSAGE_TEXT = 'WSREP has not yet prepared node for application use'";

let side: Connection;
let nodes: NodeProxy[] = [];
let opened: PoolCluster[] = [];

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
  // A COMMIT that fails as Galera's certification does: rolled back by the server, 1213.
  await side.query(`CREATE PROCEDURE ${FAIL_COMMIT}() BEGIN ROLLBACK; SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found when trying to get lock; try restarting transaction'; END`);
});
afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.query(`DROP PROCEDURE IF EXISTS ${FAIL_COMMIT}`);
  await side.end();
});
beforeEach(async () => {
  nodes = await Promise.all([0, 1, 2].map(() => startNodeProxy()));
  opened = [];
  await side.query(`DELETE FROM ${table}`);
});
afterEach(async () => {
  await Promise.all(opened.map((cluster) => cluster.end()));
  await Promise.all(nodes.map((node) => node.close()));
});

function build(urls: string[], options: Parameters<typeof createPoolCluster>[0] = {}): PoolCluster {
  const cluster = createPoolCluster(options);
  opened.push(cluster);
  urls.forEach((uri, i) => cluster.add(`n${i}`, { uri, connectionLimit: 2 }));
  return cluster;
}

test("clusterAware is validated; 'auto' (default) finds a server without Galera and keeps mysql2's rules for it", async () => {
  expect(() => createPoolCluster({ clusterAware: 'yes' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'clusterAware' }));
  const cluster = createPoolCluster();
  opened.push(cluster);
  cluster.add('plain', { uri: nodes[0]!.url, connectionLimit: 1 });
  expect(cluster.config.clusterAware).toBe('auto');
  expect(cluster.stats()['plain']).toMatchObject({ galera: undefined, clusterAware: false });
  await cluster.query('SELECT 1');
  expect(cluster.stats()['plain']).toMatchObject({ state: 'online', galera: false, clusterAware: false, probing: false });
});

test('clusterAware: a refused node goes offline at once, is never removed, is probed with backoff (no hot loop) and comes back online by itself', async () => {
  const cluster = build(nodes.map((n) => n.url), { clusterAware: true, defaultSelector: 'ORDER', removeNodeErrorCount: 5, restoreNodeTimeout: 0 });
  const events = recordEvents(cluster);
  const reasons: string[] = [];
  cluster.on('offline', (_id, transition) => reasons.push(transition.reason));
  cluster.on('online', (_id, transition) => reasons.push(transition.reason));
  await nodes[0]!.down();

  const [rows] = (await cluster.query('SELECT 1 AS one')) as unknown as [Array<{ one: number }>];
  expect(rows[0]!.one).toBe(1); // went to n1 at once, in the selector's order
  expect(events).toEqual(['offline:n0', 'warn:ECONNREFUSED']);
  expect(reasons[0]).toMatch(/^ECONNREFUSED/);
  const offlineAt = Date.now();
  expect(cluster.stats()['n0']).toMatchObject({ state: 'offline', probing: true, failovers: 1, offlineCount: 1 });

  // Probes at 100, 200, 400, 800 ms...: the 4th cannot come before 1.5 s.
  await waitUntil(() => cluster.stats()['n0']!.probes >= 4, 10_000);
  expect(Date.now() - offlineAt).toBeGreaterThanOrEqual(1_400);
  expect(events.filter((e) => e.startsWith('remove'))).toEqual([]);

  await nodes[0]!.up();
  await waitUntil(() => events.includes('online:n0'), 5_000);
  expect(reasons[1]).toBe('probe: answers (no Galera)');
  expect(cluster.stats()['n0']).toMatchObject({ state: 'online', probing: false, offlineCount: 1, onlineCount: 1, errorCount: 0 });
});

test('a lost connection makes the cluster check the node at once: a KILL leaves it online; a node that died goes offline with no further call', async () => {
  const cluster = build([nodes[0]!.url, nodes[1]!.url], { clusterAware: true, defaultSelector: 'ORDER' });
  const events = recordEvents(cluster);
  await cluster.query('SELECT 1'); // n0 known (no Galera), its connections checked
  const killed = cluster.query('SELECT SLEEP(5)');
  await waitUntil(async () => (await side.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(5)'"))[0].length === 1);
  const [[running]] = await side.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(5)'");
  const accepted = nodes[0]!.accepted;
  await side.query(`KILL ${Number(running!['ID'])}`);
  expect((await rejection(killed)).fatal).toBe(true);
  // The check ran on a connection of its own and found the node answering: no event, still online.
  await waitUntil(() => nodes[0]!.accepted > accepted, 5_000);
  await waitUntil(async () => (await side.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SHOW GLOBAL STATUS%'"))[0].length === 0);
  expect(events).toEqual([]);
  expect(cluster.stats()['n0']!.state).toBe('online');

  const lost = cluster.query('SELECT SLEEP(5)');
  await waitUntil(async () => (await side.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(5)'"))[0].length === 1);
  await nodes[0]!.down(); // its connections cut, nothing listens any more
  expect((await rejection(lost)).fatal).toBe(true);
  await waitUntil(() => events.includes('offline:n0'), 5_000); // no other call needed to find out
  expect(cluster.stats()['n0']).toMatchObject({ state: 'offline', probing: true });
  expect(cluster.stats()['n0']!.reason).toMatch(/^ECONNREFUSED/);
});

test('no password in the reasons, the stats or what the cluster prints', async () => {
  const cluster = createPoolCluster({ clusterAware: true });
  opened.push(cluster);
  const down = new URL(nodes[0]!.url);
  down.password = 's3cret-pw';
  cluster.add('down', { uri: down.toString(), connectionLimit: 1 });
  cluster.add('up', { uri: nodes[1]!.url, connectionLimit: 1 });
  const transitions: unknown[] = [];
  cluster.on('offline', (_id, transition) => transitions.push(transition));
  await nodes[0]!.down();
  await cluster.of('down').query('SELECT 1').catch(() => undefined);
  expect(transitions).toHaveLength(1);
  const text = JSON.stringify([cluster, cluster.stats(), transitions, String((transitions[0] as { error?: unknown }).error)]);
  expect(text).not.toContain('s3cret-pw');
});

test('clusterAware: every node down: POOL_NONEONLINE at once, nothing sent; back when they answer', async () => {
  const cluster = build(nodes.map((n) => n.url), { clusterAware: true });
  await Promise.all(nodes.map((n) => n.down()));
  const first = await rejection(cluster.query('SELECT 1'));
  expect(first.code).toBe('ECONNREFUSED'); // the last node's error, as mysql2
  expect(Object.values(cluster.stats()).map((s) => s.state)).toEqual(['offline', 'offline', 'offline']);
  expect((await rejection(cluster.transaction(async () => 'never', { retries: 2 }))).code).toBe('POOL_NONEONLINE');
  await Promise.all(nodes.map((n) => n.up()));
  await waitUntil(() => Object.values(cluster.stats()).every((s) => s.state === 'online'), 5_000);
  expect((await cluster.query('SELECT 1'))[0]).toEqual([{ 1: 1 }]);
});

test('a statement a node refused with 1047 goes to another node (it never ran); the probe brings the node back', async () => {
  let refuse = true;
  const refusing: Proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql): QueryAction => (refuse && sql.startsWith('INSERT') ? { rewrite: NOT_READY } : 'forward'),
  });
  try {
    const cluster = build([refusing.url, nodes[1]!.url], { clusterAware: true, defaultSelector: 'ORDER' });
    const events = recordEvents(cluster);
    await cluster.query(`INSERT INTO ${table} (id) VALUES (1)`);
    expect(events).toEqual(['offline:n0', 'warn:ER_UNKNOWN_COM_ERROR']);
    const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table}`);
    expect(rows.map((r) => r['id'])).toEqual([1]); // once
    refuse = false;
    await waitUntil(() => events.includes('online:n0'), 5_000);
    expect(cluster.stats()['n0']).toMatchObject({ failovers: 1, offlineCount: 1, onlineCount: 1 });
  } finally {
    await refusing.close();
  }
});

test('statement retries are validated; clusterAware false keeps a 1047 where it happened (no failover, no probe)', async () => {
  const refusing: Proxy = await startProxy(mysqlUrl(), {
    onQuery: (sql): QueryAction => (sql.startsWith('INSERT') ? { rewrite: NOT_READY } : 'forward'),
  });
  try {
    const cluster = build([refusing.url, nodes[1]!.url], { clusterAware: false, defaultSelector: 'ORDER' });
    expect((await rejection(cluster.query('SELECT 1', undefined, { retries: -1 }))).code).toBe('ERR_INVALID_OPTION');
    expect((await rejection(cluster.execute('SELECT 1', [], { retrys: 1 } as never))).code).toBe('ERR_INVALID_OPTION');
    expect((await rejection(cluster.query(`INSERT INTO ${table} (id) VALUES (2)`))).errno).toBe(1047);
    expect(cluster.stats()['n0']).toMatchObject({ state: 'online', probing: false, failovers: 0 });
  } finally {
    await refusing.close();
  }
});

test('transaction retries: after 1213 at COMMIT it runs again on another node; never after ERR_COMMIT_OUTCOME_UNKNOWN', async () => {
  let onCommit: QueryAction = { rewrite: `CALL ${FAIL_COMMIT}()` };
  const flaky: Proxy = await startProxy(mysqlUrl(), { onQuery: (sql) => (sql === 'COMMIT' ? onCommit : 'forward') });
  try {
    const cluster = build([flaky.url, nodes[1]!.url], { clusterAware: true, defaultSelector: 'RR' });
    let runs = 0;
    await cluster.transaction(async (tx) => {
      runs++;
      await tx.query(`INSERT INTO ${table} (id) VALUES (10)`);
    }, { retries: 2 });
    expect(runs).toBe(2); // n0's COMMIT answered 1213: rolled back there, run again (round robin: on n1)
    expect(cluster.stats()['n0']).toMatchObject({ retries: 1, state: 'online' }); // a conflict is not a node failure

    onCommit = 'lose-reply'; // the COMMIT reaches the server, its answer never comes back: outcome unknown
    runs = 0;
    const error = await rejection(cluster.of('n0').transaction(async (tx) => {
      runs++;
      await tx.query(`INSERT INTO ${table} (id) VALUES (11)`);
    }, { retries: 5 }));
    expect(error.code).toBe('ERR_COMMIT_OUTCOME_UNKNOWN');
    expect(runs).toBe(1);
    await waitUntil(async () => (await side.query<RowDataPacket[]>(`SELECT id FROM ${table} WHERE id = 11`))[0].length === 1, 5_000);
    const [rows] = await side.query<RowDataPacket[]>(`SELECT id FROM ${table} ORDER BY id`);
    expect(rows.map((r) => r['id'])).toEqual([10, 11]); // each exactly once
  } finally {
    await flaky.close();
  }
});
