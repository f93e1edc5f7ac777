/**
 * Which node serves a call: `add` (named and `CLUSTER::n` nodes), `remove`,
 * `of` patterns (exact id, `*` glob, RegExp), the three selectors in mysql2's
 * order, and the typed errors for what mysql2 gets wrong or reports
 * (unknown selector, duplicate id, POOL_NOEXIST). Every node is a proxy of
 * its own in front of the same server, so the thread id of a connection says
 * which node made it.
 */
import type { RowDataPacket } from 'mysql2';
import {
  ClusterNodeExistsError,
  createPoolCluster,
  InvalidOptionError,
  PoolNotExistError,
  type PoolCluster,
  type PoolNamespace,
} from '../../src/index';
import { rejection } from '../support/async';
import { servedBy, startNodeProxy, type NodeProxy } from './helpers';

let proxies: NodeProxy[] = [];
const clusters: PoolCluster[] = [];

beforeAll(async () => {
  proxies = await Promise.all([0, 1, 2].map(() => startNodeProxy()));
});

afterAll(async () => {
  await Promise.all(clusters.map((cluster) => cluster.end()));
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

/** A cluster whose node `ids[i]` goes through proxy i. */
function clusterOf(ids: string[], options: Parameters<typeof createPoolCluster>[0] = {}): PoolCluster {
  const cluster = createPoolCluster(options);
  clusters.push(cluster);
  ids.forEach((id, i) => cluster.add(id, { uri: proxies[i]!.url, connectionLimit: 2 }));
  return cluster;
}

/** The proxy index of the node that served each of `n` checkouts (each released before the next). */
async function checkouts(target: PoolCluster | PoolNamespace, n: number): Promise<number[]> {
  const served: number[] = [];
  for (let i = 0; i < n; i++) {
    const conn = await target.getConnection();
    served.push(servedBy(proxies, conn.threadId));
    conn.release();
  }
  return served;
}

/** The proxy index of the node that ran each of `n` pool-level statements. */
async function statements(namespace: PoolNamespace, n: number, method: 'query' | 'execute' = 'query'): Promise<number[]> {
  const served: number[] = [];
  for (let i = 0; i < n; i++) {
    const [rows] = await namespace[method]<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    served.push(servedBy(proxies, Number(rows[0]!.id)));
  }
  return served;
}

describe('selectors', () => {
  test('RR (the default) takes the matching nodes in turn, in the order they were added', async () => {
    const cluster = clusterOf(['a', 'b', 'c']);
    expect(await checkouts(cluster.of('*'), 7)).toEqual([0, 1, 2, 0, 1, 2, 0]);
    // cluster.getConnection() is of('*', default): the same namespace, so the same turn.
    expect(await checkouts(cluster, 2)).toEqual([1, 2]);
    expect(cluster.of('*')).toBe(cluster.of('*', 'RR'));
    expect(cluster.of('*', 'rr')).toBe(cluster.of()); // case-insensitive, as mysql2
  });

  test('query and execute pick nodes the same way, and give each connection back', async () => {
    const cluster = clusterOf(['a', 'b']);
    const namespace = cluster.of('*', 'RR');
    expect(await statements(namespace, 3)).toEqual([0, 1, 0]);
    expect(await statements(namespace, 3, 'execute')).toEqual([1, 0, 1]);
    // Every connection went back: each node's pool holds no lease.
    expect(cluster.toJSON().nodes.map((node) => node.pool.stats.leased)).toEqual([0, 0]);
  });

  test('each namespace has its own round-robin turn', async () => {
    const cluster = clusterOf(['a', 'b', 'c']);
    expect(await checkouts(cluster.of('*'), 1)).toEqual([0]);
    expect(await checkouts(cluster.of(/^[bc]$/), 3)).toEqual([1, 2, 1]);
    expect(await checkouts(cluster.of('*'), 1)).toEqual([1]);
  });

  test('ORDER always takes the first matching node', async () => {
    const cluster = clusterOf(['a', 'b', 'c'], { defaultSelector: 'ORDER' });
    expect(await checkouts(cluster, 3)).toEqual([0, 0, 0]);
    expect(await checkouts(cluster.of('*', 'ORDER'), 2)).toEqual([0, 0]);
    expect(await checkouts(cluster.of('c*'), 2)).toEqual([2, 2]);
    expect(await checkouts(cluster.of('*', 'RR'), 3)).toEqual([0, 1, 2]); // a selector given to of() wins
  });

  test('RANDOM only ever takes a matching node, and takes each of them', async () => {
    const cluster = clusterOf(['a', 'b', 'c']);
    const served = await checkouts(cluster.of(/^[ab]$/, 'RANDOM'), 40);
    expect(new Set(served)).toEqual(new Set([0, 1])); // the odds of missing one in 40 draws: 2 in 10^12
  });

  test('a namespace with one matching node does not advance its turn (mysql2 calls no selector then)', async () => {
    const cluster = clusterOf(['a', 'b']);
    const namespace = cluster.of('*', 'RR');
    expect(await checkouts(namespace, 1)).toEqual([0]);
    cluster.remove('b');
    expect(await checkouts(namespace, 2)).toEqual([0, 0]);
    cluster.add('b', { uri: proxies[1]!.url, connectionLimit: 2 });
    expect(await checkouts(namespace, 2)).toEqual([1, 0]); // the counter stood still at 1
  });
});

describe('patterns, add and remove', () => {
  test('exact ids, * globs and RegExps match as in mysql2; other characters are literal', async () => {
    const cluster = clusterOf(['primary', 'replica.1', 'replicaX1']);
    expect(await checkouts(cluster.of('primary'), 2)).toEqual([0, 0]);
    expect(await checkouts(cluster.of('replica*'), 2)).toEqual([1, 2]);
    expect(await checkouts(cluster.of(/X1$/), 1)).toEqual([2]);
    expect(await checkouts(cluster.of('*'), 3)).toEqual([0, 1, 2]);
    // '.' is literal (not "any character"): 'replica.1' does not match 'replicaX1'.
    expect(await checkouts(cluster.of('replica.1'), 3)).toEqual([1, 1, 1]);
    expect(await checkouts(cluster.of('*.1'), 2)).toEqual([1, 1]);
    // A glob is anchored at both ends, and '?' is literal too.
    expect((await rejection(cluster.of('rep').getConnection())).code).toBe('POOL_NOEXIST');
    expect((await rejection(cluster.of('replica?1').getConnection())).code).toBe('POOL_NOEXIST');
    expect((await rejection(cluster.of('rimary').getConnection())).code).toBe('POOL_NOEXIST');
  });

  test('remove(pattern) takes out every matching node and ends its pool; the id can be added again', async () => {
    const cluster = clusterOf(['primary', 'replica1', 'replica2']);
    const replicas = cluster.of('replica*');
    expect(await checkouts(replicas, 1)).toEqual([1]);
    const held = await cluster.getConnection('replica2');
    cluster.remove('replica*');
    expect(cluster.toJSON().nodes.map((node) => node.id)).toEqual(['primary']);
    // The removed node's pool was ended: its lease is fenced.
    expect((await rejection(held.query('SELECT 1'))).code).toBe('ERR_POOL_CLOSED');

    const error = await rejection(replicas.getConnection());
    expect(error).toBeInstanceOf(PoolNotExistError);
    expect(error).toMatchObject({ code: 'POOL_NOEXIST', message: 'Pool does Not exist.', pattern: 'replica*' });
    expect(await checkouts(cluster.of('*'), 2)).toEqual([0, 0]);

    cluster.add('replica1', { uri: proxies[1]!.url, connectionLimit: 2 });
    expect(await checkouts(replicas, 1)).toEqual([1]);
    cluster.remove('nothing-matches'); // a no-op, as in mysql2
  });

  test('add(config) names nodes CLUSTER::1, CLUSTER::2..., skipping an id already taken', async () => {
    const cluster = createPoolCluster();
    clusters.push(cluster);
    expect(cluster.add({ uri: proxies[0]!.url, connectionLimit: 1 })).toBe('CLUSTER::1');
    expect(cluster.add('CLUSTER::2', { uri: proxies[1]!.url, connectionLimit: 1 })).toBe('CLUSTER::2');
    expect(cluster.add({ uri: proxies[2]!.url, connectionLimit: 1 })).toBe('CLUSTER::3');
    expect(cluster.add('by-url', proxies[2]!.url)).toBe('by-url'); // a URL string, as mysql2's add(id, uri)
    expect(await checkouts(cluster.of('CLUSTER::*'), 3)).toEqual([0, 1, 2]);
    expect(await checkouts(cluster.of('by-url'), 1)).toEqual([2]);
  });

  test('a cluster with no node rejects with POOL_NOEXIST', async () => {
    const cluster = createPoolCluster();
    clusters.push(cluster);
    const error = await rejection(cluster.getConnection());
    expect(error).toBeInstanceOf(PoolNotExistError);
    expect(error).toMatchObject({ code: 'POOL_NOEXIST', pattern: '*' });
    expect((await rejection(cluster.query('SELECT 1'))).code).toBe('POOL_NOEXIST');
    expect((await rejection(cluster.begin())).code).toBe('POOL_NOEXIST');
    expect((await rejection(cluster.withScope(async () => 1))).code).toBe('POOL_NOEXIST');
  });
});

describe('typed errors where mysql2 fails late or silently', () => {
  test('a duplicate id throws ERR_CLUSTER_NODE_EXISTS (mysql2 silently keeps the first node) and leaves the first node in place', async () => {
    const cluster = clusterOf(['a']);
    const error = (() => {
      try {
        cluster.add('a', { uri: proxies[1]!.url });
      } catch (e) {
        return e;
      }
      throw new Error('add() did not throw');
    })();
    expect(error).toBeInstanceOf(ClusterNodeExistsError);
    expect(error).toMatchObject({ code: 'ERR_CLUSTER_NODE_EXISTS', nodeId: 'a' });
    expect(await checkouts(cluster.of('a'), 1)).toEqual([0]);
  });

  test('an unknown selector throws ERR_INVALID_OPTION at of() and at construction (mysql2: a raw TypeError)', async () => {
    const cluster = clusterOf(['a']);
    const bogus = 'FASTEST' as 'RR';
    expect(() => cluster.of('*', bogus)).toThrow(InvalidOptionError);
    expect(() => cluster.of('*', bogus)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'selector' }));
    expect((await rejection(cluster.getConnection('*', bogus))).option).toBe('selector');
    expect(() => createPoolCluster({ defaultSelector: bogus })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'defaultSelector' }));
  });

  test('cluster options are validated once: unknown keys, wrong types, negative counts', () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ canRetry: 'yes' }, 'canRetry'],
      [{ removeNodeErrorCount: -1 }, 'removeNodeErrorCount'],
      [{ removeNodeErrorCount: 1.5 }, 'removeNodeErrorCount'],
      [{ restoreNodeTimeout: '1000' }, 'restoreNodeTimeout'],
      [{ restoreNodeTimout: 1000 }, 'restoreNodeTimout'],
    ];
    for (const [options, option] of bad) {
      expect(() => createPoolCluster(options as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }));
    }
    expect(createPoolCluster().config).toEqual({ canRetry: true, removeNodeErrorCount: 5, restoreNodeTimeout: 0, defaultSelector: 'RR', clusterAware: 'auto' });
    expect(createPoolCluster({ removeNodeErrorCount: 0, defaultSelector: 'order' }).config).toMatchObject({ removeNodeErrorCount: 0, defaultSelector: 'ORDER' });
  });

  test('bad node options and a bad pattern throw ERR_INVALID_OPTION, and a refused node leaves nothing behind', () => {
    const cluster = clusterOf([]);
    expect(() => cluster.add('x', { uri: proxies[0]!.url, conectionLimit: 2 } as never)).toThrow(expect.objectContaining({ option: 'conectionLimit' }));
    expect(() => cluster.add('x', undefined as never)).toThrow(expect.objectContaining({ option: 'config' }));
    expect(() => cluster.of(42 as never)).toThrow(expect.objectContaining({ option: 'pattern' }));
    expect(() => cluster.remove(undefined as never)).toThrow(expect.objectContaining({ option: 'pattern' }));
    expect(cluster.toJSON().nodes).toEqual([]);
  });

  test('the promise face refuses callbacks, as mysql2/promise', () => {
    const cluster = clusterOf(['a']);
    expect(() => cluster.getConnection((() => undefined) as never)).toThrow('Callback function is not available with promise clients.');
    expect(() => cluster.of('*').query('SELECT 1', (() => undefined) as never)).toThrow('Callback function is not available');
  });
});
