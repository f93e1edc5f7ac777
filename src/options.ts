/**
 * Pool options: mysql2's PoolOptions plus rollback-pool's own, validated once
 * at `createPool` so that a typo or a wrong type fails loudly and early
 * (mysql2 only warns on the console, or silently coerces).
 */
import * as mysql2 from 'mysql2';
import type { ConnectionOptions, PoolOptions as Mysql2PoolOptions } from 'mysql2';
import { InvalidOptionError } from './errors';

/** When the ROLLBACK of an abandoned transaction runs. */
export type CleanupMode = 'release' | 'checkout';

/**
 * mysql2's `resetOnRelease` (`true`: COM_RESET_CONNECTION on every release;
 * `false`: never), plus `'whenDirty'`: only the sessions whose state changed.
 */
export type ResetOnRelease = boolean | 'whenDirty';

/** rollback-pool's own options, on top of mysql2's. */
export interface RollbackPoolOwnOptions {
  /**
   * `'whenDirty'`: reset (COM_RESET_CONNECTION) exactly the connections whose
   * session state changed (user variables, `SET SESSION`, temporary tables,
   * `GET_LOCK`, `LOCK TABLES`...) before their next lease, in the background;
   * clean ones cost nothing. `true`/`false` as in mysql2. Default false.
   */
  resetOnRelease?: ResetOnRelease;
  /**
   * Statements that define every connection's baseline (`SET time_zone = '+00:00'`,
   * `SET SESSION sql_mode = ...`): run on each new connection and again after
   * every reset, never counted as dirty. Use this, not a `connection` listener,
   * with `resetOnRelease`.
   */
  initSql?: string | readonly string[];
  /**
   * When the pending ROLLBACK of a connection released inside a transaction runs.
   * `'release'` (default): at once, in the background, so its locks are freed
   * within about one round trip. `'checkout'`: lazily, before the connection's
   * next checkout (the sqlx / deadpool behaviour).
   */
  cleanup?: CleanupMode;
  /**
   * A pending ROLLBACK slower than this destroys the connection; it also bounds
   * the `KILL QUERY` of a callback transaction's `onTimeout: 'kill'`. Default 5000.
   */
  rollbackTimeoutMs?: number;
  /** A checkout that waits longer rejects with `ERR_ACQUIRE_TIMEOUT`. Default 10000. */
  acquireTimeoutMs?: number;
  /**
   * How long `end()` lets statements already sent finish before it kills
   * them on the server (`KILL CONNECTION`). Default 5000.
   */
  endTimeoutMs?: number;
  /** Emit `leak` for a lease held longer than this. Default 0 (off). */
  leakDetectionMs?: number;
  /** Record where leases and transactions were taken, for the `abandon` and `leak` events. Default false. */
  captureStacks?: boolean;
  /**
   * The table where two-phase request scopes record their commit decisions
   * (`table` or `database.table`). Created the first time it is found missing
   * (which needs the CREATE privilege); a table created beforehand needs only
   * SELECT, INSERT and DELETE. Default `'rollback_pool_xa_log'`.
   */
  xaLogTable?: string;
  /**
   * Capture the GTID of every commit from the OK packet (MariaDB's
   * `session_track_system_variables` with `last_gtid`, enabled on each new
   * connection by one `SET` queued with its connect-time query: nothing per
   * statement): `tx.gtid` after `commit()`, `pool.lastGtid`. Set by
   * `createReplicaPool` on its primary. Default false (nothing is asked or read).
   */
  trackGtid?: boolean;
  /**
   * This pool's connections never run a statement that is not provably
   * read-only (a plain SELECT; see the README's "Read replicas"): it is
   * refused with `ERR_REPLICA_WRITE` before it reaches the server, and each
   * connection also runs `SET SESSION TRANSACTION READ ONLY`. For pools on
   * replicas, where a privileged user's write would succeed and break
   * replication. Set by `createReplicaPool` on its replica pools. Default false.
   */
  refuseWrites?: boolean;
}

/** Everything `createPool` accepts: mysql2's PoolOptions plus ours. */
export interface PoolOptions extends Omit<Mysql2PoolOptions, 'resetOnRelease'>, RollbackPoolOwnOptions {}

/** Options after validation, with every default filled in. */
export interface ResolvedOptions {
  readonly connection: ConnectionOptions;
  /** mysql2's parsed connection config: escaping settings, trace, namedPlaceholders. */
  readonly connectionConfig: ParsedConnectionConfig;
  readonly connectionLimit: number;
  readonly queueLimit: number;
  readonly waitForConnections: boolean;
  readonly maxIdle: number;
  readonly idleTimeout: number;
  readonly resetOnRelease: ResetOnRelease;
  /** Baseline statements, run at connect and after every reset. */
  readonly initSql: readonly string[];
  /** mysql2's `gracefulEnd`: idle connections evicted with COM_QUIT (else destroyed), and `end()` on a lease closes its connection. */
  readonly gracefulEnd: boolean;
  /** Options mysql2 knows but ignores (mysql's legacy keys), each with what was done about it; warned about once per pool. */
  readonly legacyKeys: readonly string[];
  readonly cleanup: CleanupMode;
  readonly rollbackTimeoutMs: number;
  readonly acquireTimeoutMs: number;
  readonly endTimeoutMs: number;
  readonly leakDetectionMs: number;
  readonly captureStacks: boolean;
  /** Escaped for SQL (`\`db\`.\`table\``). */
  readonly xaLogTable: string;
  readonly trackGtid: boolean;
  readonly refuseWrites: boolean;
}

/** The parts of mysql2's parsed ConnectionConfig we read (its typings declare only an interface). */
export interface ParsedConnectionConfig {
  readonly stringifyObjects: boolean;
  readonly timezone: string;
  readonly trace: boolean;
}
const { ConnectionConfig } = mysql2 as unknown as {
  ConnectionConfig: {
    new (options: ConnectionOptions): ParsedConnectionConfig;
    parseUrl(url: string): Record<string, unknown>;
  };
};

/** mysql2 treats connectionLimit 0 as "no limit"; generic-pool needs a number. */
const UNLIMITED = 2 ** 31 - 1;

const OWN_KEYS = new Set(['initSql', 'cleanup', 'rollbackTimeoutMs', 'acquireTimeoutMs', 'endTimeoutMs', 'leakDetectionMs', 'captureStacks', 'xaLogTable',
  'trackGtid', 'refuseWrites']);
/**
 * Options of mysql (mysqljs) that mysql2 does not implement but accepts with a
 * console warning, so code written for mysql (and TypeORM, which passes
 * `acquireTimeout`) keeps starting. We accept them too, with one warning per
 * pool; `acquireTimeout` meant the same as our `acquireTimeoutMs` and is used as such.
 */
const LEGACY_KEYS: Readonly<Record<string, string>> = {
  acquireTimeout: 'used as acquireTimeoutMs',
  localInfile: 'ignored (mysql2 reads LOAD DATA LOCAL files through infileStreamFactory)',
  timeout: 'ignored (a per-query option in mysql; pass it to query() instead)',
  reconnect: 'ignored (a pool replaces lost connections by itself)',
};
const POOL_KEYS = new Set(['connectionLimit', 'queueLimit', 'waitForConnections', 'maxIdle', 'idleTimeout', 'resetOnRelease']);
/** mysql2's list of connection options (lib/connection_config.js), minus pool-only and internal keys. */
const CONNECTION_KEYS = new Set([
  'authPlugins', 'authSwitchHandler', 'bigNumberStrings', 'charset', 'charsetNumber', 'compress',
  'connectAttributes', 'connectTimeout', 'database', 'dateStrings', 'debug', 'decimalNumbers',
  'enableKeepAlive', 'flags', 'host', 'insecureAuth', 'infileStreamFactory', 'keepAliveInitialDelay',
  'localAddress', 'maxPreparedStatements', 'multipleStatements', 'namedPlaceholders', 'nestTables',
  'password', 'password1', 'password2', 'password3', 'passwordSha1', 'port', 'queryFormat',
  'rowsAsArray', 'socketPath', 'ssl', 'stream', 'stringifyObjects', 'supportBigNumbers', 'timezone',
  'trace', 'typeCast', 'uri', 'user', 'disableEval', 'enableCleartextPlugin', 'jsonStrings',
  'gracefulEnd', 'Promise',
]);

type Bag = Record<string, unknown>;

/**
 * mysql2's `Promise` option (a promise class to use instead of the native
 * one). Every promise rollback-pool returns is a native Promise, so only the
 * native class is accepted; any other throws rather than being ignored.
 */
export function checkPromiseOption(value: unknown): void {
  if (value !== undefined && value !== Promise) {
    throw new InvalidOptionError('Promise', "the native Promise (rollback-pool's promises are native Promises; another Promise class is not supported)");
  }
}

function integer(bag: Bag, key: string, fallback: number, min: number): number {
  const value = bag[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(key, `an integer >= ${min}`);
  }
  return value;
}

function boolean(bag: Bag, key: string, fallback: boolean): boolean {
  const value = bag[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(key, 'true or false');
  return value;
}

/** Parses a mysql:// URL without ever echoing it (it may hold a password). */
function parseUri(uri: string): Bag {
  // Any other scheme is a mistake (e.g. 'user:secret@host' parses with scheme 'user:').
  if (!/^(mysql|mariadb):\/\//i.test(uri)) {
    throw new InvalidOptionError('uri', 'a URL such as mysql://user:password@host:3306/database');
  }
  try {
    const parsed = ConnectionConfig.parseUrl(uri) as Bag;
    // A URL without a port parses to NaN: let mysql2 apply its default.
    if (Number.isNaN(parsed.port)) delete parsed.port;
    return parsed;
  } catch {
    throw new InvalidOptionError('uri', 'a URL such as mysql://user:password@host:3306/database');
  }
}

/** Validates `createPool`'s argument and fills in the defaults. Throws `ERR_INVALID_OPTION`. */
export function resolveOptions(input: PoolOptions | string): ResolvedOptions {
  let bag: Bag;
  if (typeof input === 'string') bag = parseUri(input);
  else if (input !== null && typeof input === 'object') bag = { ...input };
  else throw new InvalidOptionError('options', 'an options object or a mysql:// URL string');
  if (typeof bag.uri === 'string') bag = { ...parseUri(bag.uri), ...withoutUndefined(bag), uri: undefined };

  checkPromiseOption(bag.Promise);
  const connection: Bag = {};
  const legacyKeys: string[] = [];
  for (const key of Object.keys(bag)) {
    if (OWN_KEYS.has(key) || POOL_KEYS.has(key)) continue;
    if (Object.hasOwn(LEGACY_KEYS, key)) {
      if (bag[key] !== undefined) legacyKeys.push(key);
      continue;
    }
    if (!CONNECTION_KEYS.has(key)) throw new InvalidOptionError(key, 'no such option (check its spelling)');
    if (bag[key] !== undefined) connection[key] = bag[key];
  }
  const port = connection.port;
  const portOk =
    port === undefined ||
    (typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536) ||
    (typeof port === 'string' && /^\d+$/.test(port));
  if (!portOk) throw new InvalidOptionError('port', 'a TCP port number');

  const limit = integer(bag, 'connectionLimit', 10, 0);
  const connectionLimit = limit === 0 ? UNLIMITED : limit;
  const cleanup = bag.cleanup ?? 'release';
  if (cleanup !== 'release' && cleanup !== 'checkout') throw new InvalidOptionError('cleanup', "'release' or 'checkout'");

  let connectionConfig: ParsedConnectionConfig;
  try {
    connectionConfig = new ConnectionConfig(connection as ConnectionOptions);
  } catch (error) {
    // mysql2's messages name the option (unknown charset, ssl profile); they hold no secret.
    throw new InvalidOptionError('connection options', (error as Error).message);
  }

  const acquireTimeoutMs = integer(bag, 'acquireTimeoutMs', legacyAcquireTimeout(bag) ?? 10_000, 1);
  const trackGtid = boolean(bag, 'trackGtid', false);
  const refuseWrites = boolean(bag, 'refuseWrites', false);
  // COM_RESET_CONNECTION puts every session variable back to its default: GTID tracking and READ ONLY would be lost.
  return {
    connection: connection as ConnectionOptions,
    connectionConfig,
    connectionLimit,
    queueLimit: integer(bag, 'queueLimit', 0, 0),
    waitForConnections: boolean(bag, 'waitForConnections', true),
    maxIdle: Math.min(integer(bag, 'maxIdle', connectionLimit, 0), connectionLimit),
    idleTimeout: integer(bag, 'idleTimeout', 60_000, 1),
    resetOnRelease: resetMode(bag),
    initSql: statements(bag, 'initSql'),
    gracefulEnd: boolean(bag, 'gracefulEnd', false),
    legacyKeys: legacyKeys.map((key) => `${key}: ${LEGACY_KEYS[key]}${key === 'acquireTimeout' && bag.acquireTimeoutMs !== undefined ? ' (but acquireTimeoutMs is set and wins)' : ''}`),
    cleanup,
    rollbackTimeoutMs: integer(bag, 'rollbackTimeoutMs', 5_000, 1),
    acquireTimeoutMs,
    endTimeoutMs: integer(bag, 'endTimeoutMs', 5_000, 1),
    leakDetectionMs: integer(bag, 'leakDetectionMs', 0, 0),
    captureStacks: boolean(bag, 'captureStacks', false),
    xaLogTable: tableName(bag, 'xaLogTable', 'rollback_pool_xa_log'),
    trackGtid,
    refuseWrites,
  };
}

function resetMode(bag: Bag): ResetOnRelease {
  const value = bag.resetOnRelease;
  if (value === undefined) return false;
  if (typeof value !== 'boolean' && value !== 'whenDirty') throw new InvalidOptionError('resetOnRelease', "true, false or 'whenDirty'");
  return value;
}

function statements(bag: Bag, key: string): readonly string[] {
  const value = bag[key];
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((sql) => typeof sql !== 'string' || sql.trim() === '')) {
    throw new InvalidOptionError(key, 'an SQL statement or an array of them');
  }
  return Object.freeze([...(list as string[])]);
}

/** mysql's `acquireTimeout` (ms; 0 meant no limit), as our `acquireTimeoutMs`. */
function legacyAcquireTimeout(bag: Bag): number | undefined {
  const value = bag.acquireTimeout;
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new InvalidOptionError('acquireTimeout', 'an integer >= 0 (milliseconds)');
  return value === 0 ? MAX_TIMER_MS : value;
}

/** The longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A table name, `table` or `database.table`, of plain identifier characters; returned escaped. */
function tableName(bag: Bag, key: string, fallback: string): string {
  const value = bag[key] ?? fallback;
  if (typeof value !== 'string' || !/^[A-Za-z0-9_$]{1,64}(\.[A-Za-z0-9_$]{1,64})?$/.test(value)) {
    throw new InvalidOptionError(key, "a table name such as 'rollback_pool_xa_log' or 'db.rollback_pool_xa_log'");
  }
  return value
    .split('.')
    .map((part) => mysql2.escapeId(part))
    .join('.');
}

function withoutUndefined(bag: Bag): Bag {
  const out: Bag = {};
  for (const [key, value] of Object.entries(bag)) if (value !== undefined) out[key] = value;
  return out;
}
