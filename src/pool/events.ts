/**
 * The pool's events, typed. mysql2's four (`connection`, `acquire`, `release`,
 * `enqueue`) keep their meaning and pass mysql2's own connection object; ours
 * describe what happened to abandoned transactions and connections.
 */
import type { Connection as RawConnection } from 'mysql2';
import type { RollbackFailedError } from '../errors';

/** Why a transaction was abandoned (given up without commit or rollback). */
export type AbandonReason =
  | 'released-in-transaction'
  | 'disposed'
  | 'garbage-collected'
  | 'timeout'
  | 'aborted'
  /** a new `conn.begin()` on the same connection while this transaction was still active */
  | 'superseded'
  | 'scope';

export interface AbandonEvent {
  threadId: number;
  reason: AbandonReason;
  /** Where the lease or transaction began, when `captureStacks` is on. */
  stack?: string;
}

export interface RollbackEvent {
  threadId: number;
  /** From the release (or the checkout that found it pending) to the end of the ROLLBACK. */
  durationMs: number;
}

export interface RollbackErrorEvent {
  threadId: number;
  error: RollbackFailedError;
}

export interface DestroyEvent {
  threadId: number;
  /** Short reason, e.g. `connection error`, `rollback failed`, `pool closed`. */
  reason: string;
  error?: unknown;
}

export interface LeakEvent {
  threadId: number;
  heldMs: number;
  /** Where the lease was taken, when `captureStacks` is on. */
  stack?: string;
}

/** Event name -> listener arguments, for `pool.on(...)`. */
export interface PoolEventMap {
  connection: [connection: RawConnection];
  acquire: [connection: RawConnection];
  release: [connection: RawConnection];
  enqueue: [];
  abandon: [event: AbandonEvent];
  rollback: [event: RollbackEvent];
  rollbackError: [event: RollbackErrorEvent];
  destroy: [event: DestroyEvent];
  leak: [event: LeakEvent];
}
