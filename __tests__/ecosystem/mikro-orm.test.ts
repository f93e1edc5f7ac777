/**
 * MikroORM 7.2.1 and 6.6.16 on our pool.
 *
 * - MikroORM 7 runs on Kysely. Its AbstractSqlConnection.createKysely (node_modules/@mikro-orm/sql/
 *   AbstractSqlConnection.js) takes a ready-made dialect from `driverOptions` ("Reusing Kysely dialect provided
 *   via `driverOptions`": any object with `createDriver`), so `driverOptions: new MysqlDialect({ pool: pool.pool })`
 *   puts every statement on our leases. MikroORM's own dialect (MySqlConnection.js) also passes mysql2's
 *   `createConnection` as Kysely's `controlConnection`, the lone connection that carries a cancellation's
 *   `KILL QUERY`; a supplied dialect must pass it too (rollback-pool/mysql2 exports mysql2's own): without it
 *   Kysely sends the KILL over the pool, and inside a transaction over the transaction's own connection, behind
 *   the very statement it is meant to cancel, so an abort inside `em.transactional` never settles (the same
 *   with mysql2's own pool). `orm.close()` ends the Kysely instance, which ends our pool (`pool.end(cb)`).
 *   MikroORM 7 declares `engines: node >= 22.17` but runs here on Node 20.20 (entities given as classes or
 *   schemas; glob discovery would need Node 22's `fs.globSync`). It is ESM only: loaded with Node's own
 *   require(esm), as the Kysely test loads Kysely.
 * - MikroORM 6 runs on knex 3.2.10, which has no `connectionPool`. With npm `overrides` making its knex the
 *   3.3.0 (package.json: `"overrides": { "knex": "$knex" }`), MikroORM's documented reuse of a knex instance
 *   (`driverOptions: knexInstance`, AbstractSqlConnection.createKnexClient: "Reusing knex client provided via
 *   `driverOptions`") takes `knex({ client: MySqlKnexDialect, connectionPool: pool })`, MikroORM's own dialect
 *   over our pool. (`driverOptions: { connectionPool: pool }` alone fails: knex refuses `connection` and
 *   `connectionPool` together, and MikroORM always sets `connection`.) `orm.close()` leaves our pool open.
 *   MikroORM 6 lives in the npm workspace test-packages/mikro-orm6 (6 and 7 both need @mikro-orm/core at the
 *   top of their node_modules).
 */
import * as nodeModule from 'node:module';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as Mikro7 from '@mikro-orm/mysql';
import type { EntityManager } from '@mikro-orm/mysql';
import type * as KyselyModule from 'kysely';
import type { RowDataPacket } from 'mysql2';
import { createPool, type AbandonEvent, type Pool } from '../../src';
import * as rollbackMysql2 from '../../src/mysql2';
import { isRowLocked, mysqlUrl, uniqueTable } from '../support/db';
import { ownerTable } from '../support/owner-table';
import { nextEvent, waitUntil } from '../pool/helpers';

const nodeRequire = (Object.getPrototypeOf(nodeModule.Module) as typeof nodeModule.Module).createRequire(__filename);
const mikro7 = nodeRequire('@mikro-orm/mysql') as typeof Mikro7;
const { MysqlDialect } = nodeRequire('kysely') as typeof KyselyModule;
/** MikroORM 6 from its workspace; typed with 7's declarations for the part of the API both share. */
const mikro6Require = nodeRequire('node:module').createRequire(path.join(__dirname, '../../test-packages/mikro-orm6/package.json')) as NodeJS.Require;
const mikro6 = mikro6Require('@mikro-orm/mysql') as typeof Mikro7 & {
  knex: (config: object) => object;
  MySqlKnexDialect: Function;
};

// MikroORM 6's init checks that every @mikro-orm/* package in the cwd's package.json resolves (from the cwd) to
// its own version: here the root's are 7's. A user has one major only; this is MikroORM's own switch for the check,
// set on Node's own process (MikroORM runs outside jest's sandbox, whose process.env is a copy).
(nodeRequire('node:process') as NodeJS.Process).env.MIKRO_ORM_ALLOW_VERSION_MISMATCH = '1';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Item {
  id: number;
  owner: string;
  n: number;
}

/** What differs between the two majors. */
interface Flavour {
  version: string;
  module: typeof Mikro7;
  /** The `driverOptions` that puts MikroORM on our pool. */
  driverOptions(pool: Pool): object;
  /** Whether `orm.close()` ends our pool (Kysely's destroy calls `pool.end`; knex leaves an external pool alone). */
  closeEndsPool: boolean;
}

const FLAVOURS: Array<[string, Flavour]> = [
  [
    '7.2.1 (Kysely)',
    {
      version: '7.2.1',
      module: mikro7,
      driverOptions: (pool) => new MysqlDialect({ pool: pool.pool, controlConnection: rollbackMysql2.createConnection }),
      closeEndsPool: true,
    },
  ],
  [
    '6.6.16 (knex 3.3.0)',
    {
      version: '6.6.16',
      module: mikro6,
      driverOptions: (pool) => mikro6.knex({ client: mikro6.MySqlKnexDialect, connectionPool: pool }),
      closeEndsPool: false,
    },
  ],
];

describe.each(FLAVOURS)('MikroORM %s', (_name, flavour) => {
  const T = uniqueTable(`mikro_orm_${flavour.version}`);
  const { side, committed } = ownerTable(T);
  const { MikroORM, EntitySchema } = flavour.module;
  const ItemSchema = new EntitySchema<Item>({
    name: 'Item',
    tableName: T,
    properties: { id: { type: 'number', primary: true, autoincrement: false }, owner: { type: 'string', length: 32 }, n: { type: 'number', default: 0 } },
  });
  const dbName = new URL(mysqlUrl()).pathname.slice(1);

  async function orm(pool: Pool): Promise<Mikro7.MikroORM> {
    return MikroORM.init({ entities: [ItemSchema], dbName, driverOptions: flavour.driverOptions(pool), allowGlobalContext: false });
  }

  /** MikroORM on a fresh pool of ours (one connection unless told); closed after, and the pool ended. */
  async function withOrm<R>(fn: (o: Mikro7.MikroORM, pool: Pool) => Promise<R>, options: { connectionLimit?: number; leakDetectionMs?: number } = {}): Promise<R> {
    const pool = createPool({ uri: mysqlUrl(), connectionLimit: options.connectionLimit ?? 1, leakDetectionMs: options.leakDetectionMs ?? 0 });
    const o = await orm(pool);
    try {
      return await fn(o, pool);
    } finally {
      await o.close();
      expect(pool.closed).toBe(flavour.closeEndsPool);
      await pool.end();
    }
  }

  async function threadIdOf(em: EntityManager): Promise<number> {
    const rows = (await em.execute('select connection_id() as id')) as RowDataPacket[];
    return Number(rows[0]!.id);
  }

  test("driverOptions puts MikroORM on our pool: persist/flush, find, change + flush, remove + flush, each committed at once", async () => {
    await withOrm(async (o, pool) => {
      const acquired = jest.fn();
      pool.on('acquire', acquired);
      const em = o.em.fork();
      em.persist([em.create(ItemSchema, { id: 1, owner: 'flush', n: 0 }), em.create(ItemSchema, { id: 2, owner: 'flush', n: 0 })]);
      await em.flush();
      expect(await committed('flush')).toEqual([{ id: 1, n: 0 }, { id: 2, n: 0 }]);
      const found = await o.em.fork().find(ItemSchema, { owner: 'flush' }, { orderBy: { id: 'asc' } });
      expect(found.map((item) => item.id)).toEqual([1, 2]);
      const other = o.em.fork();
      const one = await other.findOneOrFail(ItemSchema, { id: 1 });
      one.n = 7;
      other.remove(await other.findOneOrFail(ItemSchema, { id: 2 }));
      await other.flush();
      expect(await committed('flush')).toEqual([{ id: 1, n: 7 }]);
      expect(acquired).toHaveBeenCalled(); // every statement went through a lease of ours
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  test('em.transactional commits on resolve (invisible to others until then, one connection) and rolls back on a throw, locks freed', async () => {
    await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (10, 'tx', 0)`);
    await withOrm(async (o, pool) => {
      const seen: unknown[] = [];
      const threads = await o.em.fork().transactional(async (em) => {
        const first = await threadIdOf(em);
        em.create(ItemSchema, { id: 11, owner: 'tx', n: 0 });
        (await em.findOneOrFail(ItemSchema, { id: 10 })).n = 1;
        await em.flush();
        seen.push(await committed('tx'), await isRowLocked(side, T, 10));
        return [first, await threadIdOf(em)];
      });
      expect(new Set(threads).size).toBe(1);
      expect(seen).toEqual([[{ id: 10, n: 0 }], true]);
      expect(await committed('tx')).toEqual([{ id: 10, n: 1 }, { id: 11, n: 0 }]);

      const boom = new Error('boom');
      await expect(
        o.em.fork().transactional(async (em) => {
          (await em.findOneOrFail(ItemSchema, { id: 10 })).n = 99;
          em.create(ItemSchema, { id: 12, owner: 'tx', n: 0 });
          await em.flush();
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await committed('tx')).toEqual([{ id: 10, n: 1 }, { id: 11, n: 0 }]);
      expect(await isRowLocked(side, T, 10)).toBe(false);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0, rolledBack: 0 }); // MikroORM's own ROLLBACK
    });
  });

  test('nested em.transactional: a savepoint, the inner one undone alone; em.begin / commit / rollback', async () => {
    await withOrm(async (o, pool) => {
      await o.em.fork().transactional(async (outer) => {
        outer.create(ItemSchema, { id: 20, owner: 'nest', n: 0 });
        await outer.flush();
        await expect(
          outer.transactional(async (inner) => {
            inner.create(ItemSchema, { id: 21, owner: 'nest', n: 0 });
            await inner.flush();
            throw new Error('inner');
          }),
        ).rejects.toThrow('inner');
        await outer.transactional(async (inner) => {
          inner.create(ItemSchema, { id: 22, owner: 'nest', n: 0 });
        });
        expect(await committed('nest')).toEqual([]);
      });
      expect(await committed('nest')).toEqual([{ id: 20, n: 0 }, { id: 22, n: 0 }]);

      const em = o.em.fork();
      await em.begin();
      em.create(ItemSchema, { id: 23, owner: 'nest', n: 0 });
      await em.commit();
      await em.begin();
      em.create(ItemSchema, { id: 24, owner: 'nest', n: 0 });
      await em.flush();
      await em.rollback();
      expect(await committed('nest')).toEqual([{ id: 20, n: 0 }, { id: 22, n: 0 }, { id: 23, n: 0 }]);
      expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
    });
  });

  /**
   * A forgotten `em.begin()`: a request forks an EntityManager, begins, writes, flushes, and never commits
   * nor rolls back (an early return, a thrown error nobody turns into `em.rollback()`). MikroORM keeps the
   * connection in the fork's transaction context for as long as the fork lives.
   */
  describe('a forgotten em.begin()', () => {
    /** Begins on a fork, locks row `id`, writes; drops the fork; returns its thread id and a check that it was collected. */
    async function forget(o: Mikro7.MikroORM, id: number, owner: string): Promise<{ threadId: number; collected: () => boolean }> {
      let collected = false;
      const registry = new FinalizationRegistry(() => (collected = true));
      const threadId = await (async () => {
        const em = o.em.fork();
        registry.register(em, 'fork');
        await em.begin();
        (await em.findOneOrFail(ItemSchema, { id })).n = 1;
        em.create(ItemSchema, { id: id + 1, owner, n: 0 });
        await em.flush();
        return threadIdOf(em);
      })();
      return { threadId, collected: () => collected };
    }

    test("control, MikroORM's own pool: once the fork is garbage collected the row stays locked and the connection is lost to the pool", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (100, 'ctl', 0)`);
      const o = await MikroORM.init({ entities: [ItemSchema], clientUrl: mysqlUrl(), dbName, pool: { min: 0, max: 1 }, allowGlobalContext: false });
      const { threadId, collected } = await forget(o, 100, 'ctl');
      await waitUntil(() => {
        gc();
        return collected();
      }, 10_000);
      expect(await isRowLocked(side, T, 100)).toBe(true); // nobody will ever roll it back
      expect(await committed('ctl')).toEqual([{ id: 100, n: 0 }]);
      if (flavour.closeEndsPool) {
        await o.close(); // 7: mysql2's pool.end() closes every connection, the used one too: the server rolls back
      } else {
        // 6: knex's tarn pool waits, in destroy(), for the used connection to be released, which nobody will do:
        // orm.close() would never settle. Only the server can end it.
        await side.query(`KILL ${threadId}`);
        void o.close(); // stops tarn's reaper; never settles
      }
      await waitUntil(async () => !(await isRowLocked(side, T, 100)), 5_000);
      expect(await committed('ctl')).toEqual([{ id: 100, n: 0 }]);
    });

    test('ours: once the fork is garbage collected the pool rolls it back (its lock freed) and the connection serves the next user', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (110, 'gc', 0)`);
      await withOrm(async (o, pool) => {
        const abandoned = new Promise<AbandonEvent>((resolve) => pool.once('abandon', resolve));
        let event: AbandonEvent | undefined;
        void abandoned.then((e) => (event = e));
        const { threadId } = await forget(o, 110, 'gc');
        expect(await isRowLocked(side, T, 110)).toBe(true);
        await waitUntil(() => {
          gc();
          return event !== undefined;
        }, 10_000);
        expect(event).toMatchObject({ threadId, reason: 'garbage-collected' });
        await waitUntil(async () => !(await isRowLocked(side, T, 110)), 5_000);
        expect(await committed('gc')).toEqual([{ id: 110, n: 0 }]);
        const em = o.em.fork();
        expect(await threadIdOf(em)).toBe(threadId); // the only connection, outside any transaction
        em.create(ItemSchema, { id: 119, owner: 'gc-next', n: 0 });
        await em.flush();
        expect(await committed('gc-next')).toEqual([{ id: 119, n: 0 }]);
        expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 1, rolledBack: 1 });
      });
    });

    test('ours, while the fork lives: the connection is held (leakDetectionMs reports it); closing ends it with nothing committed', async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (120, 'held', 0)`);
      const pool = createPool({ uri: mysqlUrl(), connectionLimit: 2, leakDetectionMs: 200 });
      const o = await orm(pool);
      const em = o.em.fork();
      try {
        const leak = nextEvent(pool, 'leak');
        await em.begin();
        (await em.findOneOrFail(ItemSchema, { id: 120 })).n = 1;
        await em.flush();
        const threadId = await threadIdOf(em);
        const [event] = await leak;
        expect(event.threadId).toBe(threadId);
        expect(pool.stats()).toMatchObject({ leased: 1, abandoned: 0 });
        expect(await isRowLocked(side, T, 120)).toBe(true);
        // The rest of the application runs on the other connection, on its own.
        const other = o.em.fork();
        expect(await threadIdOf(other)).not.toBe(threadId);
      } finally {
        await o.close();
        await pool.end(); // (7: already ended by o.close()) the lease still out is rolled back before it quits
      }
      expect(await isRowLocked(side, T, 120)).toBe(false);
      expect(await committed('held')).toEqual([{ id: 120, n: 0 }]);
    });
  });

  if (flavour.version.startsWith('7')) {
    test("query cancellation inside em.transactional ({ signal, inflightQueryAbortStrategy }): 'cancel query' sends KILL QUERY over the dialect's controlConnection; 'kill session' destroys the lease", async () => {
      await side.query(`INSERT INTO ${T} (id, owner, n) VALUES (200, 'cancel', 0)`);
      const locker = rollbackMysql2.createConnection({ uri: mysqlUrl() }).promise();
      await locker.query('START TRANSACTION');
      await locker.query(`SELECT id FROM ${T} WHERE id = 200 FOR UPDATE`);
      /** MikroORM's SELECT ... FOR UPDATE is running on the server (waiting for the locker's lock). */
      const inFlight = async (): Promise<boolean> => {
        const [rows] = await side.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE 'select%for update'");
        return rows.length > 0;
      };
      try {
        await withOrm(
          async (o, pool) => {
            for (const strategy of ['cancel query', 'kill session'] as const) {
              const controller = new AbortController();
              const outcome = o.em.fork().transactional((em) =>
                em.findOne(ItemSchema, { id: 200 }, { lockMode: mikro7.LockMode.PESSIMISTIC_WRITE, signal: controller.signal, inflightQueryAbortStrategy: strategy }),
              );
              const settled = outcome.catch((error: unknown) => error);
              await waitUntil(inFlight, 5_000);
              controller.abort();
              expect(String(await settled)).toContain('aborted');
              await waitUntil(async () => !(await inFlight()), 5_000); // gone from the server, not left waiting for its lock
              expect(pool.stats()).toMatchObject({ leased: 0, abandoned: 0 });
            }
            expect(pool.stats().destroyed).toBe(1); // 'kill session': the lease's connection was destroyed (its KILL by the pool)
          },
          { connectionLimit: 2 },
        );
      } finally {
        await locker.end();
      }
    });
  }
});
