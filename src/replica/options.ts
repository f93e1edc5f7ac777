/**
 * Options of `createReplicaPool`, validated once (ERR_INVALID_OPTION), and
 * the pool options of its members: the primary's with `trackGtid`, each
 * replica's with `refuseWrites`.
 */
import { InvalidOptionError } from '../errors';
import type { PoolOptions } from '../options';

/** Whether reads through the pool wait for the pool's own commits on the replica. */
export type ReadYourWrites = 'pool' | 'none';

/** What `createReplicaPool` accepts. */
export interface ReplicaPoolOptions {
  /** The primary: options or a URL, as for `createPool`. Every write and every read that cannot go to a replica runs here. */
  primary: PoolOptions | string;
  /** The replicas (options or URLs, as for `createPool`), replicating from the primary with GTIDs. Reads are spread over the healthy ones, round robin. */
  replicas: Array<PoolOptions | string>;
  /**
   * `'pool'` (default): a read through this pool waits on its replica
   * (`MASTER_GTID_WAIT`) until that replica has applied the last commit this
   * pool made, and runs on the primary if that takes longer than
   * `waitTimeoutMs`. `'none'`: reads go to a replica as it is (maybe stale).
   */
  readYourWrites?: ReadYourWrites;
  /**
   * A replica further behind than this (measured from GTID positions, not
   * `Seconds_Behind_Master`) is taken out of rotation until it catches up.
   * Default 1000.
   */
  maxLagMs?: number;
  /** How long a read waits for the replica to apply the pool's last commit before it runs on the primary instead. Default: `maxLagMs`. */
  waitTimeoutMs?: number;
  /** How often each replica's health is checked (an unhealthy one is probed again sooner, with backoff). Default 1000. */
  healthCheckMs?: number;
}

/** `createReplicaPool`'s options after validation, defaults filled in (`replicaPool.options`). */
export interface ResolvedReplicaOptions {
  /** The primary's pool options, with `trackGtid: true`. */
  readonly primary: PoolOptions;
  /** Each replica's pool options, with `refuseWrites: true`. */
  readonly replicas: readonly PoolOptions[];
  readonly readYourWrites: ReadYourWrites;
  readonly maxLagMs: number;
  readonly waitTimeoutMs: number;
  readonly healthCheckMs: number;
}

const KEYS = new Set(['primary', 'replicas', 'readYourWrites', 'maxLagMs', 'waitTimeoutMs', 'healthCheckMs']);

export function resolveReplicaOptions(input: ReplicaPoolOptions): ResolvedReplicaOptions {
  if (input === null || typeof input !== 'object') throw new InvalidOptionError('options', 'an object with primary and replicas');
  for (const key of Object.keys(input)) {
    if (!KEYS.has(key)) throw new InvalidOptionError(key, 'no such replica pool option (primary, replicas, readYourWrites, maxLagMs, waitTimeoutMs, healthCheckMs)');
  }
  if (!Array.isArray(input.replicas) || input.replicas.length === 0) throw new InvalidOptionError('replicas', 'a non-empty array of pool options or URLs');
  const readYourWrites = input.readYourWrites ?? 'pool';
  if (readYourWrites !== 'pool' && readYourWrites !== 'none') throw new InvalidOptionError('readYourWrites', "'pool' or 'none'");
  const maxLagMs = positive(input.maxLagMs, 'maxLagMs', 1_000);
  return {
    primary: withFlag(input.primary, 'primary', 'trackGtid'),
    replicas: input.replicas.map((replica, i) => withFlag(replica, `replicas[${i}]`, 'refuseWrites')),
    readYourWrites,
    maxLagMs,
    waitTimeoutMs: positive(input.waitTimeoutMs, 'waitTimeoutMs', maxLagMs),
    healthCheckMs: positive(input.healthCheckMs, 'healthCheckMs', 1_000),
  };
}

/** The primary's read-only twin: where read-only leases go when no replica can take them. */
export function readOnlyPrimary(primary: PoolOptions): PoolOptions {
  return { ...primary, trackGtid: false, refuseWrites: true };
}

/** Pool options (or a URL) with one of our flags on; `createPool` validates the rest. */
function withFlag(options: PoolOptions | string, name: string, flag: 'trackGtid' | 'refuseWrites'): PoolOptions {
  if (typeof options === 'string') return { uri: options, [flag]: true };
  if (options === null || typeof options !== 'object') throw new InvalidOptionError(name, 'pool options or a mysql:// URL');
  return { ...options, [flag]: true };
}

function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new InvalidOptionError(name, 'an integer >= 1 (milliseconds)');
  return value;
}
