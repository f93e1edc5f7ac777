/**
 * `rollback-pool/sequelize`: runs Sequelize v6 (dialect `mysql`) on
 * rollback-pool pools, so that a transaction Sequelize's user walks away from
 * is rolled back before its connection serves anyone else.
 *
 * Sequelize pools standalone mysql2 connections itself (sequelize-pool), so
 * no pool can be slipped under it through `dialectModule`. `useRollbackPool`
 * replaces the connection manager's pool instead: every checkout Sequelize
 * makes is a lease of a rollback-pool `Pool`, and the connection Sequelize
 * holds is that lease's callback face (`lease.connection`: mysql2's callback
 * API, fenced and tracked).
 *
 * ```ts
 * import { Sequelize } from 'sequelize';
 * import { useRollbackPool } from 'rollback-pool/sequelize';
 *
 * const sequelize = new Sequelize('mysql://root@127.0.0.1:3306/test', { dialect: 'mysql', pool: { max: 10 } });
 * const { pool } = useRollbackPool(sequelize, { transactionTimeoutMs: 30_000 });
 * pool.on('abandon', ({ threadId, reason }) => console.warn(`connection ${threadId}: transaction abandoned (${reason}), rolled back`));
 * ```
 *
 * @module rollback-pool/sequelize
 */
import type { Sequelize } from 'sequelize';
import { InvalidOptionError, RollbackPoolError, UnsupportedDialectError, UnsupportedVersionError } from '../errors';
import { createPool } from '../index';
import type { PoolOptions, RollbackPoolOwnOptions } from '../options';
import { CallbackConnection } from '../pool/callback';
import type { PoolConnection } from '../pool/lease';
import type { Pool } from '../pool/pool';
import {
  SUPPORTED_SEQUELIZE_VERSIONS,
  isSupportedVersion,
  versionOf,
  type AcquireOptions,
  type ManagerClass,
  type ManagerInternals,
  type SequelizeClass,
  type SequelizeInternals,
  type SequelizePoolConfig,
  type SequelizePoolInternals,
  type SequelizeServerConfig,
} from './internals';

export { SUPPORTED_SEQUELIZE_VERSIONS } from './internals';
export { InvalidOptionError, UnsupportedDialectError, UnsupportedVersionError } from '../errors';

/**
 * `useRollbackPool`'s options: rollback-pool's own pool options, the pool
 * settings that override what is derived from Sequelize's `pool` option,
 * and `transactionTimeoutMs`.
 */
export interface SequelizePoolOptions
  extends RollbackPoolOwnOptions,
    Pick<PoolOptions, 'connectionLimit' | 'queueLimit' | 'waitForConnections' | 'maxIdle' | 'idleTimeout' | 'gracefulEnd'> {
  /**
   * A Sequelize transaction (`sequelize.transaction()`) still holding its
   * connection this many milliseconds after it began is abandoned: rolled
   * back at once (abandon reason `'timeout'`), its connection back in the
   * pool, and its later statements, `commit()` included, fail with
   * `ERR_LEASE_RELEASED` (wrapped by Sequelize in a `SequelizeDatabaseError`).
   * Default 0: off; a transaction whose owner forgot `t.rollback()` is then
   * rolled back when its `Transaction` object is garbage collected.
   */
  transactionTimeoutMs?: number;
}

/** What `useRollbackPool` returns: the pools Sequelize now runs on (for events, `stats()`). */
export interface SequelizeRollbackPools {
  /** The pool of every statement (with `replication`: of the writes, and of reads forced to the writer with `useMaster`). */
  readonly pool: Pool;
  /** With `replication`: one pool per `replication.read` entry, in that order, taken in turn. Empty without. */
  readonly readPools: readonly Pool[];
}

/** Keys `useRollbackPool` accepts in its options. */
const OPTION_KEYS: ReadonlySet<string> = new Set([
  'resetOnRelease', 'initSql', 'cleanup', 'rollbackTimeoutMs', 'acquireTimeoutMs', 'endTimeoutMs', 'leakDetectionMs',
  'captureStacks', 'xaLogTable', 'connectionLimit', 'queueLimit', 'waitForConnections', 'maxIdle', 'idleTimeout',
  'gracefulEnd', 'transactionTimeoutMs',
]);

/** Sequelize hooks that run around the physical connections, which the pool makes itself. */
const CONNECTION_HOOKS = ['beforeConnect', 'afterConnect', 'beforeDisconnect', 'afterDisconnect'] as const;

/** Marks a connection manager already given to `useRollbackPool`. */
const INSTALLED = Symbol('rollback-pool/sequelize');

/**
 * Makes `sequelize` take its connections from rollback-pool pools, built from
 * its own settings: `host`, `port`, `username`, `password`, `database`,
 * `dialectOptions` and the mysql2 options Sequelize's mysql dialect sets
 * (its `typeCast`, `timezone`, `flags: '-FOUND_ROWS'`, `supportBigNumbers`,
 * `bigNumberStrings: false`); its `SET time_zone` is the pools' `initSql`;
 * `pool.max` becomes `connectionLimit`, `pool.acquire` `acquireTimeoutMs`,
 * `pool.idle` `idleTimeout`; with `replication`, one pool for the writer
 * and one per reader. `options` (rollback-pool's own, and overrides of the
 * pool settings) apply to every pool. Call it right after `new Sequelize()`,
 * before any query; `sequelize.close()` ends the pools.
 *
 * Throws, changing nothing: `ERR_UNSUPPORTED_VERSION` on a Sequelize outside
 * {@link SUPPORTED_SEQUELIZE_VERSIONS}, `ERR_UNSUPPORTED_DIALECT` on a dialect
 * other than `mysql`, `ERR_INVALID_OPTION` on a bad option, connection hooks
 * (`beforeConnect`...), an instance that already opened a connection or was
 * already given to `useRollbackPool`.
 */
export function useRollbackPool(sequelize: Sequelize, options: SequelizePoolOptions = {}): SequelizeRollbackPools {
  const instance = sequelize as unknown as SequelizeInternals;
  const manager = checkInstance(instance);
  const { transactionTimeoutMs, own } = checkOptions(options);
  const binding = new SequelizeBinding(instance, manager, own, transactionTimeoutMs);
  install(manager, binding);
  return { pool: binding.writer, readPools: binding.readers };
}

/** Refuses what the adapter cannot run, before anything is changed. Returns the connection manager. */
function checkInstance(instance: SequelizeInternals): ManagerInternals {
  if (instance === null || typeof instance !== 'object' || typeof instance.runHooks !== 'function') {
    throw new InvalidOptionError('sequelize', 'a Sequelize instance (new Sequelize(...))');
  }
  const version = versionOf(instance.constructor as Partial<SequelizeClass>);
  if (!isSupportedVersion(version)) throw new UnsupportedVersionError('sequelize', version, SUPPORTED_SEQUELIZE_VERSIONS);
  const dialect = String(instance.options.dialect);
  if (dialect !== 'mysql') {
    throw new UnsupportedDialectError(
      'Sequelize',
      dialect,
      dialect === 'mariadb'
        ? "Sequelize's mariadb dialect drives the mariadb connector, not mysql2. Use dialect: 'mysql' (mysql2), which runs on MariaDB servers too."
        : "rollback-pool is a mysql2 pool: use Sequelize's 'mysql' dialect (MySQL or MariaDB servers).",
    );
  }
  const manager = instance.connectionManager;
  if (manager === undefined || manager !== instance.dialect?.connectionManager || typeof manager.getConnection !== 'function') {
    throw new UnsupportedVersionError('sequelize', `${version} (no connection manager where Sequelize 6 keeps it)`, SUPPORTED_SEQUELIZE_VERSIONS);
  }
  if ((manager as unknown as Record<symbol, unknown>)[INSTALLED] !== undefined) {
    throw new InvalidOptionError('sequelize', 'a Sequelize instance not given to useRollbackPool yet (it was already)');
  }
  for (const hook of CONNECTION_HOOKS) {
    if (instance.hasHook(hook)) {
      throw new InvalidOptionError(
        `hooks.${hook}`,
        `no ${hook} hook: rollback-pool opens and closes the connections itself and never runs it ` +
          '(statements for every new connection go in the initSql option of useRollbackPool)',
      );
    }
  }
  if (openedConnections(manager.pool as SequelizePoolInternals | undefined) > 0) {
    throw new InvalidOptionError(
      'sequelize',
      'a Sequelize instance that has not opened a connection yet: call useRollbackPool(sequelize) right after new Sequelize(), before any query (sequelize.authenticate() included)',
    );
  }
  return manager;
}

/** How many connections Sequelize's own pool (one sequelize-pool Pool, or read + write) has opened. */
function openedConnections(pool: SequelizePoolInternals | undefined): number {
  if (pool === undefined || pool === null) return 0;
  return (pool.size ?? 0) + (pool.read?.size ?? 0) + (pool.write?.size ?? 0);
}

function checkOptions(options: SequelizePoolOptions): { transactionTimeoutMs: number; own: Record<string, unknown> } {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'an options object');
  const own: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new InvalidOptionError(key, 'an option of useRollbackPool (connection settings come from the Sequelize options)');
    }
    if (key !== 'transactionTimeoutMs' && value !== undefined) own[key] = value;
  }
  const timeout = options.transactionTimeoutMs ?? 0;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0 || timeout > 2 ** 31 - 1) {
    throw new InvalidOptionError('transactionTimeoutMs', 'an integer >= 0 (milliseconds; 0: off)');
  }
  return { transactionTimeoutMs: timeout, own };
}

/** The pools of one Sequelize instance, and what its connection manager's replacements do. */
class SequelizeBinding {
  readonly writer: Pool;
  readonly readers: readonly Pool[];
  private nextReader = 0;
  /** Transaction connections' timers (`transactionTimeoutMs`), by the connection Sequelize holds. Weak: never keeps one alive. */
  private readonly timers = new WeakMap<CallbackConnection, NodeJS.Timeout>();
  private versionDetection: Promise<void> | undefined;
  private ending: Promise<void> | undefined;

  constructor(
    private readonly sequelize: SequelizeInternals,
    private readonly manager: ManagerInternals,
    own: Record<string, unknown>,
    private readonly transactionTimeoutMs: number,
  ) {
    const config = manager.config;
    const base = this.poolSettings(config.pool, own);
    const replication = config.replication;
    if (replication) {
      const reads = Array.isArray(replication.read) ? replication.read : [replication.read];
      this.writer = createPool(this.serverOptions(replication.write, base));
      const readers: Pool[] = [];
      try {
        for (const read of reads) readers.push(createPool(this.serverOptions(read, base)));
      } catch (error) {
        // A bad reader setting: close what was made (nothing has connected yet).
        void this.writer.end();
        for (const pool of readers) void pool.end();
        throw error;
      }
      this.readers = Object.freeze(readers);
    } else {
      this.writer = createPool(this.serverOptions(config, base));
      this.readers = Object.freeze([]);
    }
  }

  /** The pool a checkout goes to: Sequelize's own rule (a `SELECT` without `useMaster` reads from a replica). */
  private route(options: AcquireOptions): Pool {
    const readers = this.readers;
    if (readers.length === 0 || options.type !== 'SELECT' || options.useMaster === true) return this.writer;
    const pool = readers[this.nextReader % readers.length] as Pool;
    this.nextReader = (this.nextReader + 1) % readers.length;
    return pool;
  }

  /**
   * `connectionManager.getConnection(options)`: Sequelize's steps (server
   * version read once, `beforePoolAcquire`, checkout, `afterPoolAcquire`),
   * the checkout a lease of our pool. A full pool's timeout is Sequelize's
   * `ConnectionAcquireTimeoutError`; a failed connect, Sequelize's
   * `ConnectionRefusedError`, `AccessDeniedError`... as its own connect maps them.
   */
  async getConnection(options: AcquireOptions = {}): Promise<CallbackConnection> {
    if (this.sequelize.options.databaseVersion === 0) await this.detectVersion();
    await this.sequelize.runHooks('beforePoolAcquire', options);
    const lease = await this.checkout(options);
    const connection = lease.connection;
    if (options.uuid !== undefined && this.transactionTimeoutMs > 0) this.watchTransaction(lease);
    try {
      await this.sequelize.runHooks('afterPoolAcquire', connection, options);
    } catch (error) {
      this.releaseConnection(connection); // Sequelize's own pool would keep it borrowed for good
      throw error;
    }
    return connection;
  }

  /** A lease of the pool Sequelize's rule picks, a failure to get one as Sequelize's error. */
  async checkout(options: AcquireOptions): Promise<PoolConnection> {
    try {
      return await this.route(options).getConnection();
    } catch (error) {
      throw this.connectError(error);
    }
  }

  /** `connectionManager.releaseConnection`: the lease goes back; a transaction left open on it is rolled back first. */
  releaseConnection(connection: object): void {
    if (!(connection instanceof CallbackConnection)) return;
    this.unwatch(connection);
    connection.release();
  }

  /** `connectionManager.destroyConnection` (Sequelize's reaction to a failed COMMIT or ROLLBACK): the connection is closed. */
  async destroyConnection(connection: object): Promise<void> {
    if (!(connection instanceof CallbackConnection)) return;
    this.unwatch(connection);
    connection.destroy();
  }

  /** `sequelize.close()`: ends every pool (graceful: what was sent finishes, what was left open is rolled back). */
  end(): Promise<void> {
    this.ending ??= Promise.all([this.writer, ...this.readers].map((pool) => pool.end())).then(() => undefined);
    return this.ending;
  }

  /** Counts for code that reads sequelize-pool's `size` / `available` / `using` / `waiting`. */
  count(what: 'total' | 'idle' | 'leased' | 'waiting'): number {
    let sum = 0;
    for (const pool of [this.writer, ...this.readers]) sum += pool.stats()[what];
    return sum;
  }

  /** The server's version, read once on a connection of the writer, as Sequelize does before its first checkout. */
  private detectVersion(): Promise<void> {
    this.versionDetection ??= (async () => {
      const lease = await this.checkout({});
      try {
        if (this.sequelize.options.databaseVersion !== 0) return;
        const logging = Object.assign(() => undefined, { __testLoggingFn: true });
        const version = await this.sequelize.databaseVersion({ transaction: { connection: lease.connection }, logging });
        const coerced = /(\d+)\.(\d+)\.(\d+)/.exec(String(version))?.slice(1, 4).map(Number).join('.');
        const options = this.sequelize.options as { databaseVersion?: unknown };
        options.databaseVersion = coerced ?? this.sequelize.dialect?.defaultVersion;
      } finally {
        lease.release();
      }
    })().finally(() => {
      this.versionDetection = undefined;
    });
    return this.versionDetection;
  }

  /** What Sequelize's mysql dialect would have thrown for this failure (its connect's mapping). */
  private connectError(error: unknown): unknown {
    const errors = this.sequelize.constructor as unknown as SequelizeClass;
    if (error instanceof RollbackPoolError) {
      return error.code === 'ERR_ACQUIRE_TIMEOUT' ? new errors.ConnectionAcquireTimeoutError(error) : error;
    }
    if (!(error instanceof Error)) return error;
    switch ((error as { code?: unknown }).code) {
      case 'ECONNREFUSED':
        return new errors.ConnectionRefusedError(error);
      case 'ER_ACCESS_DENIED_ERROR':
        return new errors.AccessDeniedError(error);
      case 'ENOTFOUND':
        return new errors.HostNotFoundError(error);
      case 'EHOSTUNREACH':
        return new errors.HostNotReachableError(error);
      case 'EINVAL':
        return new errors.InvalidConnectionError(error);
      default:
        return new errors.ConnectionError(error);
    }
  }

  /** `transactionTimeoutMs`: abandons the transaction's lease if it is still out by then. Holds the lease weakly. */
  private watchTransaction(lease: PoolConnection): void {
    const held = new WeakRef(lease);
    const timer = setTimeout(() => held.deref()?.abandon('timeout'), this.transactionTimeoutMs);
    timer.unref();
    this.timers.set(lease.connection, timer);
  }

  private unwatch(connection: CallbackConnection): void {
    const timer = this.timers.get(connection);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(connection);
  }

  /** Sequelize's `pool` settings as pool options, under our names; `own` wins. */
  private poolSettings(pool: SequelizePoolConfig, own: Record<string, unknown>): Record<string, unknown> {
    return {
      connectionLimit: sequelizeInteger(pool.max, 'pool.max', 0),
      acquireTimeoutMs: sequelizeInteger(pool.acquire, 'pool.acquire', 1),
      idleTimeout: sequelizeInteger(pool.idle, 'pool.idle', 1),
      ...own,
    };
  }

  /**
   * One server's pool options: what Sequelize's mysql dialect passes to
   * `mysql2.createConnection` (lib/dialects/mysql/connection-manager.js
   * `connect`), its `SET time_zone` as the first `initSql`, then the pool settings.
   */
  private serverOptions(server: SequelizeServerConfig, base: Record<string, unknown>): PoolOptions {
    const manager = this.manager;
    const typecast = (manager.constructor as ManagerClass)._typecast;
    if (typeof typecast !== 'function') {
      throw new UnsupportedVersionError('sequelize', `${versionOf(this.sequelize.constructor as Partial<SequelizeClass>)} (no ConnectionManager._typecast)`, SUPPORTED_SEQUELIZE_VERSIONS);
    }
    const timezone = this.sequelize.options.timezone;
    const connection: Record<string, unknown> = {
      host: server.host,
      port: server.port,
      user: server.username,
      flags: '-FOUND_ROWS',
      password: server.password ?? undefined,
      database: server.database,
      timezone,
      typeCast: typecast.bind(manager),
      bigNumberStrings: false,
      supportBigNumbers: true,
      ...server.dialectOptions,
    };
    const initSql = base.initSql === undefined ? [] : typeof base.initSql === 'string' ? [base.initSql] : (base.initSql as readonly string[]);
    const sequelizeSql = this.sequelize.config.keepDefaultTimezone ? [] : [`SET time_zone = '${sessionOffset(timezone)}'`];
    return { ...connection, ...base, initSql: [...sequelizeSql, ...initSql] } as PoolOptions;
  }
}

/** An integer setting of Sequelize's `pool` option, or `ERR_INVALID_OPTION` under its Sequelize name. */
function sequelizeInteger(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new InvalidOptionError(name, `an integer >= ${min}`);
  return value;
}

/**
 * The offset Sequelize sets as the session's `time_zone`: its `timezone`
 * option, a named zone (`'Europe/Paris'`) as its offset now (Sequelize uses
 * moment-timezone's `format('Z')` at each connect; here the pool is made).
 */
function sessionOffset(timezone: unknown): string {
  if (typeof timezone !== 'string') throw new InvalidOptionError('timezone', "an offset such as '+00:00' or a zone name such as 'Europe/Paris'");
  if (!timezone.includes('/')) return timezone.replace(/'/g, "''");
  let name: string | undefined;
  try {
    name = new Intl.DateTimeFormat('en-US', { timeZone: timezone, timeZoneName: 'longOffset' })
      .formatToParts(new Date())
      .find((part) => part.type === 'timeZoneName')?.value;
  } catch {
    throw new InvalidOptionError('timezone', "an offset such as '+00:00' or a zone name such as 'Europe/Paris'");
  }
  return /^GMT([+-]\d{2}:\d{2})$/.exec(name ?? '')?.[1] ?? '+00:00';
}

/** Replaces the connection manager's pool and the methods that use it, with own properties of the instance. */
function install(manager: ManagerInternals, binding: SequelizeBinding): void {
  const closed = async (): Promise<never> => {
    throw new Error('ConnectionManager.getConnection was called after the connection manager was closed!');
  };
  const replacements: Partial<ManagerInternals> & Record<symbol, unknown> = {
    [INSTALLED]: binding,
    getConnection: (options?: AcquireOptions) => binding.getConnection(options),
    releaseConnection: (connection: object) => binding.releaseConnection(connection),
    destroyConnection: (connection: object) => binding.destroyConnection(connection),
    close: () => {
      manager.getConnection = closed;
      return binding.end();
    },
    // Only Sequelize's constructor calls initPools (the pools are already made) and only its pool calls connect, disconnect and validate.
    initPools: () => undefined,
    connect: () => binding.checkout({}).then((lease) => lease.connection),
    disconnect: async (connection: object) => binding.releaseConnection(connection),
    validate: (connection: object) => connection instanceof CallbackConnection && !connection.promise().isReleased,
    // sequelize-pool's surface, for code that reaches for connectionManager.pool.
    pool: {
      acquire: (type?: string, useMaster?: boolean) => binding.getConnection(type === undefined ? {} : { type, useMaster: useMaster === true }),
      release: (connection: object) => binding.releaseConnection(connection),
      destroy: (connection: object) => binding.destroyConnection(connection),
      drain: async () => undefined,
      destroyAllNow: () => binding.end(),
      get size() {
        return binding.count('total');
      },
      get available() {
        return binding.count('idle');
      },
      get using() {
        return binding.count('leased');
      },
      get waiting() {
        return binding.count('waiting');
      },
    },
  };
  Object.defineProperties(manager, Object.getOwnPropertyDescriptors(replacements));
}
