/**
 * The parts of Sequelize v6 that `rollback-pool/sequelize` reads or replaces,
 * typed structurally (Sequelize's own typings declare none of them). Each is
 * the same in every version of `SUPPORTED_SEQUELIZE_VERSIONS`: the files they
 * come from (lib/dialects/abstract/connection-manager.js,
 * lib/dialects/mysql/connection-manager.js, lib/dialects/mysql/query.js,
 * lib/transaction.js, lib/hooks.js) are identical from 6.21.0 to 6.37.8, but
 * for the `beforePoolAcquire` / `afterPoolAcquire` hooks, new in 6.31.0 (the
 * adapter runs them; before 6.31 none can be registered for it to run), and
 * lib/sequelize.js differs there only in what the adapter does not touch.
 * 6.20 and older give a transaction's connection back differently (no
 * `destroyConnection`, no `forceCleanup`). Nothing here is imported from
 * Sequelize at run time.
 */
/** The versions whose internals the adapter was checked against (and tested on: both ends). */
export const SUPPORTED_SEQUELIZE_VERSIONS = '>=6.21.0 <6.38.0';

/** Sequelize's error classes, reached through the instance's own class (`sequelize.constructor`). */
type SequelizeErrorClass = new (parent: Error) => Error;

/** The Sequelize class (the instance's `constructor`): its version and its error classes. */
export interface SequelizeClass {
  readonly version?: unknown;
  readonly ConnectionError: SequelizeErrorClass;
  readonly ConnectionAcquireTimeoutError: SequelizeErrorClass;
  readonly ConnectionRefusedError: SequelizeErrorClass;
  readonly AccessDeniedError: SequelizeErrorClass;
  readonly HostNotFoundError: SequelizeErrorClass;
  readonly HostNotReachableError: SequelizeErrorClass;
  readonly InvalidConnectionError: SequelizeErrorClass;
}

/** One server's settings, as Sequelize keeps them (`config`, `config.replication.read[i]`, `.write`). */
export interface SequelizeServerConfig {
  host?: string;
  port?: number | string;
  username?: string;
  password?: string | null;
  database?: string;
  dialectOptions?: Record<string, unknown>;
}

/** Sequelize's `pool` option after the connection manager filled in its defaults. */
export interface SequelizePoolConfig {
  max: unknown;
  min: unknown;
  idle: unknown;
  acquire: unknown;
  evict?: unknown;
  maxUses?: unknown;
}

/** The connection manager's `config`: a deep copy of `sequelize.config`, pool defaults and replication filled in by `initPools()`. */
export interface ManagerConfig extends SequelizeServerConfig {
  pool: SequelizePoolConfig;
  replication?: false | { read: SequelizeServerConfig[]; write: SequelizeServerConfig } | null;
}

/** What Sequelize passes to `getConnection`: the query's options, or `{ uuid, type? }` from a Transaction. */
export interface AcquireOptions {
  /** `'SELECT'` for reads (and read-only transactions): these go to a read replica with replication. */
  type?: string;
  /** Reads forced to the writer. */
  useMaster?: boolean;
  /** Set by `Transaction.prepareEnvironment`: this checkout is a transaction's connection. */
  uuid?: string;
}

/** The `sequelize-pool` members Sequelize's connection manager keeps in `pool` (one Pool, or read + write). */
export interface SequelizePoolInternals {
  readonly size?: number;
  readonly read?: { readonly size?: number };
  readonly write?: { readonly size?: number };
}

/** Sequelize's mysql ConnectionManager (an instance): the methods the adapter replaces with own properties. */
export interface ManagerInternals {
  config: ManagerConfig;
  pool: unknown;
  getConnection(options?: AcquireOptions): Promise<object>;
  releaseConnection(connection: object): void;
  destroyConnection(connection: object): Promise<void>;
  close(): Promise<void>;
  initPools(): void;
  connect(config: SequelizeServerConfig): Promise<object>;
  disconnect(connection: object): Promise<void>;
  validate(connection: object): boolean;
}

/** The mysql ConnectionManager class: its typeCast, which reads Sequelize's parser store. */
export interface ManagerClass {
  readonly _typecast?: (this: ManagerInternals, field: unknown, next: () => unknown) => unknown;
}

/** A Sequelize instance, as the adapter sees it. */
export interface SequelizeInternals {
  readonly options: { dialect?: unknown; timezone?: unknown; databaseVersion?: unknown };
  readonly config: { keepDefaultTimezone?: unknown };
  readonly connectionManager?: ManagerInternals;
  readonly dialect?: { readonly defaultVersion?: unknown; readonly connectionManager?: ManagerInternals };
  hasHook(name: string): boolean;
  runHooks(name: string, ...args: unknown[]): Promise<void>;
  databaseVersion(options: object): Promise<unknown>;
}

/** Major, minor, patch of a plain release version (`6.37.8`), or undefined (pre-releases are not plain). */
function release(version: string): [number, number, number] | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

/** True when `version` is in `SUPPORTED_SEQUELIZE_VERSIONS`. */
export function isSupportedVersion(version: string): boolean {
  const parts = release(version);
  return parts !== undefined && parts[0] === 6 && parts[1] >= 21 && parts[1] < 38;
}

/** The version of the instance's own Sequelize (its class reads its own package.json), or `'unknown'`. */
export function versionOf(sequelizeClass: Partial<SequelizeClass> | undefined): string {
  try {
    const version = sequelizeClass?.version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
