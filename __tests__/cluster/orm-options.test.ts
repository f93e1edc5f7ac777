/**
 * `createPoolCluster` with the options object TypeORM passes: TypeORM's MysqlDriver calls
 * `mysql.createPoolCluster(options.replication)` with its whole `replication` option (master,
 * slaves, canRetry, removeNodeErrorCount, restoreNodeTimeout, selector, defaultMode), then adds
 * the nodes itself (`add('SLAVE<i>', ...)`, `add('MASTER', ...)`) and takes slaves with
 * `getConnection('SLAVE*', cb)`. mysql2 ignores what it does not know, including `selector`
 * (it reads `defaultSelector`); we refused the lot as misspelt options (ERR_INVALID_OPTION on
 * `master`), so TypeORM's replication did not start. Now TypeORM's own keys are ignored and its
 * `selector` is the default selector, as TypeORM documents it; a misspelt option still throws.
 */
import type { RowDataPacket } from 'mysql2';
import { createPoolCluster } from '../../src/index';
import * as mysql from '../../src/mysql2';
import type { CallbackConnection } from '../../src/index';
import { servedBy, startNodeProxy, type NodeProxy } from './helpers';

let proxies: NodeProxy[] = [];

beforeAll(async () => {
  proxies = await Promise.all([0, 1, 2].map(() => startNodeProxy()));
});

afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

/** TypeORM's `replication` option, as it reaches createPoolCluster (node credentials are TypeORM's shape). */
function replication(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    master: { host: '127.0.0.1', port: proxies[0]!.port, username: 'root' },
    slaves: [{ host: '127.0.0.1', port: proxies[1]!.port }, { host: '127.0.0.1', port: proxies[2]!.port }],
    canRetry: true,
    removeNodeErrorCount: 3,
    restoreNodeTimeout: 1_000,
    defaultMode: 'slave',
    ...extra,
  };
}

function take(cluster: mysql.PoolCluster, pattern: string): Promise<CallbackConnection> {
  return new Promise((resolve, reject) => cluster.getConnection(pattern, (err, conn) => (err ? reject(err) : resolve(conn))));
}

test("TypeORM's whole replication option is accepted by both faces; TypeORM's own keys are ignored, its selector is the default selector", async () => {
  const promiseFace = createPoolCluster(replication({ selector: 'ORDER' }) as never);
  const callbackFace = mysql.createPoolCluster(replication({ selector: 'RANDOM' }) as never);
  expect(promiseFace.config).toEqual({ canRetry: true, removeNodeErrorCount: 3, restoreNodeTimeout: 1_000, defaultSelector: 'ORDER', clusterAware: 'auto' });
  expect(callbackFace.config.defaultSelector).toBe('RANDOM');
  expect(promiseFace.toJSON().nodes).toEqual([]); // the nodes are TypeORM's to add
  expect(createPoolCluster(replication() as never).config.defaultSelector).toBe('RR');
  expect(createPoolCluster({ selector: 'order', defaultSelector: 'RANDOM' }).config.defaultSelector).toBe('RANDOM'); // defaultSelector wins
  await promiseFace.end();
  await callbackFace.promise().end();
});

test('a bad selector and a misspelt option still throw ERR_INVALID_OPTION naming them', () => {
  expect(() => createPoolCluster(replication({ selector: 'FASTEST' }) as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'selector' }));
  expect(() => mysql.createPoolCluster(replication({ slave: [] }) as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'slave' }));
  expect(() => mysql.createPoolCluster(replication({ restoreNodeTimout: 1 }) as never)).toThrow(expect.objectContaining({ option: 'restoreNodeTimout' }));
});

test("TypeORM's flow: nodes added as TypeORM does, 'SLAVE*' picked by its selector (ORDER: always SLAVE0; RR: in turn), 'MASTER' exact", async () => {
  for (const [selector, expected] of [['ORDER', [1, 1, 1, 1]], ['RR', [1, 2, 1, 2]]] as const) {
    const cluster = mysql.createPoolCluster(replication({ selector }) as never);
    proxies.slice(1).forEach((proxy, i) => cluster.add(`SLAVE${i}`, { uri: proxy.url, connectionLimit: 1 }));
    cluster.add('MASTER', { uri: proxies[0]!.url, connectionLimit: 1 });
    const served: number[] = [];
    for (let i = 0; i < 4; i++) {
      const conn = await take(cluster, 'SLAVE*');
      const rows = await new Promise<RowDataPacket[]>((resolve, reject) => conn.query('SELECT CONNECTION_ID() AS id', (err, result) => (err ? reject(err) : resolve(result as RowDataPacket[]))));
      served.push(servedBy(proxies, Number(rows[0]!.id)));
      conn.release();
    }
    expect(served).toEqual(expected);
    const master = await take(cluster, 'MASTER');
    expect(servedBy(proxies, master.threadId)).toBe(0);
    master.release();
    await new Promise<void>((resolve, reject) => cluster.end((err) => (err ? reject(err) : resolve())));
  }
});
