/**
 * Sequelize v6 (dialect `mysql`) on our pools: `useRollbackPool(sequelize, options?)`
 * (src/sequelize/index.ts), on the two ends of the supported range, 6.37.8 (`sequelize`)
 * and 6.21.0 (`sequelize-6.21`, an npm alias); the files the adapter replaces or reads are
 * identical in between (src/sequelize/internals.ts).
 *
 * Sequelize pools standalone mysql2 connections itself (sequelize-pool: lib/dialects/abstract/
 * connection-manager.js). useRollbackPool replaces that connection manager's pool and the
 * methods that use it (getConnection, releaseConnection, destroyConnection, close...): a
 * checkout is a lease of our Pool and Sequelize holds its callback face `lease.connection`,
 * on which lib/dialects/mysql/query.js calls `connection.query({ sql }, cb).setMaxListeners(100)`
 * and, with bind parameters, `connection.execute(sql, values, cb).setMaxListeners(100)`.
 *
 * The two leaks: (1) an unmanaged `sequelize.transaction()` whose error path forgets
 * `t.rollback()` (sequelize#10858): Sequelize's own pool keeps the connection borrowed forever
 * (it is only given back by commit/rollback), so with `pool.max` such transactions every later
 * query fails with SequelizeConnectionAcquireTimeoutError, and the row locks stay. On ours the
 * connection is a lease nobody holds once the Transaction object is dropped: the pool's
 * lost-lease safety net (a FinalizationRegistry) rolls it back when it is garbage collected,
 * and `transactionTimeoutMs` bounds it by time. (2) A raw `sequelize.query('START
 * TRANSACTION')`: Sequelize gives the connection back with the transaction open and the next
 * user joins it; ours rolls it back at release.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as latest from 'sequelize';
import * as oldest from 'sequelize-6.21';
import { QueryTypes, type Model, type ModelStatic, type Options, type Sequelize as SequelizeInstance, type Transaction } from 'sequelize';
import type { RowDataPacket } from 'mysql2/promise';
import type { AbandonEvent } from '../../src';
import { SUPPORTED_SEQUELIZE_VERSIONS, useRollbackPool, type SequelizePoolOptions, type SequelizeRollbackPools } from '../../src/sequelize';
import { isRowLocked, mysqlUrl, threadAlive, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent, waitUntil } from '../pool/helpers';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

type SequelizeModule = typeof latest;
const VERSIONS: Array<[string, SequelizeModule]> = [
  ['6.37.8', latest],
  ['6.21.0', oldest as unknown as SequelizeModule],
];

interface ItemAttributes {
  id: number;
  owner: string;
  n: number;
}
type Item = Model<ItemAttributes, ItemAttributes>;

/** The owner table of this version's tests, as a Sequelize model. */
function defineItem(db: SequelizeInstance, table: string, S: SequelizeModule): ModelStatic<Item> {
  const { DataTypes } = S;
  return db.define<Item>(
    'Item',
    { id: { type: DataTypes.INTEGER, primaryKey: true }, owner: { type: DataTypes.STRING(32), allowNull: false }, n: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 } },
    { tableName: table, timestamps: false },
  );
}

/** The first row of a SELECT, as a plain object (in `transaction` if given). */
function one<R extends object>(db: SequelizeInstance, sql: string, transaction?: Transaction, options: { bind?: unknown[] | Record<string, unknown>; replacements?: unknown[] } = {}): Promise<R | null> {
  return db.query<R>(sql, { ...options, plain: true, raw: true, transaction: transaction ?? null, type: QueryTypes.SELECT });
}

async function threadIdOf(db: SequelizeInstance, transaction?: Transaction): Promise<number> {
  return Number((await one<{ id: number }>(db, 'SELECT CONNECTION_ID() AS id', transaction))?.id);
}

describe.each(VERSIONS)('Sequelize %s', (version, S) => {
  const T = uniqueTable(`seq_${version}`);
  const extraTables: string[] = [];
  // Registered before ownerTable's hooks: jest runs afterAll hooks in reverse order, so this runs before the side connection ends.
  afterAll(async () => {
    for (const table of extraTables) await side.query(`DROP TABLE IF EXISTS ${table}`);
  });
  const { side, committed } = ownerTable(T);

  test('is the version under test, inside the supported range', () => {
    expect((S.Sequelize as unknown as { version: string }).version).toBe(version);
    expect(SUPPORTED_SEQUELIZE_VERSIONS).toBe('>=6.21.0 <6.38.0');
  });

  function newSequelize(options: Options = {}): SequelizeInstance {
    return new S.Sequelize(mysqlUrl(), { dialect: 'mysql', logging: false, ...options, pool: { max: 1, ...options.pool } });
  }

  /**
   * Sequelize on our pools (`useRollbackPool`), closed after `fn`. Every test checks that
   * Sequelize's checkouts were leases of our pools, and `close()` ends them.
   */
  async function withOurs<R>(fn: (db: SequelizeInstance, pools: SequelizeRollbackPools, Items: ModelStatic<Item>) => Promise<R>, options: Options = {}, ours: SequelizePoolOptions = {}): Promise<R> {
    const db = newSequelize(options);
    const pools = useRollbackPool(db, ours);
    let acquired = 0;
    for (const pool of [pools.pool, ...pools.readPools]) pool.on('acquire', () => acquired++);
    try {
      const result = await fn(db, pools, defineItem(db, T, S));
      expect(acquired).toBeGreaterThan(0);
      return result;
    } finally {
      await db.close();
      for (const pool of [pools.pool, ...pools.readPools]) expect(pool.closed).toBe(true);
    }
  }

  describe('useRollbackPool(sequelize): Sequelize on leases of our pool', () => {
    test('sync, create with include, findAll with include (associations), JSON, DATE, BIGINT', async () => {
      const authors = uniqueTable('seq_author');
      const books = uniqueTable('seq_book');
      extraTables.push(books, authors);
      await withOurs(async (db, pools) => {
        const { DataTypes } = S;
        const Author = db.define('Author', { name: DataTypes.STRING }, { tableName: authors });
        const Book = db.define('Book', { title: DataTypes.STRING, meta: DataTypes.JSON, published: DataTypes.DATE, copies: DataTypes.BIGINT }, { tableName: books });
        Author.hasMany(Book, { as: 'books', foreignKey: 'authorId' });
        Book.belongsTo(Author, { as: 'author', foreignKey: 'authorId' });
        await db.sync();
        const [tables] = await side.query<RowDataPacket[]>('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?) ORDER BY 1', [authors, books]);
        expect(tables.map((row) => row.t)).toEqual([authors, books].sort());

        const published = new Date('2024-01-02T03:04:05.000Z');
        await Author.create(
          {
            name: 'Ada',
            books: [
              { title: 'Notes', meta: { tags: ['engine', 'loom'], pages: 3 }, published, copies: '9007199254740993' },
              { title: 'Letters', meta: null, published, copies: 5 },
            ],
          },
          { include: [{ model: Book, as: 'books' }] },
        );
        const found = await Author.findAll({ include: [{ model: Book, as: 'books' }], order: [[{ model: Book, as: 'books' }, 'title', 'ASC']] });
        expect(found).toHaveLength(1);
        const json = found[0]!.toJSON() as { name: string; books: Array<{ title: string; meta: unknown; published: Date; copies: unknown }> };
        expect(json.name).toBe('Ada');
        expect(json.books.map((b) => [b.title, b.meta, b.published.toISOString(), b.copies])).toEqual([
          ['Letters', null, published.toISOString(), 5], // a BIGINT that fits a double is a number...
          ['Notes', { tags: ['engine', 'loom'], pages: 3 }, published.toISOString(), '9007199254740993'], // ...one that does not, a string (supportBigNumbers)
        ]);
        const withAuthor = await Book.findOne({ where: { title: 'Notes' }, include: [{ model: Author, as: 'author' }] });
        expect((withAuthor?.get('author') as Model | undefined)?.get('name')).toBe('Ada');
        // JSON paths in a where clause, and the rows committed for everyone.
        expect(await Book.count({ where: { 'meta.pages': 3 } })).toBe(1);
        const [stored] = await side.query<RowDataPacket[]>(`SELECT title, CAST(copies AS CHAR) AS copies FROM ${books} ORDER BY title`);
        expect(stored).toEqual([{ title: 'Letters', copies: '5' }, { title: 'Notes', copies: '9007199254740993' }]);
        expect(pools.pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
        await Book.drop();
        await Author.drop();
      });
    });

    test("Sequelize's connection settings are kept: SET time_zone, its typeCast, flags -FOUND_ROWS, dialectOptions, pool.max/acquire/idle; ours through options", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (1, 'settings', 0)`);
      const options: Options = { timezone: '+05:30', dialectOptions: { multipleStatements: true }, pool: { max: 3, acquire: 1234, idle: 4321 } };
      /** What a user of these settings sees; the same on Sequelize's own pool and on ours. */
      async function probe(db: SequelizeInstance): Promise<unknown> {
        const Items = defineItem(db, T, S);
        const session = await one(db, 'SELECT @@session.time_zone AS tz');
        // Sequelize's typeCast: a DATE column is a 'YYYY-MM-DD' string (mysql2's own would give a Date),
        // a DATETIME is read in the session's time zone.
        const dates = await one(db, 'SELECT CAST(? AS DATE) AS d, CAST(? AS DATETIME) AS dt', undefined, { replacements: ['2024-01-02', '2024-01-02 08:34:05'] });
        // -FOUND_ROWS: an UPDATE that changes nothing reports 0 affected rows (mysql2's default flags say 1).
        const [unchanged] = await Items.update({ n: 0 }, { where: { id: 1 } });
        const multiple = await db.query('SELECT 1 AS a; SELECT 2 AS b', { raw: true });
        return { session, dates, unchanged, multiple: JSON.parse(JSON.stringify(multiple[0])) };
      }
      const own = newSequelize(options);
      let expected: unknown;
      try {
        expected = await probe(own);
      } finally {
        await own.close();
      }
      expect(expected).toMatchObject({
        session: { tz: '+05:30' },
        dates: { d: '2024-01-02', dt: new Date('2024-01-02T03:04:05.000Z') },
        unchanged: 0,
        multiple: [[{ a: 1 }], [{ b: 2 }]],
      });
      await withOurs(
        async (db, pools) => {
          expect(await probe(db)).toEqual(expected);
          expect(pools.pool.options).toMatchObject({ connectionLimit: 3, acquireTimeoutMs: 1234, idleTimeout: 4321, maxIdle: 2, cleanup: 'release', initSql: ["SET time_zone = '+05:30'"] });
          expect(pools.readPools).toEqual([]);
        },
        options,
        { maxIdle: 2 },
      );
      // Ours win over Sequelize's; our initSql runs after Sequelize's SET time_zone.
      await withOurs(
        async (db, pools) => {
          expect(pools.pool.options).toMatchObject({ connectionLimit: 2, acquireTimeoutMs: 500, initSql: ["SET time_zone = '+00:00'", 'SET @greeting = 1'] });
          expect(await one(db, 'SELECT @greeting AS g, @@session.time_zone AS tz')).toEqual({ g: 1, tz: '+00:00' });
        },
        { pool: { max: 5, acquire: 60_000 } },
        { connectionLimit: 2, acquireTimeoutMs: 500, initSql: 'SET @greeting = 1' },
      );
    });

    test("a named timezone becomes its offset in SET time_zone, as Sequelize's own connect does", async () => {
      const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined); // mysql2's "Ignoring invalid timezone", on both pools
      try {
        const own = newSequelize({ timezone: 'Asia/Kolkata' });
        let expected: unknown;
        try {
          expected = await one(own, 'SELECT @@session.time_zone AS tz');
        } finally {
          await own.close();
        }
        expect(expected).toEqual({ tz: '+05:30' });
        await withOurs(async (db) => {
          expect(await one(db, 'SELECT @@session.time_zone AS tz')).toEqual(expected);
        }, { timezone: 'Asia/Kolkata' });
      } finally {
        errors.mockRestore();
      }
    });

    test('bind parameters run as prepared statements (connection.execute(...).setMaxListeners), in and out of transactions', async () => {
      await withOurs(async (db, _pools, Items) => {
        expect(await one(db, 'SELECT $1 + 1 AS x, $2 AS s', undefined, { bind: [41, 'b'] })).toEqual({ x: 42, s: 'b' });
        expect(await one(db, 'SELECT $who AS who', undefined, { bind: { who: 'named' } })).toEqual({ who: 'named' });
        await db.transaction(async (t) => {
          const executed = async (): Promise<number> => {
            const row = await one<{ Value: string }>(db, "SHOW SESSION STATUS LIKE 'Com_stmt_execute'", t);
            return Number(row?.Value);
          };
          const before = await executed();
          await Items.create({ id: 10, owner: 'bind', n: 7 }, { transaction: t }); // Sequelize binds an INSERT's values
          expect(await one(db, `SELECT n FROM ${T} WHERE id = $1`, t, { bind: [10] })).toEqual({ n: 7 });
          expect((await executed()) - before).toBe(2);
        });
        expect(await committed('bind')).toEqual([{ id: 10, n: 7 }]);
      });
    });

    test('managed transactions: commit on resolve (invisible to others until then), rollback on a throw', async () => {
      await withOurs(async (db, pools, Items) => {
        const inside = await db.transaction(async (t) => {
          await Items.create({ id: 20, owner: 'managed', n: 1 }, { transaction: t });
          await Items.update({ n: 2 }, { where: { id: 20 }, transaction: t });
          return committed('managed');
        });
        expect(inside).toEqual([]);
        expect(await committed('managed')).toEqual([{ id: 20, n: 2 }]);
        const boom = new Error('boom');
        await expect(
          db.transaction(async (t) => {
            await Items.update({ n: 3 }, { where: { id: 20 }, transaction: t });
            await Items.create({ id: 21, owner: 'managed', n: 0 }, { transaction: t });
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await committed('managed')).toEqual([{ id: 20, n: 2 }]);
        expect(await isRowLocked(side, T, 20)).toBe(false);
        // Sequelize's own COMMIT and ROLLBACK ran: nothing for the pool to clean up.
        expect(pools.pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
      });
    });

    test('unmanaged transactions: t.commit() and t.rollback() give the connection back', async () => {
      await withOurs(async (db, pools, Items) => {
        const t1 = await db.transaction();
        await Items.create({ id: 30, owner: 'unmanaged', n: 1 }, { transaction: t1 });
        expect(pools.pool.stats().leased).toBe(1);
        await t1.commit();
        expect(pools.pool.stats().leased).toBe(0);
        const t2 = await db.transaction();
        await Items.create({ id: 31, owner: 'unmanaged', n: 1 }, { transaction: t2 });
        await t2.rollback();
        expect(await committed('unmanaged')).toEqual([{ id: 30, n: 1 }]);
        await expect(Items.create({ id: 32, owner: 'unmanaged', n: 1 }, { transaction: t2 })).rejects.toThrow('rollback has been called on this transaction');
        expect(pools.pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
      });
    });

    test('nested transactions are savepoints: an inner throw or rollback undoes only its part; on the same connection', async () => {
      await withOurs(async (db, _pools, Items) => {
        await db.transaction(async (outer) => {
          await Items.create({ id: 40, owner: 'nested', n: 0 }, { transaction: outer });
          await expect(
            db.transaction({ transaction: outer }, async (inner) => {
              await Items.create({ id: 41, owner: 'nested', n: 0 }, { transaction: inner });
              throw new Error('inner');
            }),
          ).rejects.toThrow('inner');
          // Three levels: Sequelize's own behaviour, the same on its pool. Starting a savepoint renames
          // its parent after it (lib/dialects/abstract/query-interface.js startTransaction), so the
          // middle level rolls back to the innermost's savepoint: 45 is undone, 44 is kept.
          await expect(
            db.transaction({ transaction: outer }, async (inner) => {
              await Items.create({ id: 44, owner: 'nested', n: 0 }, { transaction: inner });
              await db.transaction({ transaction: inner }, async (innermost) => {
                await Items.create({ id: 45, owner: 'nested', n: 0 }, { transaction: innermost });
              });
              throw new Error('inner again');
            }),
          ).rejects.toThrow('inner again');
          const savepoint = await db.transaction({ transaction: outer });
          await Items.update({ n: 9 }, { where: { id: 40 }, transaction: savepoint });
          await savepoint.rollback();
          const kept = await db.transaction({ transaction: outer });
          await Items.create({ id: 43, owner: 'nested', n: 0 }, { transaction: kept });
          expect(await threadIdOf(db, kept)).toBe(await threadIdOf(db, outer));
          await kept.commit(); // RELEASE SAVEPOINT: still inside the outer transaction
          expect(await committed('nested')).toEqual([]);
        });
        expect(await committed('nested')).toEqual([{ id: 40, n: 0 }, { id: 43, n: 0 }, { id: 44, n: 0 }]);
      });
    });

    test('isolation levels: READ COMMITTED sees a commit made meanwhile, REPEATABLE READ does not, and a level does not carry over to the next transaction', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (50, 'iso', 0)`);
      const { ISOLATION_LEVELS } = S.Transaction;
      await withOurs(async (db, _pools, Items) => {
        /** Reads row 50 twice, with a commit by another connection in between. */
        async function readTwice(t: Transaction): Promise<number[]> {
          const first = (await Items.findByPk(50, { transaction: t }))!.get('n') as number;
          await side.query(`UPDATE ${T} SET n = n + 1 WHERE id = 50`);
          const second = (await Items.findByPk(50, { transaction: t }))!.get('n') as number;
          return [first, second];
        }
        /**
         * True when a plain read takes a shared lock: SERIALIZABLE. (MariaDB's INNODB_TRX keeps
         * showing a connection's last level in trx_isolation_level, so the behaviour is what is checked.)
         */
        async function readLocks(t: Transaction): Promise<boolean> {
          await Items.findByPk(50, { transaction: t });
          return isRowLocked(side, T, 50);
        }
        expect(await db.transaction({ isolationLevel: ISOLATION_LEVELS.READ_COMMITTED }, readTwice)).toEqual([0, 1]);
        expect(await db.transaction({ isolationLevel: ISOLATION_LEVELS.REPEATABLE_READ }, readTwice)).toEqual([1, 1]);
        expect(await db.transaction({ isolationLevel: ISOLATION_LEVELS.SERIALIZABLE }, readLocks)).toBe(true);
        // The same (only) connection, no level given: the server's default, REPEATABLE READ (Sequelize's SET TRANSACTION is for one transaction).
        expect(await db.transaction(readLocks)).toBe(false);
        expect(await db.transaction(readTwice)).toEqual([2, 2]);
      });
    });

    test('replication: reads go to the read pools in turn, writes, transactions and useMaster to the writer, read-only transactions to a reader', async () => {
      const host = new URL(mysqlUrl()).hostname;
      await withOurs(
        async (db, pools, Items) => {
          expect(pools.readPools).toHaveLength(2);
          await db.query('SELECT 1'); // the server version is read first, on the writer (a RAW query goes there too)
          const served: string[] = [];
          pools.pool.on('acquire', () => served.push('write'));
          pools.readPools.forEach((pool, i) => pool.on('acquire', () => served.push(`read${i}`)));
          await Items.create({ id: 60, owner: 'replica', n: 0 });
          await Items.findAll({ where: { owner: 'replica' } });
          await Items.findAll({ where: { owner: 'replica' } });
          await Items.findAll({ where: { owner: 'replica' } });
          await Items.findAll({ where: { owner: 'replica' }, useMaster: true });
          await db.transaction(async (t) => Items.findAll({ where: { owner: 'replica' }, transaction: t }));
          await db.transaction({ readOnly: true }, async (t) => Items.findAll({ where: { owner: 'replica' }, transaction: t }));
          expect(served).toEqual(['write', 'read0', 'read1', 'read0', 'write', 'write', 'read1']);
          expect(await committed('replica')).toEqual([{ id: 60, n: 0 }]);
          // Each pool is a rollback-pool Pool: a raw START TRANSACTION left on the writer is rolled back.
          const rolledBack = nextEvent(pools.pool, 'rollback');
          await db.query('START TRANSACTION');
          await rolledBack;
          expect(pools.pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1 });
          for (const pool of pools.readPools) expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
        },
        { replication: { read: [{ host }, { host }], write: { host } }, pool: { max: 2 } },
      );
    });

    test("a connection the server kills is replaced: an idle one unseen; a transaction's fails with ERR_CONNECTION_LOST, Sequelize destroys it, the pool serves on", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (80, 'killed', 0)`);
      await withOurs(async (db, { pool }, Items) => {
        const idle = await threadIdOf(db);
        const idleGone = nextEvent(pool, 'destroy');
        await side.query(`KILL ${idle}`);
        await idleGone;
        const fresh = await threadIdOf(db); // no error: the pool dropped the dead connection and opened another
        expect(fresh).not.toBe(idle);

        const t = await db.transaction();
        await Items.update({ n: 1 }, { where: { id: 80 }, transaction: t });
        const leasedGone = nextEvent(pool, 'destroy');
        await side.query(`KILL ${await threadIdOf(db, t)}`);
        await leasedGone;
        const failed: unknown = await Items.update({ n: 2 }, { where: { id: 80 }, transaction: t }).catch((error: unknown) => error);
        expect(failed).toBeInstanceOf(S.DatabaseError);
        expect((failed as { parent?: unknown }).parent).toMatchObject({ code: 'ERR_CONNECTION_LOST', neverSent: true, fatal: true });
        const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // Sequelize's "Rolling back transaction ... failed"
        try {
          await expect(t.rollback()).rejects.toMatchObject({ parent: { code: 'ERR_CONNECTION_LOST' } }); // then Sequelize destroys the connection
        } finally {
          warn.mockRestore();
        }
        expect(await committed('killed')).toEqual([{ id: 80, n: 0 }]);
        await Items.update({ n: 3 }, { where: { id: 80 } });
        expect(await committed('killed')).toEqual([{ id: 80, n: 3 }]);
        expect(pool.stats()).toMatchObject({ total: 1, leased: 0, destroyed: 2 });
      });
    });

    // Sequelize has pool hooks since 6.31.0.
    (version === '6.21.0' ? test.skip : test)('an afterPoolAcquire hook that throws (6.31+): the query fails with its error and the connection goes back (Sequelize would keep it borrowed)', async () => {
      await withOurs(async (db, { pool }) => {
        const boom = new Error('hook failed');
        const failing = (): void => {
          throw boom;
        };
        db.addHook('afterPoolAcquire', 'failing', failing);
        await expect(db.query('SELECT 1')).rejects.toBe(boom);
        db.removeHook('afterPoolAcquire', 'failing');
        expect(pool.stats()).toMatchObject({ leased: 0, idle: 1 });
        expect(await threadIdOf(db)).toBeGreaterThan(0); // the only connection serves
      });
    });

    test("sequelize.close() ends the pools: a transaction still open is rolled back before it resolves; then queries are refused; sequelize-pool's counters", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (70, 'close', 0)`);
      const db = newSequelize({ pool: { max: 2 } });
      const { pool } = useRollbackPool(db);
      const Items = defineItem(db, T, S);
      const t = await db.transaction();
      await Items.update({ n: 1 }, { where: { id: 70 }, transaction: t });
      const counters = db.connectionManager as unknown as { pool: { size: number; available: number; using: number; waiting: number } };
      expect([counters.pool.size, counters.pool.available, counters.pool.using, counters.pool.waiting]).toEqual([1, 0, 1, 0]);
      expect(await isRowLocked(side, T, 70)).toBe(true);
      await db.close();
      expect(pool.closed).toBe(true);
      expect(await isRowLocked(side, T, 70)).toBe(false); // checked at once: end() resolved after the ROLLBACK was answered
      expect(await committed('close')).toEqual([{ id: 70, n: 0 }]);
      await expect(Items.findAll()).rejects.toThrow('ConnectionManager.getConnection was called after the connection manager was closed!');
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // Sequelize's "Committing transaction ... failed"
      try {
        await expect(t.commit()).rejects.toMatchObject({ parent: { code: 'ERR_POOL_CLOSED' } }); // its connection was fenced by the pool's end
      } finally {
        warn.mockRestore();
      }
    });
  });

  describe('leak 1: an unmanaged transaction whose error path forgets t.rollback() (sequelize#10858)', () => {
    /**
     * The bug: the catch block forgets `await t.rollback()`; `t` goes out of scope (unless
     * `keep` keeps it, as a request context still referenced would). Returns the thread id.
     */
    async function transferForgettingRollback(db: SequelizeInstance, Items: ModelStatic<Item>, id: number, keep?: Transaction[]): Promise<number> {
      const t = await db.transaction();
      keep?.push(t);
      const threadId = await threadIdOf(db, t);
      try {
        await Items.update({ n: 1 }, { where: { id }, transaction: t });
        throw new Error('payment declined');
      } catch {
        // forgot: await t.rollback();
      }
      return threadId;
    }

    test("control: on Sequelize's own pool (max 2) two of them pin both connections and their locks: every later query times out, even after GC", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (100, 'ctl1', 0), (101, 'ctl1', 0)`);
      const db = newSequelize({ pool: { max: 2, acquire: 1_000 } });
      const Items = defineItem(db, T, S);
      const threads = [await transferForgettingRollback(db, Items, 100), await transferForgettingRollback(db, Items, 101)];
      try {
        gc();
        gc();
        await expect(Items.findAll()).rejects.toBeInstanceOf(S.ConnectionAcquireTimeoutError);
        expect(await isRowLocked(side, T, 100)).toBe(true);
        expect(await isRowLocked(side, T, 101)).toBe(true);
        for (const thread of threads) expect(await threadAlive(side, thread)).toBe(true);
      } finally {
        for (const thread of threads) await side.query(`KILL ${thread}`); // the server rolls back; Sequelize drops them on 'error'
        await db.close();
      }
      expect(await committed('ctl1')).toEqual([{ id: 100, n: 0 }, { id: 101, n: 0 }]);
    });

    test('ours: the dropped Transaction is garbage collected, its lease with it: rolled back, locks freed, both connections serve again', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (110, 'gc1', 0), (111, 'gc1', 0)`);
      await withOurs(
        async (db, { pool }, Items) => {
          const abandons: AbandonEvent[] = [];
          const rollbacks: number[] = [];
          pool.on('abandon', (event) => abandons.push(event));
          pool.on('rollback', ({ durationMs }) => rollbacks.push(durationMs));
          const threads = [await transferForgettingRollback(db, Items, 110), await transferForgettingRollback(db, Items, 111)];
          expect(await isRowLocked(side, T, 110)).toBe(true);
          expect(pool.stats()).toMatchObject({ leased: 2 });
          await waitUntil(() => {
            gc();
            return rollbacks.length === 2;
          }, 10_000);
          expect(abandons.map((e) => e.reason)).toEqual(['garbage-collected', 'garbage-collected']);
          expect(abandons.map((e) => e.threadId).sort()).toEqual([...threads].sort());
          // The ROLLBACK starts when the finalizer runs and takes one round trip: the locks are free now.
          expect(await isRowLocked(side, T, 110)).toBe(false);
          expect(await isRowLocked(side, T, 111)).toBe(false);
          expect(Math.max(...rollbacks)).toBeLessThan(1_000);
          expect(await committed('gc1')).toEqual([{ id: 110, n: 0 }, { id: 111, n: 0 }]);
          // Both connections serve the next users, outside any transaction.
          await Items.create({ id: 112, owner: 'gc1-next', n: 0 });
          expect(await committed('gc1-next')).toEqual([{ id: 112, n: 0 }]);
          expect(threads).toContain(await threadIdOf(db));
          expect(pool.stats()).toMatchObject({ total: 2, leased: 0, abandoned: 2, rolledBack: 2, rollbackFailures: 0 });
        },
        { pool: { max: 2, acquire: 5_000 } },
      );
    });

    test('ours with transactionTimeoutMs: forgotten transactions still referenced (GC cannot help) are rolled back at the deadline; a query queued behind them gets a connection then', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (120, 'timeout1', 0), (121, 'timeout1', 0)`);
      await withOurs(
        async (db, { pool }, Items) => {
          const abandons: AbandonEvent[] = [];
          pool.on('abandon', (event) => abandons.push(event));
          // Done in time: unaffected.
          await db.transaction(async (t) => Items.create({ id: 122, owner: 'timeout1-ok', n: 0 }, { transaction: t }));
          expect(await committed('timeout1-ok')).toEqual([{ id: 122, n: 0 }]);
          const startedAt = performance.now();
          // Still referenced (so garbage collection cannot help): only the deadline frees them.
          const kept: Transaction[] = [];
          await transferForgettingRollback(db, Items, 120, kept);
          await transferForgettingRollback(db, Items, 121, kept);
          expect(await isRowLocked(side, T, 120)).toBe(true);
          // Both connections are pinned; this waits in the pool's queue until the deadline frees one.
          expect(await Items.count({ where: { owner: 'timeout1' } })).toBe(2);
          const waitedMs = performance.now() - startedAt;
          expect(waitedMs).toBeGreaterThanOrEqual(300);
          expect(waitedMs).toBeLessThan(3_000);
          await waitUntil(() => abandons.length === 2, 2_000); // the second deadline passes right after the first
          expect(abandons.map((e) => e.reason)).toEqual(['timeout', 'timeout']);
          await waitUntil(async () => !(await isRowLocked(side, T, 121)), 2_000);
          expect(await isRowLocked(side, T, 120)).toBe(false);
          expect(await committed('timeout1')).toEqual([{ id: 120, n: 0 }, { id: 121, n: 0 }]);
          expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 2, rolledBack: 2 });
          expect(kept).toHaveLength(2);
        },
        { pool: { max: 2, acquire: 5_000 } },
        { transactionTimeoutMs: 300 },
      );
    });

    test('ours with transactionTimeoutMs: a transaction its owner still holds past the deadline is rolled back; its next statement and its commit fail, nothing commits', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (130, 'timeout2', 0)`);
      await withOurs(
        async (db, { pool }, Items) => {
          const t = await db.transaction();
          await Items.update({ n: 1 }, { where: { id: 130 }, transaction: t });
          const [event] = await nextEvent(pool, 'abandon');
          expect(event.reason).toBe('timeout');
          await waitUntil(async () => !(await isRowLocked(side, T, 130)), 2_000);
          const late = await Items.update({ n: 2 }, { where: { id: 130 }, transaction: t }).catch((error: unknown) => error);
          expect(late).toBeInstanceOf(S.DatabaseError);
          expect((late as { parent?: { code?: string } }).parent?.code).toBe('ERR_LEASE_RELEASED');
          const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // Sequelize's "Committing transaction ... failed"
          try {
            await expect(t.commit()).rejects.toMatchObject({ parent: { code: 'ERR_LEASE_RELEASED' } });
          } finally {
            warn.mockRestore();
          }
          expect(await committed('timeout2')).toEqual([{ id: 130, n: 0 }]);
          expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1 });
        },
        {},
        { transactionTimeoutMs: 200 },
      );
    });
  });

  describe("leak 2: a raw sequelize.query('START TRANSACTION')", () => {
    /** The raw BEGIN and an UPDATE at pool level, then the connection's next user inserts. */
    async function rawBegin(db: SequelizeInstance, Items: ModelStatic<Item>, id: number, owner: string): Promise<{ opened: number; next: number }> {
      const opened = await threadIdOf(db);
      await db.query('START TRANSACTION');
      await Items.update({ n: 1 }, { where: { id } });
      await Items.create({ id: id + 1, owner: `${owner}-next`, n: 0 });
      return { opened, next: await threadIdOf(db) };
    }

    test("control: on Sequelize's own pool it leaks into the next users of the connection", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (200, 'ctl2', 0)`);
      const db = newSequelize();
      const Items = defineItem(db, T, S);
      try {
        const { opened, next } = await rawBegin(db, Items, 200, 'ctl2');
        expect(next).toBe(opened);
        expect(await committed('ctl2-next')).toEqual([]); // the next user's "autocommit" INSERT joined the open transaction
        expect(await isRowLocked(side, T, 200)).toBe(true); // and the UPDATE's lock is held by an idle pooled connection
      } finally {
        await db.query('ROLLBACK');
        await db.close();
      }
      expect(await committed('ctl2')).toEqual([{ id: 200, n: 0 }]);
    });

    test.each([
      ['START TRANSACTION', 210],
      ['SET autocommit = 0', 220],
    ])('ours: %j is rolled back at release; the next statements autocommit on the same connection, no lock left', async (opener, id) => {
      const owner = `raw${id}`;
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (?, ?, 0)`, [id, owner]);
      await withOurs(async (db, { pool }, Items) => {
        const abandoned = nextEvent(pool, 'abandon');
        const opened = await threadIdOf(db);
        await db.query(opener);
        expect((await abandoned)[0].reason).toBe('released-in-transaction');
        await Items.update({ n: 1 }, { where: { id } });
        await Items.create({ id: id + 1, owner: `${owner}-next`, n: 0 });
        expect(await threadIdOf(db)).toBe(opened);
        // Rolled back (and autocommit back on) when its statement's connection went back: the UPDATE
        // and the next user's INSERT each autocommitted, as they would without the raw statement.
        expect(await committed(owner)).toEqual([{ id, n: 1 }]);
        expect(await committed(`${owner}-next`)).toEqual([{ id: id + 1, n: 0 }]);
        expect(await isRowLocked(side, T, id)).toBe(false);
        expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0, leased: 0 });
      });
    });
  });

  describe('what useRollbackPool refuses, changing nothing', () => {
    function untouched(db: SequelizeInstance): boolean {
      return !Object.hasOwn(db.connectionManager, 'getConnection');
    }

    test('a Sequelize version outside the supported range: ERR_UNSUPPORTED_VERSION naming it', async () => {
      for (const other of ['6.38.0', '6.20.0', '5.22.5', '7.0.0-alpha.47', '6.37.8-beta.1']) {
        class Other extends S.Sequelize {}
        Object.defineProperty(Other, 'version', { value: other });
        const db = new Other(mysqlUrl(), { dialect: 'mysql', logging: false });
        let error: unknown;
        try {
          useRollbackPool(db);
        } catch (e) {
          error = e;
        }
        expect(error).toMatchObject({ name: 'UnsupportedVersionError', code: 'ERR_UNSUPPORTED_VERSION', library: 'sequelize', version: other, supported: SUPPORTED_SEQUELIZE_VERSIONS });
        expect((error as Error).message).toContain(`sequelize ${other}`);
        expect(untouched(db)).toBe(true);
        await db.close();
      }
    });

    test("a dialect other than mysql: ERR_UNSUPPORTED_DIALECT (mariadb's points to dialect 'mysql')", async () => {
      for (const dialect of ['mariadb', 'postgres', 'sqlite'] as const) {
        const db = new S.Sequelize('db', 'user', 'password', { dialect, dialectModule: {}, logging: false }); // never connects
        expect(() => useRollbackPool(db)).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED_DIALECT', dialect }));
        expect(untouched(db)).toBe(true);
      }
      const mariadb = new S.Sequelize('db', 'user', 'password', { dialect: 'mariadb', dialectModule: {}, logging: false });
      expect(() => useRollbackPool(mariadb)).toThrow("Use dialect: 'mysql'");
    });

    test('connection hooks, an instance that already connected or was already given, an unknown option: ERR_INVALID_OPTION', async () => {
      const hooked = newSequelize({ hooks: { beforeConnect: () => undefined } });
      expect(() => useRollbackPool(hooked)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'hooks.beforeConnect' }));
      expect(untouched(hooked)).toBe(true);
      await hooked.close();

      const connected = newSequelize();
      await connected.authenticate();
      expect(() => useRollbackPool(connected)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'sequelize' }));
      expect(untouched(connected)).toBe(true);
      await connected.close();

      const twice = newSequelize();
      expect(() => useRollbackPool(twice, { connectionLimt: 2 } as unknown as SequelizePoolOptions)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'connectionLimt' }));
      expect(() => useRollbackPool(twice, { transactionTimeoutMs: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'transactionTimeoutMs' }));
      expect(untouched(twice)).toBe(true);
      const { pool } = useRollbackPool(twice);
      expect(() => useRollbackPool(twice)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'sequelize' }));
      await twice.close();
      expect(pool.closed).toBe(true);
    });
  });
});

