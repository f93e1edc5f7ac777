/**
 * Each node is a rollback-pool Pool: a transaction abandoned on a cluster
 * lease is rolled back, whichever node it ran on, before that connection
 * serves anyone else (its row lock is free from a side connection and its
 * writes are not visible). And rollback-pool's own transaction API on the
 * cluster and its namespaces: `begin`, `transaction` (failover only until
 * the callback starts), `withScope` (every call inside goes to the scope's node).
 */
import type { Connection } from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2';
import { createPoolCluster, type PoolCluster, type PoolConnection } from '../../src/index';
import { rejection } from '../support/async';
import { isRowLocked, sideConnection, uniqueTable } from '../support/db';
import { recordEvents, servedBy, startNodeProxy, waitUntil, type NodeProxy } from './helpers';

const table = uniqueTable('cluster_tx');
let side: Connection;
let proxies: NodeProxy[] = [];
let cluster: PoolCluster;

beforeAll(async () => {
  side = await sideConnection();
  await side.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  proxies = await Promise.all([0, 1].map(() => startNodeProxy()));
});

afterAll(async () => {
  await side.query(`DROP TABLE IF EXISTS ${table}`);
  await side.end();
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

beforeEach(async () => {
  await side.query(`DELETE FROM ${table}`);
  await side.query(`INSERT INTO ${table} VALUES (1, 0), (2, 0)`);
  cluster = createPoolCluster();
  cluster.add('a', { uri: proxies[0]!.url, connectionLimit: 2 });
  cluster.add('b', { uri: proxies[1]!.url, connectionLimit: 2 });
});

afterEach(async () => {
  await cluster.end();
});

async function committedRows(): Promise<Array<[number, number]>> {
  const [rows] = await side.query<RowDataPacket[]>(`SELECT id, v FROM ${table} ORDER BY id`);
  return rows.map((row) => [Number(row.id), Number(row.v)]);
}

async function threadOf(conn: { query(sql: string): Promise<[unknown, unknown]> }): Promise<number> {
  const [rows] = await conn.query('SELECT CONNECTION_ID() AS id');
  return Number((rows as RowDataPacket[])[0]!.id);
}

describe('an abandoned transaction on a cluster lease', () => {
  test('is rolled back on whichever node it ran: lock free, writes gone, the connection clean for the next user', async () => {
    const nodesSeen: number[] = [];
    for (const node of [0, 1]) {
      const conn = await cluster.getConnection(); // RR: node a, then node b
      nodesSeen.push(servedBy(proxies, conn.threadId));
      await conn.beginTransaction();
      await conn.query(`UPDATE ${table} SET v = 99 WHERE id = 1`);
      await conn.query(`INSERT INTO ${table} VALUES (${10 + node}, 1)`);
      expect(await isRowLocked(side, table, 1)).toBe(true);
      conn.release(); // forgotten commit

      await waitUntil(async () => !(await isRowLocked(side, table, 1)));
      expect(await committedRows()).toEqual([
        [1, 0],
        [2, 0],
      ]);
      // The same connection serves the next user of that node, outside any transaction.
      const next = await cluster.getConnection(['a', 'b'][node]!);
      expect(next.threadId).toBe(conn.threadId);
      const [[state]] = await next.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
      expect(state!.t).toBe(0);
      next.release();
    }
    expect(nodesSeen).toEqual([0, 1]);
    const stats = cluster.toJSON().nodes.map((node) => [node.id, node.pool.stats.abandoned, node.pool.stats.rolledBack]);
    expect(stats).toEqual([
      ['a', 1, 1],
      ['b', 1, 1],
    ]);
  });

  test('a raw START TRANSACTION through a namespace lease, and a disposed begin() handle, are rolled back too', async () => {
    {
      using conn = await cluster.of('b').getConnection();
      await conn.query('START TRANSACTION');
      await conn.query(`UPDATE ${table} SET v = 7 WHERE id = 2`);
    } // released at the end of the block, inside the transaction
    await waitUntil(async () => !(await isRowLocked(side, table, 2)));
    {
      using tx = await cluster.of('a').begin();
      await tx.execute(`UPDATE ${table} SET v = 8 WHERE id = 2`);
      expect(await isRowLocked(side, table, 2)).toBe(true);
    } // abandoned: never committed
    await waitUntil(async () => !(await isRowLocked(side, table, 2)));
    expect(await committedRows()).toEqual([
      [1, 0],
      [2, 0],
    ]);
  });
});

describe('begin() and transaction()', () => {
  test('begin() gives a handle on a picked node; commit() commits and gives the connection back', async () => {
    const tx = await cluster.begin({ isolationLevel: 'READ COMMITTED' });
    await tx.execute(`UPDATE ${table} SET v = 5 WHERE id = 1`);
    await tx.commit();
    expect(await committedRows()).toEqual([
      [1, 5],
      [2, 0],
    ]);
    expect(cluster.toJSON().nodes.map((node) => node.pool.stats.leased)).toEqual([0, 0]);
    expect((await rejection(cluster.begin({ isolationLevel: 'CHAOS' as never }))).code).toBe('ERR_INVALID_OPTION');
    expect(cluster.toJSON().nodes.map((node) => node.errorCount)).toEqual([0, 0]); // bad options are not the node's fault
  });

  test('transaction() commits when fn resolves and rolls back when it throws, on the namespace\'s node', async () => {
    const threads = await cluster.of('b').transaction(async (tx) => {
      await tx.execute(`UPDATE ${table} SET v = 1 WHERE id = 1`);
      return threadOf(tx);
    });
    expect(servedBy(proxies, threads)).toBe(1);
    const failure = await rejection(
      cluster.of('a').transaction(async (tx) => {
        await tx.execute(`UPDATE ${table} SET v = 2 WHERE id = 2`);
        throw new Error('changed my mind');
      }),
    );
    expect(failure.message).toBe('changed my mind');
    expect(await committedRows()).toEqual([
      [1, 1],
      [2, 0],
    ]);
  });

  test('transaction() fails over while the connection is being taken, and never once fn has started', async () => {
    const failover = createPoolCluster({ removeNodeErrorCount: 10 }); // RR: 'down', then 'up', in turn
    try {
      const events = recordEvents(failover);
      await proxies[0]!.down();
      failover.add('down', { uri: proxies[0]!.url, connectionLimit: 1 });
      failover.add('up', { uri: proxies[1]!.url, connectionLimit: 1 });

      let calls = 0;
      const thread = await failover.transaction(async (tx) => {
        calls++;
        await tx.execute(`UPDATE ${table} SET v = 3 WHERE id = 1`);
        return threadOf(tx);
      });
      expect(calls).toBe(1);
      expect(servedBy(proxies, thread)).toBe(1);
      expect(events).toEqual(['warn:ECONNREFUSED']);

      // An error from fn, even one that looks like a connection error, is fn's: not retried, not counted.
      const errorsBefore = failover.toJSON().nodes.map((node) => node.errorCount);
      calls = 0;
      const thrown = Object.assign(new Error('connect ECONNREFUSED (from the callback)'), { code: 'ECONNREFUSED' });
      const error = await rejection(
        failover.of('up').transaction(async () => {
          calls++;
          throw thrown;
        }),
      );
      expect(error).toBe(thrown);
      expect(calls).toBe(1);
      expect(failover.toJSON().nodes.map((node) => node.errorCount)).toEqual(errorsBefore);
      expect(events).toEqual(['warn:ECONNREFUSED']);

      // begin() fails over the same way.
      const tx = await failover.begin();
      expect(servedBy(proxies, await threadOf(tx))).toBe(1);
      await tx.rollback();
      expect(events).toEqual(['warn:ECONNREFUSED', 'warn:ECONNREFUSED']);
    } finally {
      await failover.end();
      await proxies[0]!.up();
    }
    expect(await committedRows()).toEqual([
      [1, 3],
      [2, 0],
    ]);
  });

  test('a transaction stopped by the caller\'s signal before fn ran is not the node\'s failure', async () => {
    const events = recordEvents(cluster);
    const controller = new AbortController();
    const reason = new Error('client went away');
    controller.abort(reason);
    let ran = false;
    const error = await rejection(
      cluster.transaction(async () => {
        ran = true;
      }, { signal: controller.signal }),
    );
    expect(error).toBe(reason);
    expect(ran).toBe(false);
    expect(events).toEqual([]);
    expect(cluster.toJSON().nodes.map((node) => node.errorCount)).toEqual([0, 0]);
  });

  test('a statement error through query()/execute() is the caller\'s: not retried, not counted, stack from the caller', async () => {
    // Called from a plain (not async) function: only a stack captured at the call shows it, as mysql2/promise does.
    function queryFromHere(): Promise<unknown> {
      return cluster.of('a').query('SELECT * FROM no_such_table_in_cluster_tests');
    }
    const error = await rejection(queryFromHere());
    expect(error.code).toBe('ER_NO_SUCH_TABLE');
    expect(error.stack).toContain('queryFromHere');
    expect(cluster.toJSON().nodes.map((node) => [node.errorCount, node.pool.stats.leased])).toEqual([
      [0, 0],
      [0, 0],
    ]);
    const [rows] = await cluster.execute<RowDataPacket[]>(`SELECT v FROM ${table} WHERE id = ?`, [2]);
    expect(rows).toEqual([{ v: 0 }]);
  });
});

describe('withScope()', () => {
  test('every call inside goes to the scope\'s node and its transaction; committed when fn resolves', async () => {
    const shared: number[] = [];
    let taken: PoolConnection | undefined;
    await cluster.withScope(async () => {
      shared.push(await threadOf(cluster)); // cluster.query: the scope's shared connection
      await cluster.query(`UPDATE ${table} SET v = 11 WHERE id = 1`);
      await cluster.of('*').execute(`UPDATE ${table} SET v = 12 WHERE id = 2`);
      shared.push(await threadOf(cluster.of('*', 'RANDOM')));
      const [[state]] = await cluster.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
      expect(state!.t).toBe(1);
      expect(await isRowLocked(side, table, 1)).toBe(true); // not committed yet
      taken = await cluster.getConnection(); // a connection of its own in the scope, on the same node
      const [[own]] = await taken.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
      expect(own!.t).toBe(1);
      taken.release();
      // A nested withScope joins the open one.
      await cluster.withScope(async () => {
        shared.push(await threadOf(cluster));
      });
    });
    expect(new Set(shared).size).toBe(1);
    expect(servedBy(proxies, taken!.threadId)).toBe(servedBy(proxies, shared[0]!));
    expect(await committedRows()).toEqual([
      [1, 11],
      [2, 12],
    ]);
  });

  test('rolled back when fn throws, whatever node it picked', async () => {
    const nodes: number[] = [];
    for (let round = 0; round < 2; round++) {
      const error = await rejection(
        cluster.withScope(async () => {
          nodes.push(servedBy(proxies, await threadOf(cluster)));
          await cluster.query(`UPDATE ${table} SET v = 21 WHERE id = 1`);
          const conn = await cluster.getConnection(); // a second connection of the scope, same node
          await conn.execute(`INSERT INTO ${table} VALUES (30, 1)`);
          conn.release(); // stays in the scope's transaction
          throw new Error('request failed');
        }),
      );
      expect(error.message).toBe('request failed');
    }
    expect(nodes).toEqual([0, 1]); // the scope's node is picked by the selector, RR here
    expect(await committedRows()).toEqual([
      [1, 0],
      [2, 0],
    ]);
  });

  test('a namespace that does not cover the scope\'s node runs outside the scope, on its own node', async () => {
    await cluster.of('a').withScope(async () => {
      await cluster.query(`UPDATE ${table} SET v = 31 WHERE id = 1`); // '*' covers a: in the scope
      const [[outside]] = await cluster.of('b').query<RowDataPacket[]>('SELECT @@in_transaction AS t, CONNECTION_ID() AS id');
      expect(outside!.t).toBe(0);
      expect(servedBy(proxies, Number(outside!.id))).toBe(1);
      expect(await isRowLocked(side, table, 1)).toBe(true);
    });
    expect(await committedRows()).toEqual([
      [1, 31],
      [2, 0],
    ]);
  });
});
