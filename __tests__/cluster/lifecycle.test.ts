/**
 * The end of a cluster, and what it shows of itself: `end()` closes every
 * node's connections (none left in the server's processlist, including
 * those of a node removed just before), every call after it rejects with
 * `ERR_POOL_CLOSED` without counting anything against the nodes,
 * `await using` ends it, and no password ever appears in what a cluster,
 * a namespace, an event or an error prints.
 */
import type { Connection } from 'mysql2/promise';
import { inspect } from 'node:util';
import { createCallbackPoolCluster } from '../../src/cluster/index';
import { createPoolCluster, PoolClosedError, type PoolCluster } from '../../src/index';
import { rejection } from '../support/async';
import { sideConnection } from '../support/db';
import { aliveThreads, deadUrl, recordEvents, startNodeProxy, waitUntil, type NodeProxy } from './helpers';

let side: Connection;
let proxies: NodeProxy[] = [];

beforeAll(async () => {
  side = await sideConnection();
});

afterAll(async () => {
  await side.end();
});

beforeEach(async () => {
  proxies = await Promise.all([0, 1, 2].map(() => startNodeProxy()));
});

afterEach(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

function threadsOf(list: NodeProxy[]): number[] {
  return list.flatMap((proxy) => [...proxy.threadIds]);
}

describe('end()', () => {
  test('closes every node, leases out, idle, in a transaction, and a node removed just before: no thread left', async () => {
    const cluster = createPoolCluster();
    ['a', 'b', 'c'].forEach((id, i) => cluster.add(id, { uri: proxies[i]!.url, connectionLimit: 3 }));
    const inTransaction = await cluster.getConnection('a');
    await inTransaction.beginTransaction();
    const idle = await cluster.getConnection('b');
    idle.release();
    const busy = [await cluster.getConnection('b'), await cluster.getConnection('b')];
    const removedLease = await cluster.getConnection('c');
    await cluster.query('SELECT 1');

    // Counted before remove('c'): removing a node ends its pool, which starts
    // closing its connections at once (checking after it is a race).
    const threads = threadsOf(proxies);
    expect(threads.length).toBeGreaterThanOrEqual(5);
    expect(await aliveThreads(side, threads)).toEqual([...threads].sort((x, y) => x - y));
    cluster.remove('c');

    const events = recordEvents(cluster);
    const ended = cluster.end();
    expect(cluster.end()).toBe(ended);
    expect(cluster.closed).toBe(true);
    await ended;
    await waitUntil(async () => (await aliveThreads(side, threads)).length === 0);

    for (const lease of [inTransaction, ...busy, removedLease]) {
      expect(await rejection(lease.query('SELECT 1'))).toBeInstanceOf(PoolClosedError);
    }
    expect(events).toEqual([]);
  });

  test('after end() every call rejects with ERR_POOL_CLOSED, add() throws it, and nothing is counted against the nodes', async () => {
    const cluster = createPoolCluster();
    cluster.add('a', { uri: proxies[0]!.url, connectionLimit: 1 });
    cluster.add('b', { uri: proxies[1]!.url, connectionLimit: 1 });
    const events = recordEvents(cluster);
    await cluster.end();
    const calls: Array<() => Promise<unknown>> = [
      () => cluster.getConnection(),
      () => cluster.getConnection('a'),
      () => cluster.of('b').getConnection(),
      () => cluster.query('SELECT 1'),
      () => cluster.of('*').execute('SELECT 1'),
      () => cluster.begin(),
      () => cluster.transaction(async () => 1),
      () => cluster.withScope(async () => 1),
    ];
    for (const call of calls) {
      const error = await rejection(call());
      expect(error).toBeInstanceOf(PoolClosedError);
      expect(error).toMatchObject({ code: 'ERR_POOL_CLOSED', message: 'Pool is closed.' });
    }
    expect(() => cluster.add('c', { uri: proxies[2]!.url })).toThrow(PoolClosedError);
    expect(events).toEqual([]);
    expect(cluster.toJSON().nodes.map((node) => [node.id, node.state, node.errorCount, node.pool.closed])).toEqual([
      ['a', 'online', 0, true],
      ['b', 'online', 0, true],
    ]);
    expect(threadsOf(proxies)).toEqual([]); // nothing was ever connected
  });

  test('await using ends the cluster at the end of the block', async () => {
    let cluster: PoolCluster | undefined;
    {
      await using scoped = createPoolCluster();
      cluster = scoped;
      scoped.add('a', { uri: proxies[0]!.url, connectionLimit: 1 });
      await scoped.query('SELECT 1');
    }
    expect(cluster.closed).toBe(true);
    const threads = threadsOf(proxies);
    expect(threads).toHaveLength(1);
    await waitUntil(async () => (await aliveThreads(side, threads)).length === 0);
  });
});

describe('no password in what a cluster shows', () => {
  const SECRET = 'S3cret-pw-never-printed';

  test('inspect, JSON, namespaces, events and errors never contain a node\'s password', async () => {
    const wrongPassword = new URL(proxies[0]!.url);
    wrongPassword.password = SECRET; // the server's root has another password: access denied
    const dead = new URL(await deadUrl());
    // 2: a node's first failure is retried (a `warn` carrying its error), its second removes it.
    const cluster = createPoolCluster({ removeNodeErrorCount: 2 });
    const callbackCluster = createCallbackPoolCluster();
    const printed: string[] = [];
    const warned: string[] = [];
    cluster.on('warn', (error) => {
      warned.push((error as { code?: string }).code ?? '');
      printed.push(inspect(error), String(error.stack));
    });
    try {
      cluster.add('by-url', wrongPassword.toString());
      cluster.add('by-options', { host: dead.hostname, port: Number(dead.port), user: 'root', password: SECRET });
      cluster.add('fine', { uri: proxies[1]!.url, password: '' });
      callbackCluster.add('by-url', wrongPassword.toString());

      printed.push(inspect(cluster, { depth: Infinity }), JSON.stringify(cluster), inspect(cluster.of('by-*'), { depth: Infinity }));
      printed.push(inspect(callbackCluster, { depth: Infinity }), JSON.stringify(callbackCluster), inspect(callbackCluster.of('*')));

      const denied = await rejection(cluster.getConnection('by-url'));
      expect(denied.code).toBe('ER_ACCESS_DENIED_ERROR');
      const refused = await rejection(cluster.of('by-options').query('SELECT 1'));
      expect(refused.code).toBe('ECONNREFUSED');
      printed.push(inspect(denied), String(denied.stack), inspect(refused), String(refused.stack));

      expect(warned).toEqual(['ER_ACCESS_DENIED_ERROR', 'ECONNREFUSED']);
      await cluster.getConnection().then((conn) => conn.release()); // 'fine' is the one left
      // Bad node options, including a URL given where an id was expected, say nothing of their values.
      const bad = [
        () => cluster.add('x', `user:${SECRET}@127.0.0.1/test`),
        () => cluster.add(`mysql://root:${SECRET}@127.0.0.1/test` as never),
        () => cluster.add('y', { uri: proxies[0]!.url, password: SECRET, passwrd: SECRET } as never),
      ];
      for (const call of bad) {
        try {
          call();
          throw new Error('expected add() to throw');
        } catch (error) {
          expect((error as { code?: string }).code).toBe('ERR_INVALID_OPTION');
          printed.push(inspect(error), String((error as Error).stack));
        }
      }
      printed.push(inspect(cluster, { depth: Infinity }));
    } finally {
      await cluster.end();
      await callbackCluster.promise().end();
    }
    expect(printed.length).toBeGreaterThan(15);
    for (const text of printed) expect(text).not.toContain(SECRET);
    expect(printed.join('\n')).toContain('by-options'); // the summaries do name the nodes
  });
});
