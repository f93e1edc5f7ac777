/**
 * The SQL a transaction sends, built only from whitelisted options and depths:
 * no user string is ever spliced into a statement.
 */
import { InvalidOptionError } from '../errors';

/** The four SQL isolation levels. */
export type IsolationLevel = 'READ UNCOMMITTED' | 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

const ISOLATION_LEVELS: readonly IsolationLevel[] = ['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'];

/** How a top-level transaction begins. */
export interface BeginOptions {
  /** Isolation level of this transaction only (`SET TRANSACTION ISOLATION LEVEL ...`). */
  isolationLevel?: IsolationLevel;
  /** `START TRANSACTION READ ONLY`. */
  readOnly?: boolean;
  /** `START TRANSACTION WITH CONSISTENT SNAPSHOT`. */
  consistentSnapshot?: boolean;
}

const BEGIN_KEYS = new Set(['isolationLevel', 'readOnly', 'consistentSnapshot']);

/**
 * `begin()` takes only `BeginOptions`: a misspelt key would otherwise begin a
 * transaction without the characteristic the caller asked for.
 */
export function checkBeginKeys(options: BeginOptions | undefined): void {
  if (options === null || typeof options !== 'object') return; // beginStatements names that error
  for (const key of Object.keys(options)) {
    if (!BEGIN_KEYS.has(key)) throw new InvalidOptionError(key, 'no such begin() option (isolationLevel, readOnly, consistentSnapshot)');
  }
}

/** The usual case: no options. Shared, never modified. */
const PLAIN_BEGIN: readonly string[] = Object.freeze(['START TRANSACTION']);

/** The statements that begin a transaction, in order. Throws `ERR_INVALID_OPTION` before any SQL is sent. */
export function beginStatements(options?: BeginOptions): readonly string[] {
  if (options === undefined) return PLAIN_BEGIN;
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'an options object');
  const { isolationLevel, readOnly, consistentSnapshot } = options;
  if (isolationLevel !== undefined && !ISOLATION_LEVELS.includes(isolationLevel)) {
    throw new InvalidOptionError('isolationLevel', `one of ${ISOLATION_LEVELS.map((l) => `'${l}'`).join(', ')}`);
  }
  if (readOnly !== undefined && typeof readOnly !== 'boolean') throw new InvalidOptionError('readOnly', 'true or false');
  if (consistentSnapshot !== undefined && typeof consistentSnapshot !== 'boolean') {
    throw new InvalidOptionError('consistentSnapshot', 'true or false');
  }
  const characteristics: string[] = [];
  if (consistentSnapshot) characteristics.push('WITH CONSISTENT SNAPSHOT');
  if (readOnly) characteristics.push('READ ONLY');
  const start = characteristics.length ? `START TRANSACTION ${characteristics.join(', ')}` : 'START TRANSACTION';
  return isolationLevel ? [`SET TRANSACTION ISOLATION LEVEL ${isolationLevel}`, start] : [start];
}

/** Savepoint names come from the nesting depth, never from user text. */
export function savepointName(depth: number): string {
  return `rp_${depth}`;
}
