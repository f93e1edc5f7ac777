/**
 * The one place the example listens to the pool. Everything else (the
 * Prometheus counters, the pino log lines) is written as plain handlers,
 * one per event, keyed by the event's name and typed by `PoolEventMap`:
 *
 *   subscribe(pool, createMetrics(pool).handlers, createEventLogger(logger));
 *
 * A source that is not `pool.on(...)` (a `node:diagnostics_channel`
 * subscriber, say) feeds the same handlers: it only has to call
 * `handlers.abandon?.(event)` with the same payload.
 */
import type { Pool, PoolEventMap } from '../../src/index'; // 'rollback-pool'

/** What to do on each pool event; every handler is optional. Handlers must not throw. */
export type PoolEventHandlers = { [K in keyof PoolEventMap]?: (...args: PoolEventMap[K]) => void };

type AnyListener = (...args: unknown[]) => void;

/**
 * Adds every handler of every set as a listener of `pool`; returns a function
 * that removes them again. Only the events a set has a handler for are
 * listened to: the pool emits nothing for an event nobody listens to, so
 * leaving out `acquire`/`release` keeps the checkout path as cheap as it was.
 */
export function subscribe(pool: Pool, ...handlerSets: PoolEventHandlers[]): () => void {
  const emitter = pool as unknown as NodeJS.EventEmitter; // the handler's type is checked by PoolEventHandlers
  const added: Array<[name: keyof PoolEventMap, listener: AnyListener]> = [];
  for (const handlers of handlerSets) {
    for (const name of Object.keys(handlers) as Array<keyof PoolEventMap>) {
      const listener = handlers[name] as AnyListener | undefined;
      if (!listener) continue;
      emitter.on(name, listener);
      added.push([name, listener]);
    }
  }
  return () => {
    for (const [name, listener] of added.splice(0)) emitter.removeListener(name, listener);
  };
}
