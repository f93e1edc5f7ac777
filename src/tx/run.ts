/**
 * The callback runner (Diesel style): BEGIN, run `fn(tx)`, COMMIT if it
 * resolved, ROLLBACK if it threw, keeping both errors when the rollback fails
 * too. With `timeoutMs` or `signal` the caller's promise settles at once, the
 * transaction is fenced at once (the still running callback's later
 * statements reject and never reach the server), a statement in flight is
 * waited for, killed or cut off, and the rollback runs after it settles.
 */
import { InvalidOptionError, TransactionEndedByServerError, TransactionTimeoutError } from '../errors';
import type { AbandonReason } from '../pool/events';
import { ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, type StackHolder } from '../pool/session';
import type { BeginOptions } from './sql';
import { attach, type Transaction } from './transaction';

/** What to do with a statement still running when a transaction times out or is aborted. */
export type InFlightPolicy = 'wait' | 'kill' | 'destroy';

/** Options of `pool.transaction()`, `conn.transaction()`. */
export interface TransactionOptions extends BeginOptions {
  /** Reject with `ERR_TX_TIMEOUT` and roll back if the transaction is not done by then. */
  timeoutMs?: number;
  /** Abort: reject with the signal's reason and roll back. */
  signal?: AbortSignal;
  /**
   * A statement in flight at timeout/abort: `'kill'` (default) sends `KILL QUERY`
   * over a separate connection; `'destroy'` closes the connection (the server
   * rolls back); `'wait'` lets it finish. The ROLLBACK always runs after it.
   */
  onTimeout?: InFlightPolicy;
  /** Re-run the whole callback this many times after a deadlock (1213) or lock wait timeout (1205). Default 0. */
  retries?: number;
}

const POLICIES: readonly InFlightPolicy[] = ['wait', 'kill', 'destroy'];

const KNOWN_KEYS = new Set(['isolationLevel', 'readOnly', 'consistentSnapshot', 'timeoutMs', 'signal', 'onTimeout', 'retries']);

function validate(options: TransactionOptions): void {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'an options object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key)) throw new InvalidOptionError(key, 'no such transaction option (check its spelling)');
  }
  const { timeoutMs, signal, onTimeout, retries } = options;
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1)) {
    throw new InvalidOptionError('timeoutMs', 'an integer >= 1');
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionError('signal', 'an AbortSignal');
  if (onTimeout !== undefined && !POLICIES.includes(onTimeout)) throw new InvalidOptionError('onTimeout', "'wait', 'kill' or 'destroy'");
  if (retries !== undefined && (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0)) {
    throw new InvalidOptionError('retries', 'an integer >= 0');
  }
}

const NO_OPTIONS: TransactionOptions = Object.freeze({});

/**
 * @internal Runs `fn` in the transaction `start` opens, retrying deadlocks and
 * lock wait timeouts if asked. `caller`: the stack given to the statements the
 * runner sends itself (COMMIT, ROLLBACK).
 */
export function runTransaction<T>(
  start: () => Promise<Transaction>,
  fn: (tx: Transaction) => Promise<T>,
  options: TransactionOptions = NO_OPTIONS,
  stoppedEarly?: () => void,
  caller?: StackHolder,
): Promise<T> {
  try {
    if (options !== NO_OPTIONS) validate(options);
    if (typeof fn !== 'function') throw new InvalidOptionError('fn', 'a function (tx) => Promise');
  } catch (error) {
    return Promise.reject(error);
  }
  const retries = options.retries ?? 0;
  // No retries (the default): the attempt's own promise is the caller's.
  if (retries === 0) return attemptOnce(start, fn, options, stoppedEarly, caller);
  return retrying(start, fn, options, stoppedEarly, caller, retries);
}

async function retrying<T>(
  start: () => Promise<Transaction>,
  fn: (tx: Transaction) => Promise<T>,
  options: TransactionOptions,
  stoppedEarly: (() => void) | undefined,
  caller: StackHolder | undefined,
  retries: number,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptOnce(start, fn, options, stoppedEarly, caller);
    } catch (error) {
      if (attempt >= retries || !isRetryable(error) || options.signal?.aborted) throw error;
      await sleep(backoffMs(attempt));
    }
  }
}

/**
 * One attempt. `stoppedEarly` queues the rollback when the attempt is stopped
 * while BEGIN is still in flight on a connection the caller keeps: queued at
 * once, behind BEGIN, so nothing the caller sends next can land inside the
 * abandoned transaction.
 */
function attemptOnce<T>(
  start: () => Promise<Transaction>,
  fn: (tx: Transaction) => Promise<T>,
  options: TransactionOptions,
  stoppedEarly: (() => void) | undefined,
  caller: StackHolder | undefined,
): Promise<T> {
  const { timeoutMs, signal } = options;
  const policy = options.onTimeout ?? 'kill';
  return new Promise<T>((resolve, reject) => {
    let tx: Transaction | undefined;
    let begun = false;
    let stopped: { why: AbandonReason; error: Error } | undefined;

    const stop = (why: AbandonReason, error: Error): void => {
      if (stopped) return;
      stopped = { why, error };
      disarm();
      if (tx) interrupt(tx, why, error, policy);
      else if (begun) stoppedEarly?.();
      reject(error);
    };
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => stop('timeout', new TransactionTimeoutError(timeoutMs)), timeoutMs);
    const onAbort = (): void => stop('aborted', abortReason(signal));
    const disarm = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    begun = true;
    start().then(
      (began) => {
        tx = began;
        if (stopped) {
          // Timed out or aborted during BEGIN: the caller is gone already; never run fn.
          began.abandon(stopped.why, stopped.error, stoppedEarly !== undefined);
          return;
        }
        let outcome: Promise<T>;
        try {
          outcome = Promise.resolve(fn(began));
        } catch (error) {
          outcome = Promise.reject(error);
        }
        // Plain reactions rather than an async function: no promise of its own per attempt.
        outcome.then(
          (result) => {
            if (stopped) return;
            disarm();
            finish(began, caller).then(() => resolve(result), reject);
          },
          (error: unknown) => {
            if (stopped) return;
            disarm();
            void rollbackKeeping(began, error, caller).then(() => reject(error));
          },
        );
      },
      (error: unknown) => {
        disarm();
        if (!stopped) reject(error);
      },
    );
  });
}

/** Fences the transaction now, deals with a statement in flight, and lets the rollback follow it. */
function interrupt(tx: Transaction, why: AbandonReason, error: Error, policy: InFlightPolicy): void {
  if (tx.hasInFlight) {
    if (policy === 'destroy') tx.lease.destroy(); // the server rolls back when the connection closes
    else if (policy === 'kill') tx.lease.killRunningQuery(); // later statements wait for the KILL
  }
  tx.abandon(why, error);
}

/** The callback threw: roll back, keeping the callback's error as the one thrown. Never rejects. */
function rollbackKeeping(tx: Transaction, error: unknown, caller: StackHolder | undefined): Promise<void> {
  if (tx.state !== 'active' && tx.state !== 'endedByServer') return Promise.resolve();
  return tx.rollbackWith(caller).then(noop, (rollbackError: unknown) => attach(error, 'rollbackError', rollbackError));
}

/** The callback resolved: commit, unless it already ended the transaction itself. */
function finish(tx: Transaction, caller: StackHolder | undefined): Promise<void> {
  if (tx.state === 'active') return tx.commitWith(caller);
  if (tx.state === 'endedByServer') {
    // Gives the connection back.
    return tx.rollbackWith(caller).then(noop, noop).then(() => {
      throw new TransactionEndedByServerError('commit');
    });
  }
  // committed or rolled back by the callback itself: its choice stands.
  return Promise.resolve();
}

function noop(): void {
  return undefined;
}

function isRetryable(error: unknown): boolean {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return errno === ER_LOCK_DEADLOCK || errno === ER_LOCK_WAIT_TIMEOUT;
}

/** Full jitter: a random wait up to 20 ms, 40 ms, 80 ms... capped at 1 s. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(1_000, 20 * 2 ** attempt);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new DOMException('The transaction was aborted.', 'AbortError');
}
