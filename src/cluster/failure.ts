/**
 * What an error says, for a pool cluster: about the node (is it down, or
 * not ready?), and about the work (could it have run, or committed?). Only
 * what the error proves counts: whatever might have committed is never sent
 * again.
 *
 * | error | the node | a transaction (`retries`) | an autocommit statement |
 * |---|---|---|---|
 * | connect refused / timed out / unreachable, server shutting down, `ERR_NODE_NOT_READY` | unavailable | nothing ran: re-run | nothing ran: goes elsewhere |
 * | 1047 (Galera: not synced with a primary component) | unavailable | refused: re-run | refused before it ran: goes elsewhere |
 * | connection lost (reset, closed, killed) before COMMIT was sent | checked at once (a dead node refuses the check) | rolled back with the connection: re-run | may have run: never re-sent |
 * | 1213 (deadlock, Galera certification failure), 1205 | fine | rolled back: re-run | rolled back: re-sent with `retries` |
 * | `ERR_COMMIT_OUTCOME_UNKNOWN` (connection lost during COMMIT, 1180) | fine | may have committed: never | - |
 * | anything else (the caller's own errors, 1062, timeouts...) | fine | thrown as it is | thrown as it is |
 *
 * A lost connection alone does not take a node offline: a `KILL`, a network
 * blip or a proxy's restart loses one connection of a healthy node. It makes
 * the cluster check the node at once, on a connection of its own (probe.ts,
 * `checkNow`): a node that is really down refuses it, and that does.
 */
import { RollbackPoolError } from '../errors';
import type { Transaction } from '../tx/transaction';

const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;
const ER_NODE_NOT_READY = 1047;

/** Connect-level codes that say the server is not there: nothing listens, nothing answers, it is shutting down. */
const NODE_DOWN_CODES = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ER_SERVER_SHUTDOWN']);

interface ErrorFields {
  code?: unknown;
  errno?: unknown;
  fatal?: unknown;
  message?: unknown;
  cause?: unknown;
}

function fields(error: unknown): ErrorFields {
  return typeof error === 'object' && error !== null ? (error as ErrorFields) : {};
}

/**
 * When `error` says the node cannot serve now (down, unreachable, not
 * synced), the reason in a few words; else undefined.
 */
export function unavailability(error: unknown): string | undefined {
  const e = fields(error);
  if (e.errno === ER_NODE_NOT_READY) return `1047 ${String(e.message)}`;
  if (error instanceof RollbackPoolError) {
    if (error.code === 'ERR_NODE_NOT_READY') return error.message;
    // No connection within acquireTimeoutMs because the connects fail: the node, not a busy pool.
    if (error.code === 'ERR_ACQUIRE_TIMEOUT' && error.cause !== undefined) return unavailability(error.cause);
    return undefined;
  }
  if (typeof e.code === 'string' && NODE_DOWN_CODES.has(e.code)) return typeof e.message === 'string' && e.message !== '' ? `${e.code} (${e.message})` : e.code;
  return undefined;
}

/** The connection itself went (reset, closed by the server, killed, destroyed), whatever the node's state. */
export function connectionLost(error: unknown): boolean {
  if (error instanceof RollbackPoolError) return error.code === 'ERR_CONNECTION_LOST';
  return fields(error).fatal === true;
}

/** An autocommit statement that failed this way never ran: it can go to another node. */
export function statementNeverRan(error: unknown): boolean {
  const e = fields(error);
  if (e.errno === ER_NODE_NOT_READY) return true;
  return error instanceof RollbackPoolError && error.code === 'ERR_CONNECTION_LOST' && (error as { neverSent?: boolean }).neverSent === true;
}

/** An autocommit statement that failed this way was rolled back by the server: it can be sent again (`retries`). */
export function statementRolledBack(error: unknown): boolean {
  return fields(error).errno === ER_LOCK_DEADLOCK;
}

/**
 * May a transaction callback that failed this way run again? Only when the
 * error proves that nothing of this attempt committed: the server rolled it
 * back (1213, 1205: the runner rolls back after a lock wait timeout), refused
 * it (1047), or its connection went before COMMIT was sent (the server rolls
 * back an open transaction when its connection goes), or no connection could
 * be had. Never after `ERR_COMMIT_OUTCOME_UNKNOWN`, nor once the attempt's
 * handle says it committed. `tx` is the attempt's handle, if `fn` started.
 */
export function provesNothingCommitted(error: unknown, tx: Transaction | undefined): boolean {
  if (error instanceof RollbackPoolError && error.code === 'ERR_COMMIT_OUTCOME_UNKNOWN') return false;
  if (tx !== undefined && (tx.state === 'committed' || tx.state === 'outcomeUnknown')) return false;
  const e = fields(error);
  if (e.errno === ER_LOCK_DEADLOCK || e.errno === ER_LOCK_WAIT_TIMEOUT || e.errno === ER_NODE_NOT_READY) return true;
  // Every node offline for now (quorum lost, all restarting): nothing ran; a later attempt may find one back.
  if (error instanceof RollbackPoolError && error.code === 'POOL_NONEONLINE') return true;
  return unavailability(error) !== undefined || connectionLost(error);
}

/** Full jitter: a random wait up to 20 ms, 40 ms, 80 ms... capped at 1 s (as the pool's own retries). */
export function retryDelayMs(attempt: number): number {
  return Math.random() * Math.min(1_000, 20 * 2 ** attempt);
}
