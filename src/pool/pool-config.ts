/**
 * `pool.pool.config`: the pool's settings in the shape of mysql2's PoolConfig
 * (`connectionLimit`, `connectionConfig`, `waitForConnections`, `queueLimit`,
 * `maxIdle`, `idleTimeout`, `resetOnRelease`), read-only. Its
 * `connectionConfig` is a frozen copy of mysql2's parsed ConnectionConfig:
 * like mysql2's it holds the password (`config.connectionConfig.password`
 * reads it), but the secrets are not enumerable and `util.inspect` /
 * `JSON.stringify` show only where it connects.
 */
import type { ConnectionOptions } from 'mysql2';
import type { InspectOptions } from 'node:util';
import { describeConnection, inspectAs, inspectSymbol } from '../inspect';
import type { ResetOnRelease, ResolvedOptions } from '../options';

/** mysql2's PoolConfig, read-only. */
export interface PoolConfig {
  /** mysql2's parsed connection settings (a frozen copy; the password is readable but never printed). */
  readonly connectionConfig: Readonly<ConnectionOptions>;
  readonly waitForConnections: boolean;
  /** 0: no limit, as in mysql2. */
  readonly connectionLimit: number;
  readonly maxIdle: number;
  readonly idleTimeout: number;
  readonly queueLimit: number;
  /** mysql2's `true`/`false`, or ours: `'whenDirty'`. */
  readonly resetOnRelease: ResetOnRelease;
}

/** Connection settings that may hold a secret: readable, never enumerated or printed. */
const SECRET_KEYS = ['password', 'password1', 'password2', 'password3', 'passwordSha1', 'ssl', 'authPlugins', 'authSwitchHandler'];
/** What options.ts turns `connectionLimit: 0` (no limit) into. */
const UNLIMITED = 2 ** 31 - 1;

/** Builds the read-only PoolConfig of a pool; `pool` is what mysql2 puts in `connectionConfig.pool`. */
export function poolConfigOf(options: ResolvedOptions, pool: object): PoolConfig {
  const source = options.connectionConfig as unknown as Record<string, unknown>;
  const descriptors = Object.getOwnPropertyDescriptors(source);
  for (const key of SECRET_KEYS) {
    const descriptor = descriptors[key];
    if (descriptor) descriptor.enumerable = false;
  }
  for (const key of ['connectAttributes', 'ssl']) {
    const descriptor = descriptors[key];
    if (descriptor && isPlainObject(descriptor.value)) descriptor.value = Object.freeze({ ...descriptor.value });
  }
  const connectionConfig = Object.create(Object.getPrototypeOf(source), descriptors) as Record<string | symbol, unknown>;
  const summary = (): ReturnType<typeof describeConnection> => describeConnection(connectionConfig as ConnectionOptions);
  Object.defineProperties(connectionConfig, {
    pool: { value: pool, enumerable: false },
    toJSON: { value: summary, enumerable: false },
    [inspectSymbol]: { value: (_depth: number, opts: InspectOptions) => inspectAs('ConnectionConfig', summary(), opts), enumerable: false },
  });
  Object.freeze(connectionConfig);
  const unlimited = (n: number): number => (n >= UNLIMITED ? 0 : n);
  return Object.freeze({
    connectionConfig: connectionConfig as Readonly<ConnectionOptions>,
    waitForConnections: options.waitForConnections,
    connectionLimit: unlimited(options.connectionLimit),
    maxIdle: unlimited(options.maxIdle),
    idleTimeout: options.idleTimeout,
    queueLimit: options.queueLimit,
    resetOnRelease: options.resetOnRelease,
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}
