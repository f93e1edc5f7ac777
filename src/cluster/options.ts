/**
 * Pool cluster options: mysql2's four and `clusterAware`, validated once at construction so that
 * a typo or a wrong value fails loudly (mysql2 reads them with `||`, so a 0
 * silently becomes the default, and an unknown selector only fails later
 * with a raw TypeError).
 */
import { InvalidOptionError } from '../errors';
import type { ClusterAwareness } from './node';

/**
 * How a namespace picks one of the online nodes its pattern matches
 * (case-insensitive, as mysql2):
 * - `RR`: round robin, one after the other (per namespace);
 * - `RANDOM`: any, at random;
 * - `ORDER`: the first one, in the order the nodes were added.
 */
export type PoolClusterSelector = 'RR' | 'RANDOM' | 'ORDER' | 'rr' | 'random' | 'order';

/** `createPoolCluster` options: mysql2's `PoolClusterOptions`. */
export interface PoolClusterOptions {
  /**
   * When a checkout fails on a node for a reason that lies with the node
   * (connect error, acquire timeout), try again on a node still online.
   * Default true.
   */
  canRetry?: boolean;
  /**
   * A node whose error count reaches this many is removed (or, with
   * `restoreNodeTimeout`, taken offline). Every failed checkout adds one,
   * every successful one takes one off. `0` is honoured (mysql2 makes it 5)
   * and, like `1`, takes the node out at its first failed checkout.
   * Default 5.
   */
  removeNodeErrorCount?: number;
  /**
   * `0` (default): a node taken out after errors is removed for good and its
   * pool ended. Above 0: it goes offline for this many milliseconds; after
   * that it is tried again, and back `online` at its first successful checkout.
   */
  restoreNodeTimeout?: number;
  /** The selector of `getConnection()` and of `of()` without one. Default `'RR'`. */
  defaultSelector?: PoolClusterSelector;
  /**
   * TypeORM's name for `defaultSelector` (its `replication.selector`, which
   * TypeORM passes here whole and mysql2 ignores): used when
   * `defaultSelector` is not given. TypeORM takes its slaves with
   * `getConnection('SLAVE*')`, so this picks among them.
   */
  selector?: PoolClusterSelector;
  /**
   * Watch nodes as members of a cluster that fails over (MariaDB Galera).
   * `'auto'` (default): each node's first connection asks the server
   * (`SHOW GLOBAL STATUS`); a Galera node is cluster-aware, any other keeps
   * mysql2's rules exactly (until that first connection, every node does).
   * `true`: every node is cluster-aware from the start (use it for Galera, so
   * that a node down when the application starts is handled the same way).
   * `false`: mysql2's rules only, and no check.
   *
   * A cluster-aware node: every new connection of its pool is checked (on
   * Galera `wsrep_ready = ON` and `wsrep_local_state = 4`, Synced) and refused
   * otherwise; a refused or lost connection, a failed check or a 1047 takes it
   * `offline` at once (whatever `removeNodeErrorCount` says), and it is
   * probed in the background (100 ms, then doubling up to `restoreNodeTimeout`,
   * or 1 s when that is 0) until it can serve: then `online`. It is never
   * removed for being down. Its other failures (access denied, an unknown
   * database) are counted as in mysql2.
   */
  clusterAware?: ClusterAwareness;
}

/** Cluster options after validation, defaults filled in. */
export interface ResolvedClusterOptions {
  /** Retry a failed checkout on another online node (see {@link PoolClusterOptions.canRetry}). */
  readonly canRetry: boolean;
  /** Errors at which a node is taken out (see {@link PoolClusterOptions.removeNodeErrorCount}). */
  readonly removeNodeErrorCount: number;
  /** Milliseconds a node stays offline; 0: removed for good (see {@link PoolClusterOptions.restoreNodeTimeout}). */
  readonly restoreNodeTimeout: number;
  /** The selector used when none is given, upper-cased. */
  readonly defaultSelector: SelectorName;
  /** Which nodes are cluster-aware (see {@link PoolClusterOptions.clusterAware}). */
  readonly clusterAware: ClusterAwareness;
}

/** The canonical (upper-case) selector names. */
export type SelectorName = 'RR' | 'RANDOM' | 'ORDER';

const SELECTORS: ReadonlySet<string> = new Set<SelectorName>(['RR', 'RANDOM', 'ORDER']);
const KEYS: ReadonlySet<string> = new Set(['canRetry', 'removeNodeErrorCount', 'restoreNodeTimeout', 'defaultSelector', 'selector', 'clusterAware']);
/**
 * TypeORM calls `createPoolCluster(options.replication)` with its whole
 * `replication` option: these keys are TypeORM's own (the nodes it then
 * `add()`s, its read routing), not cluster options, and are ignored.
 */
const TYPEORM_REPLICATION_KEYS: ReadonlySet<string> = new Set(['master', 'slaves', 'defaultMode']);

/** A selector name as mysql2 reads it (upper-cased), or `ERR_INVALID_OPTION` now rather than a TypeError later. */
export function selectorName(value: unknown, option: string): SelectorName {
  const name = typeof value === 'string' ? value.toUpperCase() : undefined;
  if (name === undefined || !SELECTORS.has(name)) throw new InvalidOptionError(option, "'RR', 'RANDOM' or 'ORDER'");
  return name as SelectorName;
}

/** Validates `createPoolCluster`'s argument and fills in mysql2's defaults. Throws `ERR_INVALID_OPTION`. */
export function resolveClusterOptions(input: PoolClusterOptions | undefined): ResolvedClusterOptions {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object') throw new InvalidOptionError('options', 'a PoolClusterOptions object');
  const bag = input as Record<string, unknown>;
  for (const key of Object.keys(bag)) {
    if (!KEYS.has(key) && !TYPEORM_REPLICATION_KEYS.has(key)) throw new InvalidOptionError(key, 'no such pool cluster option (check its spelling)');
  }
  const { canRetry = true, removeNodeErrorCount = 5, restoreNodeTimeout = 0, defaultSelector, selector, clusterAware = 'auto' } = bag;
  if (typeof canRetry !== 'boolean') throw new InvalidOptionError('canRetry', 'true or false');
  if (!isCount(removeNodeErrorCount)) throw new InvalidOptionError('removeNodeErrorCount', 'an integer >= 0');
  if (!isCount(restoreNodeTimeout)) throw new InvalidOptionError('restoreNodeTimeout', 'an integer >= 0 (milliseconds)');
  if (clusterAware !== true && clusterAware !== false && clusterAware !== 'auto') throw new InvalidOptionError('clusterAware', "true, false or 'auto'");
  return Object.freeze({
    canRetry,
    removeNodeErrorCount,
    restoreNodeTimeout,
    defaultSelector: defaultSelector !== undefined ? selectorName(defaultSelector, 'defaultSelector') : selector !== undefined ? selectorName(selector, 'selector') : 'RR',
    clusterAware,
  });
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
