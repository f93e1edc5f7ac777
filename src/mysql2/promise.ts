/**
 * What `mysql2/promise` exports besides its pool, for `rollback-pool` (the
 * promise module) to be a drop-in for it: mysql2's lone connections and its
 * helpers. The pool classes are rollback-pool's own (`Pool`,
 * `PoolConnection`, also under mysql2's names `PromisePool`,
 * `PromisePoolConnection`, in src/index.ts).
 */
import * as mysql2Promise from 'mysql2/promise';

export * from './shared';

/**
 * mysql2's own `createConnection` (from `mysql2/promise`): one connection
 * outside any pool. **A lone connection has no pool**, so none of
 * rollback-pool's guarantees apply to it: a transaction left open on it stays
 * open (holding its locks) until you commit, roll back or end the connection,
 * and nothing is fenced. Use `createPool` for connections that can be
 * abandoned safely.
 */
export const createConnection: typeof mysql2Promise.createConnection = mysql2Promise.createConnection;

/** mysql2/promise's connection class: what `createConnection` resolves to (mysql2's own, not pooled). */
export const Connection: typeof mysql2Promise.Connection = mysql2Promise.Connection;
/** mysql2/promise's other name for `Connection`. */
export const PromiseConnection: typeof mysql2Promise.Connection = (mysql2Promise as unknown as { PromiseConnection: typeof mysql2Promise.Connection }).PromiseConnection;
/** mysql2/promise's connection class, as a type. */
export type Connection = mysql2Promise.Connection;
/** mysql2/promise's other name for `Connection`, as a type. */
export type PromiseConnection = mysql2Promise.Connection;
