/**
 * `rollback-pool/mysql2`: a stand-in for `require('mysql2')`, mysql2's
 * callback module. `createPool` returns the callback face of a rollback-pool
 * pool (`pool.pool`): mysql2's callback API, with every abandoned transaction
 * rolled back before the connection serves anyone else. The rest is mysql2's
 * own (lone connections, helpers, type tables), so that a module written
 * against `mysql2` runs unchanged with this one in its place.
 *
 * ```js
 * const mysql = require('rollback-pool/mysql2');
 * const pool = mysql.createPool({ uri: 'mysql://root@127.0.0.1:3306/test', connectionLimit: 10 });
 * pool.query('SELECT 1 AS one', (err, rows) => console.log(err ?? rows));
 * ```
 *
 * @module rollback-pool/mysql2
 */
import * as mysql2 from 'mysql2';
import * as mysql2Promise from 'mysql2/promise';
import { createPool as createPromisePool } from '../index';
import type { PoolOptions } from '../options';
import { CallbackConnection, CallbackPool } from '../pool/callback';
import { CallbackPoolCluster, createCallbackPoolCluster, createPoolCluster as createPromisePoolCluster } from '../cluster';
import type { PoolClusterOptions } from '../cluster';

// mysql2's types (RowDataPacket, ResultSetHeader, FieldPacket, QueryError, ...), as from 'mysql2';
// the names this module defines itself (Pool, PoolConnection, Connection...) are its own.
export type * from 'mysql2';

export {
  escape,
  escapeId,
  format,
  raw,
  Types,
  TypedParameter,
  Charsets,
  CharsetToEncoding,
  setMaxParserCache,
  clearParserCache,
} from './shared';
export * from '../errors';
export type { PoolOptions, RollbackPoolOwnOptions, CleanupMode } from '../options';
export type { CallbackConnectionEventMap, CallbackPoolEventMap, PoolConfig, StatementCallback } from '../pool/callback';

/**
 * Creates a pool, as mysql2's `createPool`, with mysql2's callback API
 * (`getConnection(cb)`, `query(sql, values, cb)`, `execute`, `end(cb)`,
 * events): the callback face of a rollback-pool pool. Same options as
 * rollback-pool's `createPool` (mysql2's plus ours), or a `mysql://` URL;
 * throws `ERR_INVALID_OPTION` naming a bad one. `pool.promise()` is the
 * promise `Pool` behind it.
 */
export function createPool(options: PoolOptions | string): CallbackPool {
  return createPromisePool(options).pool;
}

/**
 * mysql2's promise `createPool` under its `mysql2` name (`createPoolPromise`):
 * rollback-pool's promise `Pool`, the same as `require('rollback-pool').createPool`.
 */
export const createPoolPromise: typeof createPromisePool = createPromisePool;

/**
 * Creates a pool cluster, as mysql2's `createPoolCluster`, with mysql2's
 * callback API (`add`, `of(pattern, selector)`, `getConnection(cb)`, events);
 * every node is a rollback-pool pool. `cluster.promise()` is the promise face.
 */
export function createPoolCluster(options?: PoolClusterOptions): CallbackPoolCluster {
  return createCallbackPoolCluster(options);
}

/** mysql2's promise `createPoolCluster` under its `mysql2` name: rollback-pool's promise `PoolCluster`. */
export const createPoolClusterPromise: typeof createPromisePoolCluster = createPromisePoolCluster;

/** The class of what `createPoolCluster` returns (mysql2 exports its cluster class as `PoolCluster`). */
export { CallbackPoolCluster as PoolCluster };
export type { PoolClusterOptions, PoolClusterSelector, SelectorName, PoolClusterEventMap, ClusterConnectionCallback } from '../cluster';

/** The class of what `createPool` returns (mysql2 exports its pool class as `Pool`). */
export { CallbackPool as Pool };
/** The class of the connections the pool hands out (mysql2 exports its pooled connection class as `PoolConnection`). */
export { CallbackConnection as PoolConnection };

/**
 * mysql2's own `createConnection`: one connection outside any pool. **A lone
 * connection has no pool**, so none of rollback-pool's guarantees apply to
 * it: a transaction left open on it stays open until you commit, roll back or
 * end the connection. Use `createPool` for connections that can be abandoned safely.
 */
export const createConnection: typeof mysql2.createConnection = mysql2.createConnection;
/** mysql2's alias of `createConnection` (a lone connection, no pool). */
export const connect: typeof mysql2.createConnection = mysql2.createConnection;
/** mysql2's promise `createConnection` under its `mysql2` name (a lone connection, no pool). */
export const createConnectionPromise: typeof mysql2Promise.createConnection = mysql2Promise.createConnection;

/**
 * mysql2's connection class, unchanged: what `createConnection` returns.
 * Libraries look at `Connection.prototype.execute` to tell mysql2 from mysql.
 */
export const Connection: typeof mysql2.Connection = mysql2.Connection;
export type Connection = mysql2.Connection;

/** mysql2's parsed connection settings class. */
export const ConnectionConfig: new (options: mysql2.ConnectionOptions | string) => mysql2.ConnectionOptions = (
  mysql2 as unknown as { ConnectionConfig: new (options: mysql2.ConnectionOptions | string) => mysql2.ConnectionOptions }
).ConnectionConfig;
export type ConnectionConfig = mysql2.ConnectionConfig;

/** mysql2's Query command factory (builds a command; sends nothing). */
export const createQuery: typeof mysql2.Connection.createQuery = mysql2.Connection.createQuery;

/** mysql2's MySQL protocol server (no pool involved). */
export const createServer: typeof mysql2.createServer = mysql2.createServer;

/** mysql2's authentication plugins. */
export const authPlugins: typeof mysql2.authPlugins = mysql2.authPlugins;
