/**
 * TypeORM 0.3.31 and 1.1.1 on rollback-pool: `new DataSource({ type: 'mariadb', driver: require('rollback-pool/mysql2'), ... })`.
 *
 * What TypeORM's MysqlDriver calls on its driver module (node_modules/typeorm/driver/mysql/MysqlDriver.js,
 * the same in typeorm03/, i.e. 0.3.31):
 * - loadDependencies: `this.mysql = options.driver`. 0.3.31 also tells mysql2 from mysql by `driver.version` or
 *   `driver.Connection.prototype.execute` (rollback-pool/mysql2 exports mysql2's own `Connection`: detected as
 *   mysql2, which decides how JSON columns are read), and console.warns whenever `driver` comes without
 *   `connectorPackage`; 1.x has no `connectorPackage` (mysql2 only) and no warning.
 * - connect: `createPool(createConnectionOptions(...))`: mysql2 options (some undefined), `connectionLimit` from
 *   `poolSize`, `acquireTimeout` when set, then `extra` spread over them; a first `pool.getConnection(cb)` +
 *   `connection.release()`. With `replication`: `createPoolCluster(options.replication)` (the whole option: master,
 *   slaves, selector, defaultMode...), then `add('SLAVE<i>', ...)` and `add('MASTER', ...)`.
 * - obtainMasterConnection / obtainSlaveConnection: `pool.getConnection(cb)`, or `poolCluster.getConnection('MASTER' |
 *   'SLAVE*', cb)`; then `connection.listeners('error')` and `connection.on('error', ...)`.
 * - MysqlQueryRunner: `connection.query(sql, params, cb)` (0.3.31) or `connection.promise().query(sql, params)` (1.1.1),
 *   `connection.query(sql, params).stream()`, and `connection.release()` at `queryRunner.release()`, with never a
 *   ROLLBACK, whatever state the transaction is in: the two leaks below.
 * - disconnect: `pool.end(cb)` / `poolCluster.end(cb)`.
 *
 * Entities are `EntitySchema`s (no decorators); the subscriber is registered by calling TypeORM's
 * `EventSubscriber()` decorator as a function, which is what `@EventSubscriber()` compiles to.
 */
import * as mysql2 from 'mysql2';
import type { RowDataPacket } from 'mysql2';
import * as typeorm1 from 'typeorm';
import type { DataSource, DataSourceOptions, EntityManager, EntitySchema } from 'typeorm';
import * as typeorm03 from 'typeorm03';
import { Pool } from '../../src';
import * as rollbackMysql2 from '../../src/mysql2';
import type { Pool as CallbackPool, PoolCluster as CallbackPoolCluster } from '../../src/mysql2';
import { isRowLocked, mysqlUrl, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent, waitUntil } from '../pool/helpers';
import { servedBy, startNodeProxy, type NodeProxy } from '../cluster/helpers';

type TypeOrm = typeof typeorm1;

/** Both TypeORM lines, under one API (0.3.31 is the npm alias `typeorm03`; what this file uses is the same in both). */
const VERSIONS: Array<[string, TypeOrm]> = [
  ['0.3.31', typeorm03 as unknown as TypeOrm],
  ['1.1.1', typeorm1],
];

interface Author {
  id: number;
  name: string;
  tags: string[] | null;
  posts?: Post[];
}
interface Post {
  id: number;
  title: string;
  author?: Author;
}
interface Item {
  id: number;
  owner: string;
  n: number;
}

/** A driver module: ours, or mysql2 itself for the controls. */
type DriverModule = typeof rollbackMysql2 | typeof mysql2;

describe.each(VERSIONS)('TypeORM %s', (version, orm) => {
  const is03 = version.startsWith('0.3');
  const T = uniqueTable(`typeorm_${version}_item`);
  const A = uniqueTable(`typeorm_${version}_author`);
  const P = uniqueTable(`typeorm_${version}_post`);
  const { side, committed } = ownerTable(T);

  const AuthorSchema = new orm.EntitySchema<Author>({
    name: 'Author',
    tableName: A,
    columns: {
      id: { type: Number, primary: true, generated: 'increment' },
      name: { type: String, length: 64 },
      tags: { type: 'json', nullable: true },
    },
    relations: { posts: { type: 'one-to-many', target: 'Post', inverseSide: 'author', cascade: true } },
  });
  const PostSchema = new orm.EntitySchema<Post>({
    name: 'Post',
    tableName: P,
    columns: {
      id: { type: Number, primary: true, generated: 'increment' },
      title: { type: String, length: 64 },
    },
    relations: { author: { type: 'many-to-one', target: 'Author', inverseSide: 'posts', joinColumn: { name: 'authorId' }, onDelete: 'CASCADE' } },
  });
  /** The file's owner table (made by ownerTable, never synchronized). */
  const ItemSchema = new orm.EntitySchema<Item>({
    name: 'Item',
    tableName: T,
    columns: { id: { type: 'int', primary: true }, owner: { type: 'varchar', length: 32 }, n: { type: 'int', default: 0 } },
  });
  const entities: EntitySchema[] = [AuthorSchema, PostSchema, ItemSchema] as EntitySchema[];

  afterAll(async () => {
    const conn = mysql2.createConnection({ uri: mysqlUrl() }).promise();
    await conn.query(`DROP TABLE IF EXISTS ${P}, ${A}`);
    await conn.end();
  });

  /** A DataSource on `driver` (ours unless told), the test server, one connection unless told; initialized. */
  async function dataSource(options: Record<string, unknown> = {}, driver: DriverModule = rollbackMysql2): Promise<DataSource> {
    const ds = new orm.DataSource({
      type: 'mariadb',
      driver,
      ...(is03 ? { connectorPackage: 'mysql2' } : {}),
      url: mysqlUrl(),
      entities,
      poolSize: 1,
      ...options,
    } as DataSourceOptions);
    await ds.initialize();
    return ds;
  }

  async function withDs<R>(fn: (ds: DataSource, pool: Pool) => Promise<R>, options: Record<string, unknown> = {}): Promise<R> {
    const ds = await dataSource(options);
    try {
      return await fn(ds, ourPool(ds));
    } finally {
      await ds.destroy();
    }
  }

  /** The pool TypeORM made: with our driver module, `createPool` returned our callback pool (`pool.promise()` is the Pool). */
  function ourPool(ds: DataSource): Pool {
    return (ds.driver as unknown as { pool: CallbackPool }).pool.promise();
  }

  async function threadIdOf(target: DataSource | EntityManager): Promise<number> {
    const rows = (await target.query('SELECT CONNECTION_ID() AS id')) as RowDataPacket[];
    return Number(rows[0]!.id);
  }

  describe('driver: rollback-pool/mysql2', () => {
    test("is all it takes: TypeORM's pool is ours; poolSize, acquireTimeout (one warning) and extra reach it; type 'mysql' too", async () => {
      const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
      try {
        for (const type of ['mariadb', 'mysql'] as const) {
          warn.mockClear();
          await withDs(
            async (ds, pool) => {
              expect(pool).toBeInstanceOf(Pool);
              expect(pool.options).toMatchObject({ connectionLimit: 3, acquireTimeoutMs: 2_500, rollbackTimeoutMs: 1_500, cleanup: 'checkout' });
              const legacy = warn.mock.calls.filter(([, options]) => (options as { code?: string } | undefined)?.code === 'ROLLBACK_POOL_LEGACY_OPTION');
              expect(legacy).toHaveLength(1);
              expect(String(legacy[0]![0])).toContain('acquireTimeout: used as acquireTimeoutMs');
              expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
              expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
            },
            { type, poolSize: 3, acquireTimeout: 2_500, extra: { rollbackTimeoutMs: 1_500, cleanup: 'checkout' } },
          );
        }
      } finally {
        warn.mockRestore();
      }
    });

    if (is03) {
      test('0.3: detected as mysql2 without connectorPackage (TypeORM still console.warns; connectorPackage: "mysql2" silences it)', async () => {
        const consoleWarn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
        try {
          const ds = new orm.DataSource({ type: 'mariadb', driver: rollbackMysql2, url: mysqlUrl(), entities, poolSize: 1 } as DataSourceOptions);
          await ds.initialize();
          const driver = ds.driver as unknown as { isUsingMysql2(): boolean };
          expect(driver.isUsingMysql2()).toBe(true);
          expect(consoleWarn).toHaveBeenCalledTimes(1);
          expect(String(consoleWarn.mock.calls[0]![0])).toContain('without specifying connectorPackage');
          await ds.destroy();
          consoleWarn.mockClear();
          const quiet = await dataSource(); // connectorPackage: 'mysql2'
          expect((quiet.driver as unknown as { isUsingMysql2(): boolean }).isUsingMysql2()).toBe(true);
          await quiet.destroy();
          expect(consoleWarn).not.toHaveBeenCalled();
        } finally {
          consoleWarn.mockRestore();
        }
      });
    }

    test('synchronize creates the tables; save (cascade) / find with relations / JSON / update / delete', async () => {
      await withDs(
        async (ds, pool) => {
          const [tables] = await side.query<RowDataPacket[]>('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?) ORDER BY 1', [A, P]);
          expect(tables.map((row) => row.t).sort()).toEqual([A, P].sort());
          const [fks] = await side.query<RowDataPacket[]>('SELECT REFERENCED_TABLE_NAME AS r FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL', [P]);
          expect(fks.map((row) => row.r)).toEqual([A]);

          const authors = ds.getRepository(AuthorSchema);
          const saved = await authors.save({ name: 'ada', tags: ['math', 'engines'], posts: [{ title: 'notes' }, { title: 'sketch' }] });
          expect(saved.id).toBeGreaterThan(0);
          const found = await authors.findOne({ where: { id: saved.id }, relations: { posts: true } });
          expect(found).toMatchObject({ name: 'ada', tags: ['math', 'engines'] });
          expect(found!.posts!.map((post) => post.title).sort()).toEqual(['notes', 'sketch']);
          const post = await ds.getRepository(PostSchema).findOne({ where: { title: 'notes' }, relations: { author: true } });
          expect(post!.author!.name).toBe('ada');

          await authors.update({ id: saved.id }, { name: 'ada l.' });
          expect((await authors.findOneByOrFail({ id: saved.id })).name).toBe('ada l.');
          await authors.delete({ id: saved.id });
          expect(await ds.getRepository(PostSchema).count()).toBe(0); // ON DELETE CASCADE
          expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
        },
        { entities: [AuthorSchema, PostSchema], synchronize: true, poolSize: 2 },
      );
    });

    test('query builder: insert, update, select (raw and entities), delete', async () => {
      await withDs(async (ds, pool) => {
        const qb = () => ds.getRepository(ItemSchema).createQueryBuilder('i');
        await qb().insert().values([{ id: 1, owner: 'qb', n: 2 }, { id: 2, owner: 'qb', n: 3 }, { id: 3, owner: 'qb', n: 4 }]).execute();
        await qb().update().set({ n: 10 }).where('id = :id', { id: 1 }).execute();
        await qb().delete().where('id = :id', { id: 3 }).execute();
        expect(await qb().select('SUM(i.n)', 'total').where('i.owner = :owner', { owner: 'qb' }).getRawOne()).toEqual({ total: '13' });
        expect(await qb().where('i.owner = :owner', { owner: 'qb' }).orderBy('i.id', 'DESC').getMany()).toEqual([
          { id: 2, owner: 'qb', n: 3 },
          { id: 1, owner: 'qb', n: 10 },
        ]);
        expect(await committed('qb')).toEqual([{ id: 1, n: 10 }, { id: 2, n: 3 }]);
        expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
      });
    });
  });

  describe('transactions', () => {
    test('ds.transaction commits on resolve (invisible to others until then, one connection) and rolls back on a throw (locks freed)', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (100, 'tx', 0)`);
      await withDs(async (ds, pool) => {
        const seen: unknown[] = [];
        const threads = await ds.transaction(async (m) => {
          const first = await threadIdOf(m);
          await m.insert(ItemSchema, { id: 101, owner: 'tx' });
          await m.update(ItemSchema, { id: 100 }, { n: 1 });
          seen.push(await committed('tx'), await isRowLocked(side, T, 100));
          return [first, await threadIdOf(m)];
        });
        expect(new Set(threads).size).toBe(1);
        expect(seen).toEqual([[{ id: 100, n: 0 }], true]);
        expect(await committed('tx')).toEqual([{ id: 100, n: 1 }, { id: 101, n: 0 }]);

        const boom = new Error('boom');
        await expect(
          ds.transaction(async (m) => {
            await m.update(ItemSchema, { id: 100 }, { n: 99 });
            await m.insert(ItemSchema, { id: 102, owner: 'tx' });
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await committed('tx')).toEqual([{ id: 100, n: 1 }, { id: 101, n: 0 }]);
        expect(await isRowLocked(side, T, 100)).toBe(false);
        // TypeORM's own ROLLBACK ran: nothing for the pool to clean up.
        expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0, rolledBack: 0 });
      });
    });

    test('nested manager.transaction: savepoints, the inner one undone alone', async () => {
      await withDs(async (ds, pool) => {
        await ds.transaction(async (outer) => {
          await outer.insert(ItemSchema, { id: 110, owner: 'nest' });
          await expect(
            outer.transaction(async (inner) => {
              await inner.insert(ItemSchema, { id: 111, owner: 'nest' });
              throw new Error('inner');
            }),
          ).rejects.toThrow('inner');
          await outer.transaction(async (inner) => {
            await inner.insert(ItemSchema, { id: 112, owner: 'nest' });
          });
          expect(await outer.count(ItemSchema, { where: { owner: 'nest' } })).toBe(2);
          expect(await committed('nest')).toEqual([]);
        });
        expect(await committed('nest')).toEqual([{ id: 110, n: 0 }, { id: 112, n: 0 }]);
        expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
      });
    });

    test('QueryRunner transactions: commit, rollback, a nested startTransaction rolled back to its savepoint', async () => {
      await withDs(async (ds, pool) => {
        const qr = ds.createQueryRunner();
        await qr.connect();
        await qr.startTransaction();
        await qr.manager.insert(ItemSchema, { id: 120, owner: 'qr' });
        expect(pool.stats().leased).toBe(1);
        await qr.commitTransaction();
        expect(await committed('qr')).toEqual([{ id: 120, n: 0 }]);

        await qr.startTransaction();
        await qr.manager.update(ItemSchema, { id: 120 }, { n: 5 });
        await qr.startTransaction(); // SAVEPOINT typeorm_1
        await qr.manager.insert(ItemSchema, { id: 121, owner: 'qr' });
        await qr.rollbackTransaction(); // ROLLBACK TO SAVEPOINT typeorm_1
        await qr.manager.insert(ItemSchema, { id: 122, owner: 'qr' });
        await qr.commitTransaction();
        expect(await committed('qr')).toEqual([{ id: 120, n: 5 }, { id: 122, n: 0 }]);

        await qr.startTransaction();
        await qr.manager.update(ItemSchema, { id: 120 }, { n: 6 });
        await qr.rollbackTransaction();
        await qr.release();
        expect(await committed('qr')).toEqual([{ id: 120, n: 5 }, { id: 122, n: 0 }]);
        expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
      });
    });

    test('isolation levels: ds.transaction(level, fn) and startTransaction(level) run at that level; the next transaction on the connection at the default', async () => {
      // Rows 140 (a lock probe), 141 (written and not committed by another connection), 142 (updated by the side mid-transaction).
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (140, 'iso', 0), (141, 'iso', 0), (142, 'iso', 0)`);
      const writer = mysql2.createConnection({ uri: mysqlUrl() }).promise();
      await writer.query('START TRANSACTION');
      await writer.query(`UPDATE ${T} SET n = 1 WHERE id = 141`);
      /** The level of the transaction open on `m`, from what it does: the server's INNODB_TRX view is a cache refreshed at most every 0.1 s. */
      const levelOf = async (m: EntityManager): Promise<string> => {
        await m.findOneByOrFail(ItemSchema, { id: 140 });
        if (await isRowLocked(side, T, 140)) return 'SERIALIZABLE'; // its plain SELECT took a shared lock
        if ((await m.findOneByOrFail(ItemSchema, { id: 141 })).n === 1) return 'READ UNCOMMITTED'; // a dirty read
        const before = (await m.findOneByOrFail(ItemSchema, { id: 142 })).n;
        await side.query(`UPDATE ${T} SET n = n + 1 WHERE id = 142`);
        return (await m.findOneByOrFail(ItemSchema, { id: 142 })).n === before ? 'REPEATABLE READ' : 'READ COMMITTED';
      };
      try {
        await withDs(async (ds, pool) => {
          const threadId = await threadIdOf(ds);
          expect(await ds.transaction('READ UNCOMMITTED', levelOf)).toBe('READ UNCOMMITTED');
          expect(await ds.transaction('SERIALIZABLE', levelOf)).toBe('SERIALIZABLE');
          const qr = ds.createQueryRunner();
          await qr.startTransaction('READ COMMITTED');
          expect(await levelOf(qr.manager)).toBe('READ COMMITTED');
          await qr.commitTransaction();
          await qr.release();
          expect(await ds.transaction(levelOf)).toBe('REPEATABLE READ');
          expect(await threadIdOf(ds)).toBe(threadId); // one connection throughout
          expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
        });
      } finally {
        await writer.end(); // its transaction dies with it
      }
    });

    test('50 concurrent transactions on a pool of 3: all commit, in turn on the locked row, never more than 3 connections', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (130, 'many', 0)`);
      await withDs(
        async (ds, pool) => {
          let mostLeased = 0;
          pool.on('acquire', () => (mostLeased = Math.max(mostLeased, pool.stats().leased)));
          const threads = new Set<number>();
          await Promise.all(
            Array.from({ length: 50 }, (_, i) =>
              ds.transaction(async (m) => {
                threads.add(await threadIdOf(m));
                const row = await m.findOneOrFail(ItemSchema, { where: { id: 130 }, lock: { mode: 'pessimistic_write' } });
                await m.update(ItemSchema, { id: 130 }, { n: row.n + 1 });
                await m.insert(ItemSchema, { id: 1_000 + i, owner: 'many-each' });
              }),
            ),
          );
          expect(await committed('many')).toEqual([{ id: 130, n: 50 }]);
          expect((await committed('many-each')).length).toBe(50);
          expect(mostLeased).toBeLessThanOrEqual(3);
          expect(threads.size).toBeLessThanOrEqual(3);
          expect(pool.stats()).toMatchObject({ total: 3, leased: 0, waiting: 0, abandoned: 0 });
        },
        { poolSize: 3 },
      );
    });
  });

  test('streaming: a query builder stream() reads rows one by one on a lease; the connection goes back when it ends', async () => {
    const rows = Array.from({ length: 500 }, (_, i) => [10_000 + i, 'stream', i]);
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES ?`, [rows]);
    await withDs(async (ds, pool) => {
      const stream = await ds.getRepository(ItemSchema).createQueryBuilder('i').where('i.owner = :owner', { owner: 'stream' }).orderBy('i.id').stream();
      let count = 0;
      let sum = 0;
      let leasedWhileStreaming = -1;
      for await (const row of stream as AsyncIterable<{ i_n: number }>) {
        if (count === 0) leasedWhileStreaming = pool.stats().leased;
        sum += row.i_n;
        count++;
      }
      expect(count).toBe(500);
      expect(sum).toBe((499 * 500) / 2);
      expect(leasedWhileStreaming).toBe(1);
      await waitUntil(() => pool.stats().leased === 0, 5_000); // TypeORM releases its QueryRunner on the stream's `end`
      expect(await ds.getRepository(ItemSchema).countBy({ owner: 'stream' })).toBe(500);
      expect(pool.stats()).toMatchObject({ abandoned: 0 });
    });
  });

  /**
   * The two ways TypeORM gives a connection back inside a transaction, then what the connection's next
   * users see: is the row still locked (from another connection)? does the next `insert` (no transaction
   * of its own) commit? does the next `save` (its own START TRANSACTION, which implicitly COMMITs whatever
   * is open) commit the abandoned write, a ghost commit?
   */
  describe('transactions TypeORM gives up on', () => {
    interface Leftover {
      sameConnection: boolean;
      lockedAfterRelease: boolean;
      nextInsertVisible: boolean;
      ghostCommit: boolean;
    }

    async function afterwards(ds: DataSource, id: number, owner: string, abandonedThread: number, settled: Promise<unknown>): Promise<Leftover> {
      await settled;
      const lockedAfterRelease = await isRowLocked(side, T, id);
      const sameConnection = (await threadIdOf(ds)) === abandonedThread;
      await ds.getRepository(ItemSchema).insert({ id: id + 1, owner: `${owner}-next` });
      const nextInsertVisible = (await committed(`${owner}-next`)).length === 1;
      await ds.getRepository(ItemSchema).save({ id: id + 2, owner: `${owner}-next`, n: 0 });
      const ghostCommit = (await committed(owner))[0]?.n === 1;
      return { sameConnection, lockedAfterRelease, nextInsertVisible, ghostCommit };
    }

    const LEAKED: Leftover = { sameConnection: true, lockedAfterRelease: true, nextInsertVisible: false, ghostCommit: true };
    const FIXED: Leftover = { sameConnection: true, lockedAfterRelease: false, nextInsertVisible: true, ghostCommit: false };

    /** (1) A QueryRunner that starts a transaction, writes, hits an error and is released without rollbackTransaction(). */
    async function releasedQueryRunner(driver: DriverModule, id: number, owner: string): Promise<Leftover> {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (?, ?, 0)`, [id, owner]);
      const ds = await dataSource({}, driver);
      try {
        const settled = driver === rollbackMysql2 ? nextEvent(ourPool(ds), 'rollback') : Promise.resolve();
        const qr = ds.createQueryRunner();
        await qr.connect();
        const threadId = await threadIdOf(qr.manager);
        await qr.startTransaction();
        await qr.manager.update(ItemSchema, { id }, { n: 1 });
        const failure = await qr.manager.insert(ItemSchema, { id, owner }).then(
          () => undefined,
          (error: unknown) => error,
        ); // a duplicate key: the statement fails, the transaction stays open
        expect(failure).toBeInstanceOf(orm.QueryFailedError);
        await qr.release(); // the error path forgot rollbackTransaction()
        return await afterwards(ds, id, owner, threadId, settled);
      } finally {
        await ds.destroy();
      }
    }

    /** (2) ds.transaction() whose callback throws while a `beforeTransactionRollback` subscriber throws too. */
    async function throwingSubscriber(driver: DriverModule, id: number, owner: string): Promise<Leftover> {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (?, ?, 0)`, [id, owner]);
      class AuditSubscriber {
        beforeTransactionRollback(): void {
          throw new Error('audit log unavailable');
        }
      }
      orm.EventSubscriber()(AuditSubscriber); // what @EventSubscriber() does
      const ds = await dataSource({ subscribers: [AuditSubscriber] }, driver);
      try {
        const settled = driver === rollbackMysql2 ? nextEvent(ourPool(ds), 'rollback') : Promise.resolve();
        let threadId = 0;
        const boom = new Error('business rule');
        await expect(
          ds.transaction(async (m) => {
            threadId = await threadIdOf(m);
            await m.update(ItemSchema, { id }, { n: 1 });
            throw boom;
          }),
        ).rejects.toBe(boom); // TypeORM swallowed the subscriber's error, skipped its ROLLBACK, released the connection
        return await afterwards(ds, id, owner, threadId, settled);
      } finally {
        await ds.destroy();
      }
    }

    test('control, mysql2: a QueryRunner released without rollbackTransaction() leaks its transaction to the next users', async () => {
      expect(await releasedQueryRunner(mysql2, 200, 'qr-ctl')).toEqual(LEAKED);
    });

    test('ours: the QueryRunner released without rollbackTransaction() is rolled back before the connection serves anyone else', async () => {
      expect(await releasedQueryRunner(rollbackMysql2, 210, 'qr-fix')).toEqual(FIXED);
      expect(await committed('qr-fix')).toEqual([{ id: 210, n: 0 }]);
      expect(await committed('qr-fix-next')).toEqual([{ id: 211, n: 0 }, { id: 212, n: 0 }]);
    });

    test('control, mysql2: ds.transaction() with a throwing beforeTransactionRollback subscriber leaks its transaction', async () => {
      expect(await throwingSubscriber(mysql2, 220, 'sub-ctl')).toEqual(LEAKED);
    });

    test('ours: ds.transaction() with a throwing beforeTransactionRollback subscriber is rolled back at release', async () => {
      expect(await throwingSubscriber(rollbackMysql2, 230, 'sub-fix')).toEqual(FIXED);
      expect(await committed('sub-fix')).toEqual([{ id: 230, n: 0 }]);
    });
  });

  describe('replication: TypeORM on our createPoolCluster', () => {
    let proxies: NodeProxy[] = [];
    beforeAll(async () => {
      proxies = await Promise.all([0, 1].map(() => startNodeProxy()));
    });
    afterAll(async () => {
      await Promise.all(proxies.map((proxy) => proxy.close()));
    });

    /** master through proxy 0, one slave through proxy 1 (the same server: the proxy says which node made a connection). */
    async function replicated<R>(fn: (ds: DataSource, cluster: CallbackPoolCluster) => Promise<R>): Promise<R> {
      const ds = await dataSource({
        url: undefined,
        replication: { master: { url: proxies[0]!.url }, slaves: [{ url: proxies[1]!.url }], selector: 'RR', restoreNodeTimeout: 1_000 },
      });
      try {
        return await fn(ds, (ds.driver as unknown as { poolCluster: CallbackPoolCluster }).poolCluster);
      } finally {
        await ds.destroy();
      }
    }

    function nodeStats(cluster: CallbackPoolCluster, id: string) {
      return cluster.promise().toJSON().nodes.find((node) => node.id === id)!.pool.stats;
    }

    test('the cluster is ours (TypeORM\'s whole replication option accepted); reads go to the slave, writes and transactions to the master', async () => {
      await replicated(async (ds, cluster) => {
        expect(cluster).toBeInstanceOf(rollbackMysql2.PoolCluster);
        expect(cluster.promise().toJSON().nodes.map((node) => node.id).sort()).toEqual(['MASTER', 'SLAVE0']);
        const reader = ds.createQueryRunner('slave');
        expect(servedBy(proxies, await threadIdOf(reader.manager))).toBe(1);
        await reader.release();
        const raw = await ds.getRepository(ItemSchema).createQueryBuilder('i').select('CONNECTION_ID()', 'id').limit(1).getRawOne<{ id: number }>();
        expect(servedBy(proxies, Number(raw!.id))).toBe(1); // a query builder SELECT: TypeORM's defaultMode 'slave'
        expect(servedBy(proxies, await ds.transaction((m) => threadIdOf(m)))).toBe(0);
        const writer = ds.createQueryRunner('master');
        expect(servedBy(proxies, await threadIdOf(writer.manager))).toBe(0);
        await writer.release();
      });
    });

    test('an abandoned master transaction (QueryRunner released without rollback) is rolled back by the MASTER node\'s pool', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (300, 'repl', 0)`);
      await replicated(async (ds, cluster) => {
        const qr = ds.createQueryRunner('master');
        await qr.startTransaction();
        await qr.manager.update(ItemSchema, { id: 300 }, { n: 1 });
        expect(servedBy(proxies, await threadIdOf(qr.manager))).toBe(0);
        expect(await isRowLocked(side, T, 300)).toBe(true);
        await qr.release();
        await waitUntil(() => nodeStats(cluster, 'MASTER').rolledBack === 1, 5_000);
        expect(await isRowLocked(side, T, 300)).toBe(false);
        await ds.getRepository(ItemSchema).save({ id: 301, owner: 'repl-next', n: 0 }); // the next START TRANSACTION commits nothing of it
        expect(await committed('repl')).toEqual([{ id: 300, n: 0 }]);
        expect(nodeStats(cluster, 'MASTER')).toMatchObject({ abandoned: 1, rolledBack: 1, leased: 0 });
        expect(nodeStats(cluster, 'SLAVE0')).toMatchObject({ abandoned: 0 });
      });
    });
  });
});
