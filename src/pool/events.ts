/**
 * The pool's events, typed. mysql2's four (`connection`, `acquire`, `release`,
 * `enqueue`) keep their meaning and pass mysql2's own connection object; ours
 * describe what happened to abandoned transactions and connections.
 */
import type { Connection as RawConnection } from 'mysql2';
import type { RollbackFailedError } from '../errors';
import type { DirtyReason } from './session-state';

/** Why a transaction was abandoned (given up without commit or rollback). */
export type AbandonReason =
  /**
   * its connection was released (or its BEGIN failed) inside a transaction, with
   * autocommit off, with a statement in flight, or with a pending `SET TRANSACTION`
   * (also after a `pool.query`)
   */
  | 'released-in-transaction'
  /** its handle was disposed while still active (`using`, `tx[Symbol.dispose]()`) */
  | 'disposed'
  /** its handle was garbage collected while still active (the `FinalizationRegistry` safety net) */
  | 'garbage-collected'
  /** a callback transaction ran past its `timeoutMs` (or a Sequelize transaction past `transactionTimeoutMs`, rollback-pool/sequelize) */
  | 'timeout'
  /** a callback transaction's `signal` was aborted */
  | 'aborted'
  /** a new `conn.begin()` on the same connection while this transaction was still active */
  | 'superseded';

/** Payload of `abandon`: a transaction was given up without commit or rollback; the pool rolls it back. */
export interface AbandonEvent {
  /** The server's id of the connection (`CONNECTION_ID()`). */
  threadId: number;
  /** Why it was abandoned. */
  reason: AbandonReason;
  /** Where the lease or transaction began, when `captureStacks` is on. */
  stack?: string;
}

/** Payload of `rollback`: the pending ROLLBACK of an abandoned transaction succeeded. */
export interface RollbackEvent {
  /** The server's id of the connection (`CONNECTION_ID()`). */
  threadId: number;
  /** From the release (or the checkout that found it pending) to the end of the ROLLBACK. */
  durationMs: number;
}

/** Payload of `rollbackError`: the ROLLBACK of an abandoned transaction failed or timed out; the connection was destroyed. */
export interface RollbackErrorEvent {
  /** The server's id of the connection (`CONNECTION_ID()`). */
  threadId: number;
  /** `ERR_ROLLBACK_FAILED`; the server's error, if there was one, is its `cause`. */
  error: RollbackFailedError;
}

/** Payload of `destroy`: a connection was closed for good (it is never reused). */
export interface DestroyEvent {
  /** The server's id of the connection (`CONNECTION_ID()`). */
  threadId: number;
  /** Short reason, e.g. `connection error`, `rollback failed`, `pool closed`. */
  reason: string;
  /** The error that caused it, if any. */
  error?: unknown;
}

/** Payload of `reset`: a connection's session was reset (COM_RESET_CONNECTION) before its next lease. */
export interface ResetEvent {
  /** The server's id of the connection (`CONNECTION_ID()`). */
  threadId: number;
  /**
   * What made it dirty (`resetOnRelease: 'whenDirty'`): the first kind of
   * session state seen on the lease; `'resetOnRelease'` with `resetOnRelease: true`.
   */
  reason: DirtyReason | 'resetOnRelease';
  /** The reset and the baseline (`initSql`) after it. */
  durationMs: number;
}

/** Payload of `leak`: a lease was held longer than `leakDetectionMs` (emitted once per lease). */
export interface LeakEvent {
  /** The server's id of the connection (`CONNECTION_ID()`). */
  threadId: number;
  /** How long the lease had been held when the event fired. */
  heldMs: number;
  /** Where the lease was taken, when `captureStacks` is on. */
  stack?: string;
}

/** Event name -> listener arguments, for `pool.on(...)`. */
export interface PoolEventMap {
  /** A new connection was made (mysql2's event, with mysql2's connection). */
  connection: [connection: RawConnection];
  /** A connection was checked out (mysql2's event, with mysql2's connection). */
  acquire: [connection: RawConnection];
  /** A clean connection went back to the pool (mysql2's event, with mysql2's connection). */
  release: [connection: RawConnection];
  /** A checkout had to wait for a connection (mysql2's event). */
  enqueue: [];
  /** A transaction was given up without commit or rollback. */
  abandon: [event: AbandonEvent];
  /** The pending ROLLBACK of an abandoned transaction succeeded. */
  rollback: [event: RollbackEvent];
  /** The ROLLBACK of an abandoned transaction failed or timed out; the connection was destroyed. */
  rollbackError: [event: RollbackErrorEvent];
  /** A connection was closed for good. */
  destroy: [event: DestroyEvent];
  /** A lease was held longer than `leakDetectionMs`. */
  leak: [event: LeakEvent];
  /** A connection's session was reset before its next lease (`resetOnRelease`). */
  reset: [event: ResetEvent];
}
