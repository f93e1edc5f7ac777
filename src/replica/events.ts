/**
 * The replica pool's events: `health` (a replica entered or left rotation),
 * and the member pools' rare events (`abandon`, `rollback`, `rollbackError`,
 * `destroy`, `leak`) passed on with the server they happened on. The
 * per-checkout events (`acquire`, `release`, ...) are not passed on (they
 * would cost every statement): listen on `pool.primary()` for the primary's.
 */
import type { AbandonEvent, DestroyEvent, LeakEvent, RollbackErrorEvent, RollbackEvent } from '../pool/events';
import type { ReplicaHealth, ReplicaState } from './member';

/** Which member pool an event comes from: `'primary'`, `'primary (read-only)'` (the fallback for read-only leases), or `'replica <index>'`. */
export type ReplicaPoolServer = 'primary' | 'primary (read-only)' | `replica ${number}`;

/** Payload of `health`: a replica changed state (`healthy` is in rotation, every other state is not). */
export interface ReplicaHealthEvent extends ReplicaHealth {
  /** The state it left. */
  previous: ReplicaState;
}

/** A member pool's event, with where it happened. */
export type FromServer<E> = E & { server: ReplicaPoolServer };

/** The replica pool's events, typed. */
export interface ReplicaPoolEventMap {
  health: [ReplicaHealthEvent];
  abandon: [FromServer<AbandonEvent>];
  rollback: [FromServer<RollbackEvent>];
  rollbackError: [FromServer<RollbackErrorEvent>];
  destroy: [FromServer<DestroyEvent>];
  leak: [FromServer<LeakEvent>];
}

/** The member pool events a replica pool passes on. */
export const FORWARDED_EVENTS = ['abandon', 'rollback', 'rollbackError', 'destroy', 'leak'] as const;
