/**
 * Failover and node health: a checkout refused by a node is counted on it
 * and, with `canRetry`, tried again on a node still online; at
 * `removeNodeErrorCount` errors the node is removed (`remove`) or, with
 * `restoreNodeTimeout`, taken offline (`offline`) and back (`online`) at its
 * first successful checkout after that time.
 *
 * Where mysql2's behaviour is the specification, the same script runs
 * against mysql2's own cluster and both traces (which node served each
 * checkout, every event in order, the final error) must be equal.
 *
 * A dead node is a port nothing listens on (a `NodeProxy` taken down):
 * connecting is refused at once. Nothing here waits for time: offline
 * periods are waited out by polling a condition.
 */
import * as mysql2 from 'mysql2/promise';
import { createServer, type Server, type Socket } from 'node:net';
import { createPoolCluster, PoolNoneOnlineError, type PoolClusterOptions } from '../../src/index';
import { rejection } from '../support/async';
import { recordEvents, servedBy, startNodeProxy, waitUntil, type NodeProxy } from './helpers';

/** The surface of a cluster both implementations share. */
interface AnyConnection {
  threadId: number;
  release(): void;
  destroy(): void;
}
interface AnyCluster {
  add(id: string, config: object): unknown;
  getConnection(pattern?: string, selector?: string): Promise<AnyConnection>;
  on(event: string, listener: (arg: never) => void): unknown;
  end(): Promise<void>;
}

type Make = (options: PoolClusterOptions) => AnyCluster;
const ours: Make = (options) => createPoolCluster(options) as unknown as AnyCluster;
const theirs: Make = (options) => mysql2.createPoolCluster(options as mysql2.PoolClusterOptions) as unknown as AnyCluster;

let proxies: NodeProxy[] = [];
let opened: AnyCluster[] = [];

beforeEach(async () => {
  proxies = await Promise.all([0, 1, 2].map(() => startNodeProxy()));
  opened = [];
});

afterEach(async () => {
  await Promise.all(opened.map((cluster) => cluster.end()));
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

/** A cluster whose node `ids[i]` goes through proxy i. */
function build(make: Make, ids: string[], options: PoolClusterOptions = {}): AnyCluster {
  const cluster = make(options);
  opened.push(cluster);
  ids.forEach((id, i) => cluster.add(id, { uri: proxies[i]!.url, connectionLimit: 2 }));
  return cluster;
}

/**
 * `n` checkouts in a row, each released at once (or destroyed, so that the
 * next one must connect): the node (proxy index) that served each, or the error code.
 */
async function checkouts(cluster: AnyCluster, n: number, pattern?: string, selector?: string, destroy = false): Promise<Array<number | string>> {
  const trace: Array<number | string> = [];
  for (let i = 0; i < n; i++) {
    try {
      const conn = await cluster.getConnection(pattern, selector);
      trace.push(servedBy(proxies, conn.threadId));
      if (destroy) conn.destroy();
      else conn.release();
    } catch (error) {
      trace.push((error as { code?: string }).code ?? String(error));
    }
  }
  return trace;
}

/** Runs `script` on a fresh cluster of each implementation, with the nodes of index `down` down at the start; returns both traces. */
async function sideBySide(
  ids: string[],
  options: PoolClusterOptions,
  down: number[],
  script: (cluster: AnyCluster) => Promise<Array<number | string>>,
): Promise<{ ours: unknown; theirs: unknown }> {
  const run = async (make: Make): Promise<unknown> => {
    await Promise.all(proxies.map((proxy, i) => (down.includes(i) ? proxy.down() : proxy.up())));
    const cluster = build(make, ids, options);
    const events = recordEvents(cluster as never);
    const served = await script(cluster);
    return { served, events };
  };
  return { ours: await run(ours), theirs: await run(theirs) };
}

const REFUSED = 'warn:ECONNREFUSED';

describe('the same behaviour as mysql2 (side by side)', () => {
  test('RR with a dead node: every checkout is served by a live node; the dead one is removed after 5 errors', async () => {
    const traces = await sideBySide(['dead', 'a', 'b'], {}, [0], (cluster) => checkouts(cluster, 12));
    expect(traces.ours).toEqual(traces.theirs);
    expect(traces.ours).toEqual({
      // The turn counts every pick, failed ones included, and carries on over the shorter list once 'dead' is gone.
      served: [1, 2, 1, 2, 1, 2, 1, 2, 2, 1, 2, 1],
      events: [REFUSED, REFUSED, REFUSED, REFUSED, 'remove:dead', REFUSED],
    });
  });

  test('ORDER with a dead first node: one checkout retries it until it is removed, then takes the next', async () => {
    const traces = await sideBySide(['dead', 'a'], { defaultSelector: 'ORDER' }, [0], (cluster) => checkouts(cluster, 3));
    expect(traces.ours).toEqual(traces.theirs);
    expect(traces.ours).toEqual({ served: [1, 1, 1], events: [REFUSED, REFUSED, REFUSED, REFUSED, 'remove:dead', REFUSED] });
  });

  test('canRetry: false: the node error is returned at once and counted; no warn', async () => {
    const traces = await sideBySide(['dead', 'a'], { canRetry: false, removeNodeErrorCount: 2 }, [0], (cluster) => checkouts(cluster, 5));
    expect(traces.ours).toEqual(traces.theirs);
    expect(traces.ours).toEqual({ served: ['ECONNREFUSED', 1, 'ECONNREFUSED', 1, 1], events: ['remove:dead'] });
  });

  test('every node dead: the checkout fails with the last node error once all are removed, then POOL_NOEXIST', async () => {
    const traces = await sideBySide(['d1', 'd2'], { removeNodeErrorCount: 2 }, [0, 1], (cluster) => checkouts(cluster, 2));
    expect(traces.ours).toEqual(traces.theirs);
    expect(traces.ours).toEqual({
      served: ['ECONNREFUSED', 'POOL_NOEXIST'],
      events: [REFUSED, REFUSED, 'remove:d1', REFUSED, 'remove:d2'],
    });
  });

  test('restoreNodeTimeout: offline, tried again once the time has passed (offline again while still down), online at the first success', async () => {
    const script = async (cluster: AnyCluster): Promise<Array<number | string>> => {
      const served = await checkouts(cluster, 1); // flaky fails, goes offline; 'a' serves
      const events = recordEvents(cluster as never);
      // Still down when its offline period ends: the first checkout after it takes it offline again.
      await waitUntil(async () => {
        await checkouts(cluster, 1);
        return events.includes('offline:flaky');
      });
      await proxies[0]!.up();
      await waitUntil(async () => (await checkouts(cluster, 1))[0] === 0); // its period passed again: served by flaky
      return [...served, ...(await checkouts(cluster, 2))];
    };
    const traces = await sideBySide(['flaky', 'a'], { restoreNodeTimeout: 300, removeNodeErrorCount: 1, defaultSelector: 'ORDER' }, [0], script);
    expect(traces.ours).toEqual(traces.theirs);
    expect(traces.ours).toEqual({
      served: [1, 0, 0],
      events: ['offline:flaky', REFUSED, 'offline:flaky', REFUSED, 'online:flaky'],
    });
  });

  test('successful checkouts pay errors back: a node failing now and then is never removed (canRetry: false)', async () => {
    const script = async (cluster: AnyCluster): Promise<Array<number | string>> => {
      const served: Array<number | string> = [];
      for (let round = 0; round < 4; round++) {
        await proxies[0]!.down();
        served.push(...(await checkouts(cluster, 1, 'flaky', 'RR', true))); // one error (with canRetry, a lone node would be retried at once)...
        await proxies[0]!.up();
        served.push(...(await checkouts(cluster, 2, 'flaky', 'RR', true))); // ...paid back
      }
      return served;
    };
    const traces = await sideBySide(['flaky', 'a'], { removeNodeErrorCount: 2, canRetry: false }, [], script);
    expect(traces.ours).toEqual(traces.theirs);
    expect(traces.ours).toEqual({ served: ['ECONNREFUSED', 0, 0, 'ECONNREFUSED', 0, 0, 'ECONNREFUSED', 0, 0, 'ECONNREFUSED', 0, 0], events: [] });
  });
});

describe('where we differ from mysql2, on purpose', () => {
  test('removeNodeErrorCount: 0 is honoured: the first failed checkout removes the node (mysql2 waits for 5)', async () => {
    await proxies[0]!.down();
    const cluster = build(ours, ['dead', 'a'], { removeNodeErrorCount: 0 });
    const events = recordEvents(cluster as never);
    expect(await checkouts(cluster, 3)).toEqual([1, 1, 1]);
    expect(events).toEqual(['remove:dead', REFUSED]);

    // Control: mysql2 reads `0 || 5`.
    const control = build(theirs, ['dead', 'a'], { removeNodeErrorCount: 0 });
    const controlEvents = recordEvents(control as never);
    await checkouts(control, 10);
    expect(controlEvents.indexOf('remove:dead')).toBe(4);
  });

  test('removeNodeErrorCount: 0 with restoreNodeTimeout: offline at the first failure', async () => {
    await proxies[0]!.down();
    const cluster = build(ours, ['dead', 'a'], { removeNodeErrorCount: 0, restoreNodeTimeout: 60_000 });
    const events = recordEvents(cluster as never);
    expect(await checkouts(cluster, 2)).toEqual([1, 1]);
    expect(events).toEqual(['offline:dead', REFUSED]);
  });

  test('POOL_NONEONLINE is a typed error with mysql2\'s code and message', async () => {
    await proxies[0]!.down();
    const cluster = build(ours, ['only'], { removeNodeErrorCount: 1, restoreNodeTimeout: 60_000 });
    expect(await checkouts(cluster, 1)).toEqual(['ECONNREFUSED']); // no node left online to retry on
    const error = await rejection(cluster.getConnection('only'));
    expect(error).toBeInstanceOf(PoolNoneOnlineError);
    expect(error).toMatchObject({ code: 'POOL_NONEONLINE', message: 'Pool does Not have online node.', pattern: 'only' });
    expect((await rejection(cluster.getConnection('other'))).code).toBe('POOL_NOEXIST');
  });

  test('a node removed while a checkout on it is under way: the checkout moves to another node, nothing is counted', async () => {
    const cluster = build(ours, ['a', 'b'], { defaultSelector: 'ORDER' });
    const events = recordEvents(cluster as never);
    const pending = cluster.getConnection(); // on 'a', still connecting
    (cluster as unknown as { remove(pattern: string): void }).remove('a');
    const conn = await pending;
    expect(servedBy(proxies, conn.threadId)).toBe(1);
    conn.release();
    expect(events).toEqual(['warn:ERR_POOL_CLOSED']);
  });

  test('a full node (waitForConnections: false) is busy, not sick: its error is returned, not counted, not retried', async () => {
    const cluster = createPoolCluster({ defaultSelector: 'ORDER', removeNodeErrorCount: 1 });
    opened.push(cluster as unknown as AnyCluster);
    cluster.add('busy', { uri: proxies[0]!.url, connectionLimit: 1, waitForConnections: false });
    cluster.add('a', { uri: proxies[1]!.url, connectionLimit: 1 });
    const events = recordEvents(cluster);
    const held = await cluster.getConnection();
    expect(servedBy(proxies, held.threadId)).toBe(0);
    for (let i = 0; i < 3; i++) expect((await rejection(cluster.getConnection())).code).toBe('ERR_NO_CONNECTIONS');
    expect(events).toEqual([]);
    expect(cluster.toJSON().nodes.map((node) => [node.id, node.state, node.errorCount])).toEqual([
      ['busy', 'online', 0],
      ['a', 'online', 0],
    ]);
    held.release();
  });

  test('a node that does not answer (no handshake within acquireTimeoutMs) is counted and failed over', async () => {
    const sockets = new Set<Socket>();
    const mute: Server = createServer((socket) => {
      sockets.add(socket); // accepted, never answered
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (mute.address() as { port: number }).port;
      const cluster = createPoolCluster({ defaultSelector: 'ORDER', removeNodeErrorCount: 1 });
      opened.push(cluster as unknown as AnyCluster);
      cluster.add('mute', { host: '127.0.0.1', port, user: 'root', acquireTimeoutMs: 200, connectTimeout: 20_000 });
      cluster.add('a', { uri: proxies[1]!.url, connectionLimit: 1 });
      const events = recordEvents(cluster);
      const conn = await cluster.getConnection();
      expect(servedBy(proxies, conn.threadId)).toBe(1);
      conn.release();
      expect(events).toEqual(['remove:mute', 'warn:ERR_ACQUIRE_TIMEOUT']);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    }
  });
});
