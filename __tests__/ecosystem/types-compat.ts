/**
 * Type-level compatibility with mysql2/promise's `Pool` and `PoolConnection`.
 *
 * Checked by `npm run typecheck` (tsconfig.json includes __tests__), never run: jest
 * only runs *.test.ts. Every line marked `@ts-expect-error` states a difference; if
 * one of them ever becomes compatible, the directive is unused and the typecheck fails,
 * so this file and the README's list must be updated together.
 *
 * Checked against mysql2 3.24.6 (promise.d.ts), drizzle-orm 0.45.4, knex 3.3.0, kysely 0.29.9.
 */
import { drizzle } from 'drizzle-orm/mysql2';
import { knex } from 'knex';
import type { MysqlPool as KyselyMysqlPool, MysqlPoolConnection as KyselyMysqlPoolConnection } from 'kysely';
import type * as mysql from 'mysql2/promise';
import { createPool, type Pool, type PoolConnection } from '../../src';

declare const pool: Pool;
declare const conn: PoolConnection;

// ---------------------------------------------------------------------------------------
// 1. Code typed against the *whole* mysql2 types does not accept ours.
// ---------------------------------------------------------------------------------------

declare function usesMysql2Pool(pool: mysql.Pool): Promise<void>;
declare function usesMysql2PoolConnection(conn: mysql.PoolConnection): Promise<void>;
declare function usesMysql2Connection(conn: mysql.Connection): Promise<void>;

// @ts-expect-error members listed in section 3
void usesMysql2Pool(pool);
// @ts-expect-error members listed in section 4
void usesMysql2PoolConnection(conn);
// @ts-expect-error same members as PoolConnection minus `release`/`connection`
void usesMysql2Connection(conn);
// @ts-expect-error the return type of createPool is our Pool, not mysql2's
export const created: mysql.Pool = createPool({ uri: 'mysql://root@127.0.0.1:3306/test' });

// ---------------------------------------------------------------------------------------
// 2. Code typed against the members it really uses does: what a repository, a service
//    or a migration script written for mysql2/promise usually touches.
// ---------------------------------------------------------------------------------------

type Mysql2LeaseSurface = Pick<
  mysql.PoolConnection,
  | 'query'
  | 'execute'
  | 'beginTransaction'
  | 'commit'
  | 'rollback'
  | 'ping'
  | 'release'
  | 'destroy'
  | 'threadId'
  | 'config'
  | 'escape'
  | 'escapeId'
  | 'format'
  | typeof Symbol.asyncDispose
>;
type Mysql2PoolSurface = Pick<mysql.Pool, 'query' | 'execute' | 'end' | 'escape' | 'escapeId' | 'format' | typeof Symbol.asyncDispose> & {
  getConnection(): Promise<Mysql2LeaseSurface>;
};

export async function repository(db: Mysql2PoolSurface): Promise<number> {
  const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT ? AS n', [1]);
  const [header] = await db.execute<mysql.ResultSetHeader>('UPDATE t SET n = n + 1 WHERE id = ?', [1]);
  const lease = await db.getConnection();
  try {
    await lease.beginTransaction();
    await lease.query({ sql: 'SELECT :id AS id', namedPlaceholders: true }, { id: 1 });
    await lease.commit();
  } finally {
    lease.release();
  }
  return Number(rows[0]?.n) + header.affectedRows + lease.threadId;
}
void repository(pool);
export const leaseSurface: Mysql2LeaseSurface = conn;

// Typed mysql2 result generics pass through unchanged.
export async function typedResults(p: Pool): Promise<void> {
  const [rows] = await p.query<mysql.RowDataPacket[]>('SELECT 1 AS one');
  const one: unknown = rows[0]?.one;
  const [header] = await p.execute<mysql.ResultSetHeader>('DELETE FROM t');
  const affected: number = header.affectedRows;
  void one;
  void affected;
}

// ---------------------------------------------------------------------------------------
// 3. Pool: member by member, where it differs from mysql2/promise's `Pool`.
// ---------------------------------------------------------------------------------------

// (a) Real members of mysql2's PromisePool (lib/promise/pool.js) that ours lacks.
// @ts-expect-error `pool`: ours exists (a CallbackPool: getConnection(cb), query(sql, values, cb) / .stream(), execute, end(cb), escape/format; what knex's connectionPool and Kysely's MysqlDialect call) but is not mysql2's core `Pool` type: it lacks on/once (EventEmitter), releaseConnection, promise(), prepare/unprepare and the rest of mysql2's core Connection typing
export const p_pool: Pick<mysql.Pool, 'pool'> = pool;

// (b) Declared on mysql2's `Pool` only because promise.d.ts says `interface Pool extends
//     Connection`; mysql2's PromisePool does not implement them at runtime either (calling
//     pool.beginTransaction() on mysql2 is a TypeError). Ours does not declare them.
// @ts-expect-error typing-only member of mysql2's Pool
export const p_threadId: Pick<mysql.Pool, 'threadId'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_config: Pick<mysql.Pool, 'config'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_state: Pick<mysql.Pool, 'state'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool (ours has a *private* `connect`, which also blocks assignability)
export const p_connect: Pick<mysql.Pool, 'connect'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_ping: Pick<mysql.Pool, 'ping'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_reset: Pick<mysql.Pool, 'reset'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_beginTransaction: Pick<mysql.Pool, 'beginTransaction'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_commit: Pick<mysql.Pool, 'commit'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_rollback: Pick<mysql.Pool, 'rollback'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_changeUser: Pick<mysql.Pool, 'changeUser'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_prepare: Pick<mysql.Pool, 'prepare'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_unprepare: Pick<mysql.Pool, 'unprepare'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_destroy: Pick<mysql.Pool, 'destroy'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_pause: Pick<mysql.Pool, 'pause'> = pool;
// @ts-expect-error typing-only member of mysql2's Pool
export const p_resume: Pick<mysql.Pool, 'resume'> = pool;

// (c) Members both have, with other types.
// @ts-expect-error getConnection(): resolves to our PoolConnection (section 4), not mysql2's
export const p_getConnection: Pick<mysql.Pool, 'getConnection'> = pool;
// @ts-expect-error releaseConnection(): takes our PoolConnection, not mysql2's
export const p_releaseConnection: Pick<mysql.Pool, 'releaseConnection'> = pool;
// @ts-expect-error on(): returns `this` (our Pool, not mysql2's); and see the two listener cases below
export const p_on: Pick<mysql.Pool, 'on'> = pool;
// @ts-expect-error once/addListener/off/removeListener/prepend*: return `this`, our Pool
export const p_once: Pick<mysql.Pool, 'once'> = pool;
// @ts-expect-error setMaxListeners/removeAllListeners: return `this`, our Pool
export const p_setMaxListeners: Pick<mysql.Pool, 'setMaxListeners'> = pool;
// @ts-expect-error a 'connection'/'acquire'/'release' listener typed as mysql2 declares it (its promise PoolConnection) is refused: ours types the payload as mysql2's core Connection, which is what both pools really pass
pool.on('connection', (connection: mysql.PoolConnection) => void connection.threadId);
// @ts-expect-error an event name outside our map (e.g. 'error', allowed by mysql2's EventEmitter typing) takes a `never` listener: EventEmitter<PoolEventMap>
pool.on('error', (error: Error) => void error);

// Narrowed to what a caller really uses, the event surface is compatible:
export const p_events: {
  on(event: 'connection' | 'acquire' | 'release', listener: (connection: mysql.Connection | object) => unknown): unknown;
  on(event: 'enqueue', listener: () => unknown): unknown;
} = pool;
export const p_eventsSame: Pick<mysql.Pool, 'emit' | 'listenerCount' | 'listeners' | 'rawListeners' | 'eventNames' | 'getMaxListeners'> = pool;

// ---------------------------------------------------------------------------------------
// 4. PoolConnection: member by member.
// ---------------------------------------------------------------------------------------

// (a) Real members of mysql2's PromisePoolConnection (lib/promise/connection.js) that ours lacks.
// @ts-expect-error `connection`: ours exists (a fenced, tracked CallbackConnection: query(sql, values, cb) / .stream(), execute, beginTransaction/commit/rollback/ping(cb), release, end, destroy, threadId, config) but is not mysql2's core PoolConnection type: no EventEmitter, connect, changeUser, prepare, pause/resume, promise(), state... (the raw connection is not exposed: it would bypass fencing and transaction tracking)
export const c_connection: Pick<mysql.PoolConnection, 'connection'> = conn;
// `end()`: as on mysql2, a deprecated alias of release() (warned once per pool); with `gracefulEnd` it closes the connection.
export const c_end: Pick<mysql.PoolConnection, 'end'> = conn;
// @ts-expect-error `reset()` (COM_RESET_CONNECTION) is not exposed on a lease (the pool does it with resetOnRelease)
export const c_reset: Pick<mysql.PoolConnection, 'reset'> = conn;
// @ts-expect-error `changeUser()` is not exposed: a lease must go back as the pool's user
export const c_changeUser: Pick<mysql.PoolConnection, 'changeUser'> = conn;
// @ts-expect-error `prepare()` (explicit prepared statements) is not exposed; execute() uses mysql2's statement cache
export const c_prepare: Pick<mysql.PoolConnection, 'prepare'> = conn;
// @ts-expect-error `unprepare()` is not exposed
export const c_unprepare: Pick<mysql.PoolConnection, 'unprepare'> = conn;
// @ts-expect-error `connect()` is not exposed (a leased connection is connected)
export const c_connect: Pick<mysql.PoolConnection, 'connect'> = conn;
// @ts-expect-error `pause()` is not exposed (socket flow control, would stall the pool's own ROLLBACK)
export const c_pause: Pick<mysql.PoolConnection, 'pause'> = conn;
// @ts-expect-error `resume()` is not exposed
export const c_resume: Pick<mysql.PoolConnection, 'resume'> = conn;
// @ts-expect-error EventEmitter: our lease is not one (mysql2 re-emits 'error', 'drain', 'connect', 'end', 'enqueue' of the connection); connection errors surface as the pool's 'destroy' event instead
export const c_on: Pick<mysql.PoolConnection, 'on'> = conn;
// @ts-expect-error EventEmitter: see c_on (also once, off, emit, listenerCount, ...)
export const c_emit: Pick<mysql.PoolConnection, 'emit'> = conn;

// (b) Typing-only on mysql2's side: `state` is declared by promise.d.ts but PromiseConnection has no such getter.
// @ts-expect-error typing-only member of mysql2's Connection
export const c_state: Pick<mysql.PoolConnection, 'state'> = conn;

// (c) Same name, different type: none. beginTransaction/commit/rollback/ping resolve to
//     void in both typings (mysql2's runtime resolves beginTransaction etc. to
//     [result, fields]; ours really resolves to undefined).
export const c_voids: Pick<mysql.PoolConnection, 'beginTransaction' | 'commit' | 'rollback' | 'ping'> = conn;

// ---------------------------------------------------------------------------------------
// 5. Clients.
// ---------------------------------------------------------------------------------------

// Drizzle types `client` as mysql2's `Pool | Connection | CallbackPool | CallbackConnection`
// (drizzle-orm/mysql2/driver.d.ts, AnyMySql2Connection): ours needs a cast.
// @ts-expect-error drizzle({ client }) rejects our Pool: section 3's members
export const d1 = drizzle({ client: pool });
// @ts-expect-error drizzle(client) rejects our Pool too
export const d2 = drizzle(pool);
// @ts-expect-error drizzle({ client }) rejects our PoolConnection: section 4's members
export const d3 = drizzle({ client: conn });
export const d4 = drizzle({ client: pool as unknown as mysql.Pool }); // what users have to write

// knex 3.3.0 types `connectionPool` with MySQLPoolLike { getConnection(cb): void; end(cb?): void }:
// our Pool type-checks (a method that ignores the callback is assignable) and now also works
// at runtime: knex's mysql2 dialect uses `pool.pool || pool`, i.e. our callback face (knex.test.ts).
export const k1 = knex({ client: 'mysql2', connectionPool: pool });
// Passing `pool.pool` itself type-checks as well (CallbackPool.end's callback is `(err?: Error)`, as knex declares).
export const k2 = knex({ client: 'mysql2', connectionPool: pool.pool });

// ---------------------------------------------------------------------------------------
// 6. Kysely 0.29.9: `new MysqlDialect({ pool: pool.pool })` type-checks against Kysely's
//    MysqlPool / MysqlPoolConnection (dialect/mysql/mysql-dialect-config.d.ts) with no cast,
//    and works at runtime (kysely.test.ts).
// ---------------------------------------------------------------------------------------

export const ky_pool: KyselyMysqlPool = pool.pool;
export const ky_getConnection: Pick<KyselyMysqlPool, 'getConnection'> = pool.pool;
export const ky_end: Pick<KyselyMysqlPool, 'end'> = pool.pool;
export const ky_connect: Pick<KyselyMysqlPoolConnection, 'connect'> = conn.connection;
export const ky_query: Pick<KyselyMysqlPoolConnection, 'query'> = conn.connection;
export const ky_rest: Pick<KyselyMysqlPoolConnection, 'release' | 'destroy' | 'threadId' | 'config'> = conn.connection;
