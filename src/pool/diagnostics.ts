/**
 * The pool's `node:diagnostics_channel` channels, for tracers and metrics
 * that want every pool in the process without holding a reference to each
 * (OpenTelemetry-style instrumentation, APM agents). Names are stable:
 *
 * | channel                       | message                                        |
 * |-------------------------------|------------------------------------------------|
 * | `rollback-pool:acquire`       | `{ pool, threadId, waitMs }`                   |
 * | `rollback-pool:release`       | `{ pool, threadId, heldMs, outcome }`          |
 * | `rollback-pool:abandon`       | `{ pool, threadId, reason, stack? }`           |
 * | `rollback-pool:rollback`      | `{ pool, threadId, durationMs }`               |
 * | `rollback-pool:rollbackError` | `{ pool, threadId, error }`                    |
 * | `rollback-pool:destroy`       | `{ pool, threadId, reason, error? }`           |
 * | `rollback-pool:leak`          | `{ pool, threadId, heldMs, stack? }`           |
 * | `rollback-pool:reset`         | `{ pool, threadId, reason, durationMs }`       |
 *
 * Publishing costs nothing while a channel has no subscriber (one boolean
 * read). Messages never carry connection options (no password).
 */
import { channel } from 'node:diagnostics_channel';
import type { AbandonEvent, DestroyEvent, LeakEvent, ResetEvent, RollbackErrorEvent, RollbackEvent } from './events';

/** What happened to a connection when its lease (or a `pool.query`) ended: back clean, flagged for a rollback, or lost. */
export type ReleaseOutcome = 'clean' | 'pendingRollback' | 'broken';

/** Messages of each channel; `pool` is the publishing `Pool`. */
export interface DiagnosticsMessages<P = unknown> {
  acquire: { pool: P; threadId: number; waitMs: number };
  release: { pool: P; threadId: number; heldMs: number; outcome: ReleaseOutcome };
  abandon: AbandonEvent & { pool: P };
  rollback: RollbackEvent & { pool: P };
  rollbackError: RollbackErrorEvent & { pool: P };
  destroy: DestroyEvent & { pool: P };
  leak: LeakEvent & { pool: P };
  reset: ResetEvent & { pool: P };
}

/** The channel names, by kind. */
export const CHANNEL_NAMES = {
  acquire: 'rollback-pool:acquire',
  release: 'rollback-pool:release',
  abandon: 'rollback-pool:abandon',
  rollback: 'rollback-pool:rollback',
  rollbackError: 'rollback-pool:rollbackError',
  destroy: 'rollback-pool:destroy',
  leak: 'rollback-pool:leak',
  reset: 'rollback-pool:reset',
} as const satisfies Record<keyof DiagnosticsMessages, string>;

/** @internal */
export const channels = {
  acquire: channel(CHANNEL_NAMES.acquire),
  release: channel(CHANNEL_NAMES.release),
  abandon: channel(CHANNEL_NAMES.abandon),
  rollback: channel(CHANNEL_NAMES.rollback),
  rollbackError: channel(CHANNEL_NAMES.rollbackError),
  destroy: channel(CHANNEL_NAMES.destroy),
  leak: channel(CHANNEL_NAMES.leak),
  reset: channel(CHANNEL_NAMES.reset),
};

/**
 * @internal Publishes on channel `kind` if anyone listens. (Node itself
 * rethrows a throwing subscriber's error on the next tick, so it cannot
 * interrupt the pool.)
 */
export function publish<K extends keyof DiagnosticsMessages>(kind: K, message: DiagnosticsMessages[K]): void {
  const target = channels[kind];
  if (target.hasSubscribers) target.publish(message);
}
