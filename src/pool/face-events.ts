/**
 * The listener methods of the callback faces (`pool.pool`, `lease.connection`),
 * as on mysql2's EventEmitter-based pool and connections, at no cost while
 * nobody listens: the EventEmitter behind them is made on the first listener,
 * and a face subscribes to what feeds an event (the pool's own events, the
 * connection's loss) only while that event has listeners.
 */
import { EventEmitter } from 'node:events';

/** Event name to listener arguments. */
export type FaceEventMap<M> = { [K in keyof M]: unknown[] };

type Listener<M, K extends keyof M> = M[K] extends unknown[] ? (...args: M[K]) => void : never;

export abstract class FaceEvents<M extends FaceEventMap<M>> {
  private emitter: EventEmitter | undefined;

  /**
   * @internal Called after listeners of `event` were added or removed: the face
   * subscribes to (or leaves) whatever feeds the event.
   */
  protected abstract listenersChanged(event: keyof M & string): void;

  private events(): EventEmitter {
    this.emitter ??= new EventEmitter();
    return this.emitter;
  }

  on<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    this.events().on(event, listener);
    this.listenersChanged(event);
    return this;
  }

  addListener<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    return this.on(event, listener);
  }

  once<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    this.events().once(event, listener);
    this.listenersChanged(event);
    return this;
  }

  prependListener<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    this.events().prependListener(event, listener);
    this.listenersChanged(event);
    return this;
  }

  prependOnceListener<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    this.events().prependOnceListener(event, listener);
    this.listenersChanged(event);
    return this;
  }

  off<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    return this.removeListener(event, listener);
  }

  removeListener<K extends keyof M & string>(event: K, listener: Listener<M, K>): this {
    if (this.emitter === undefined) return this;
    this.emitter.removeListener(event, listener);
    this.listenersChanged(event);
    return this;
  }

  removeAllListeners(event?: keyof M & string): this {
    if (this.emitter === undefined) return this;
    const names = event === undefined ? (this.emitter.eventNames() as Array<keyof M & string>) : [event];
    if (event === undefined) this.emitter.removeAllListeners();
    else this.emitter.removeAllListeners(event);
    for (const name of names) this.listenersChanged(name);
    return this;
  }

  listeners<K extends keyof M & string>(event: K): Function[] {
    return this.emitter?.listeners(event) ?? [];
  }

  rawListeners<K extends keyof M & string>(event: K): Function[] {
    return this.emitter?.rawListeners(event) ?? [];
  }

  listenerCount<K extends keyof M & string>(event: K): number {
    return this.emitter?.listenerCount(event) ?? 0;
  }

  eventNames(): Array<keyof M & string> {
    return (this.emitter?.eventNames() ?? []) as Array<keyof M & string>;
  }

  setMaxListeners(n: number): this {
    this.events().setMaxListeners(n);
    return this;
  }

  getMaxListeners(): number {
    return this.emitter?.getMaxListeners() ?? EventEmitter.defaultMaxListeners;
  }

  /**
   * Calls the listeners of `event`, as `EventEmitter.emit`: an `error` nobody
   * listens to is thrown.
   */
  emit<K extends keyof M & string>(event: K, ...args: M[K]): boolean {
    if (this.emitter === undefined && event !== 'error') return false;
    return this.events().emit(event, ...args);
  }
}
