/**
 * ResourcePool: the only file that imports generic-pool. generic-pool 3.9.0 is
 * unmaintained and has traps; each is defused here:
 *
 * - A failing `create` is retried by generic-pool at once, in a loop, while
 *   waiting acquirers are never told why. Here `create` never rejects: a
 *   failure becomes a `CreateFailure` slot that generic-pool hands to the
 *   oldest waiter like any resource, and that waiter rejects with the real
 *   cause. One failed attempt per waiter, so no spin, and no stale retries.
 * - A `validate` that rejects loses its slot forever. Here there is no
 *   `validate`: `unwrap` reads the resource's usable flag after acquire and
 *   drops a dead one (one less promise hop per checkout, too).
 * - No acquire timeout by default, and option values of 0 silently become
 *   defaults: every acquire that waits gets our own timer, from a validated
 *   number (generic-pool's would cost a timer on every acquire, even the
 *   ones served at once).
 * - No return hook: the caller (the pool) cleans a session *before* it calls
 *   `release`; generic-pool only ever sees clean or flagged sessions.
 * - `drain()` waits forever for loans and waiters: `end()` is bounded, and
 *   rejects every waiting acquirer with `ERR_POOL_CLOSED` at once (waiting
 *   acquires are tracked here; generic-pool's requests are settled later by
 *   `createSlot` returning a closed-pool failure, then discarded).
 * - Idle resources that die cannot be removed, and generic-pool's idle
 *   rules are not mysql2's: idle resources live in our own stack (never in
 *   generic-pool's idle list); `takeIdle` drops dead ones, `trimIdle` applies
 *   maxIdle / idleTimeout.
 */
import * as genericPool from 'generic-pool';
import { AcquireTimeoutError, NoConnectionsError, PoolClosedError, QueueLimitError } from '../errors';

/** How to make, check and dispose of one resource. */
export interface ResourceFactory<T> {
  create(): Promise<T>;
  /** `evicted`: closed by the idle rules (maxIdle / idleTimeout), not because it was dropped or the pool ended. */
  destroy(resource: T, evicted: boolean): Promise<void>;
  /** Reads a flag: may this resource be handed out (after any pending cleanup)? No I/O. */
  isUsable(resource: T): boolean;
  /**
   * Prepares a usable resource for its borrower (the pool: run a pending
   * ROLLBACK, mark it leased). Chained in the same `then` as the unwrap, to
   * keep the checkout path at one promise hop.
   */
  checkout(resource: T): T | Promise<T>;
}

export interface ResourcePoolOptions {
  max: number;
  acquireTimeoutMs: number;
  waitForConnections: boolean;
  queueLimit: number;
  /** Idle resources beyond this many are closed after `idleTimeoutMs` (mysql2's maxIdle). */
  maxIdle: number;
  idleTimeoutMs: number;
  /** Called when an acquire has to wait (mysql2's `enqueue` event). */
  onEnqueue(): void;
}

export interface ResourceCounts {
  total: number;
  idle: number;
  borrowed: number;
  waiting: number;
}

/** A failed `create`, carried to a waiting acquirer as if it were a resource. */
class CreateFailure {
  readonly at = Date.now();
  constructor(readonly error: unknown) {}
}

type Slot<T> = T | CreateFailure;

interface IdleEntry<T> {
  resource: T;
  since: number;
}

interface Waiter {
  reject(error: unknown): void;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** A failure older than this is not delivered; the waiter gets a fresh attempt instead. */
const FAILURE_FRESHNESS_MS = 1_000;

export class ResourcePool<T extends object> {
  private readonly pool: genericPool.Pool<Slot<T>>;
  private closed = false;
  private ending: Promise<void> | undefined;
  private readonly waiters = new Set<Waiter>();
  /**
   * The hot path. Resources given back while nobody waits are kept here, still
   * "borrowed" in generic-pool's books, and handed out again without touching
   * generic-pool at all (its acquire and release cost a request, a loan and
   * several promises each). LIFO: the warmest first; the oldest at index 0.
   */
  private readonly idle: IdleEntry<T>[] = [];
  private readonly trimTimer: NodeJS.Timeout | undefined;
  /** Resources on their way out by the idle rules (told apart in `factory.destroy`). */
  private readonly evicting = new WeakSet<object>();

  constructor(
    private readonly factory: ResourceFactory<T>,
    private readonly options: ResourcePoolOptions,
  ) {
    const { maxIdle, max, idleTimeoutMs } = options;
    this.pool = genericPool.createPool<Slot<T>>(
      {
        create: () => this.createSlot(),
        destroy: (slot) => (slot instanceof CreateFailure ? Promise.resolve() : factory.destroy(slot, this.evicting.delete(slot))),
      },
      {
        max,
        min: 0,
        // No testOnBorrow: it costs two promise hops per acquire; `unwrap` reads the usable flag itself.
        testOnBorrow: false,
        autostart: false,
        // No acquireTimeoutMillis: `wait` times out the acquires that wait (see there).
        // No evictor: idle resources live in our own idle stack, trimmed by `trimIdle`.
        destroyTimeoutMillis: 5_000,
      } as genericPool.Options, // destroyTimeoutMillis exists in 3.9.0 but not in its typings
    );
    // Both are reported through CreateFailure / the destroy path; without a listener they would be lost silently anyway.
    this.pool.on('factoryCreateError', () => undefined);
    this.pool.on('factoryDestroyError', () => undefined);
    if (maxIdle < max) {
      // mysql2's rule, checked every second only when maxIdle < connectionLimit, as in mysql2.
      this.trimTimer = setInterval(() => this.trimIdle(), Math.min(1_000, idleTimeoutMs));
      this.trimTimer.unref();
    }
  }

  /** Takes a resource, waiting if none is free. Rejects with typed errors, or the real cause of a failed create. */
  acquire(): Promise<T> {
    if (this.closed) return Promise.reject(new PoolClosedError());
    const ready = this.takeIdle();
    if (ready !== undefined) {
      try {
        return Promise.resolve(this.factory.checkout(ready));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const pool = this.pool;
    if (pool.size >= pool.max) {
      if (!this.options.waitForConnections) return Promise.reject(new NoConnectionsError());
      if (this.options.queueLimit > 0 && this.waiters.size >= this.options.queueLimit) {
        return Promise.reject(new QueueLimitError());
      }
      this.options.onEnqueue();
    }
    return this.wait(pool.acquire());
  }

  /**
   * An acquire that has to wait (for a release or a connect). Its timeout is
   * ours, not generic-pool's: generic-pool would arm a timer on every acquire,
   * even the ones served at once. A waiter is tracked so that `end()` can
   * reject it at once. generic-pool's request outlives a waiter that timed out
   * or was rejected; whatever it is handed later goes straight back.
   */
  private wait(request: Promise<Slot<T>>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { reject, settled: false, timer: undefined };
      waiter.timer = setTimeout(() => {
        this.settle(waiter);
        reject(new AcquireTimeoutError(this.options.acquireTimeoutMs, this.lastCreateError));
      }, this.options.acquireTimeoutMs);
      this.waiters.add(waiter);
      request.then(
        (slot) => {
          if (waiter.settled) {
            this.handBack(slot);
            return;
          }
          this.settle(waiter);
          try {
            resolve(this.unwrap(slot));
          } catch (error) {
            reject(error);
          }
        },
        (error: unknown) => {
          if (waiter.settled) return;
          this.settle(waiter);
          try {
            this.translateAcquireError(error);
          } catch (translated) {
            reject(translated);
          }
        },
      );
    });
  }

  private settle(waiter: Waiter): void {
    waiter.settled = true;
    clearTimeout(waiter.timer);
    this.waiters.delete(waiter);
  }

  /** A slot handed to an acquirer that already gave up: unused, straight back (or away). */
  private handBack(slot: Slot<T>): void {
    if (slot instanceof CreateFailure || this.closed || !this.factory.isUsable(slot)) {
      this.pool.destroy(slot).catch(() => undefined);
    } else {
      this.release(slot);
    }
  }

  /**
   * Unwraps what generic-pool handed out: a resource to use, a dead resource
   * to drop (and try again), or a create failure to reject with. This replaces
   * generic-pool's `validate`, which loses its slot if it ever rejects.
   */
  private readonly unwrap = (slot: Slot<T>): T | Promise<T> => {
    if (slot instanceof CreateFailure) {
      this.pool.destroy(slot).catch(() => undefined);
      // A failure nobody was waiting for is stale: give this acquirer a fresh attempt.
      if (Date.now() - slot.at >= FAILURE_FRESHNESS_MS) return this.acquire();
      throw slot.error;
    }
    if (!this.factory.isUsable(slot)) {
      this.pool.destroy(slot).catch(() => undefined); // died while idle (KILL, restart, network)
      return this.acquire();
    }
    return this.factory.checkout(slot);
  };

  /**
   * Takes an idle resource at once, if one is ready: the fast path of every
   * checkout. The caller must pass it through its own checkout step.
   */
  takeIdle(): T | undefined {
    while (this.idle.length > 0) {
      const { resource } = this.idle.pop() as IdleEntry<T>;
      if (this.factory.isUsable(resource)) return resource;
      this.pool.destroy(resource).catch(() => undefined); // died while idle (KILL, restart, network)
    }
    return undefined;
  }

  /** Gives a clean (or flagged for cleanup) resource back. The caller gives back only what it borrowed. */
  release(resource: T): void {
    if (this.waiters.size > 0 || this.closed) {
      // Someone waits in generic-pool's queue: let generic-pool hand it over.
      void this.pool.release(resource); // resolves unless not borrowed, which the caller rules out
      return;
    }
    this.idle.push({ resource, since: Date.now() });
  }

  /** mysql2's idle rule: beyond maxIdle, or idle longer than idleTimeout, an idle resource is closed. */
  private trimIdle(): void {
    const { maxIdle, idleTimeoutMs } = this.options;
    const now = Date.now();
    while (this.idle.length > 0 && (this.idle.length > maxIdle || now - (this.idle[0] as IdleEntry<T>).since > idleTimeoutMs)) {
      const { resource } = this.idle.shift() as IdleEntry<T>;
      this.evicting.add(resource);
      this.pool.destroy(resource).catch(() => undefined);
    }
  }

  /** Takes a borrowed resource out of the pool for good and disposes of it. */
  destroy(resource: T): void {
    this.pool.destroy(resource).catch(() => undefined);
  }

  counts(): ResourceCounts {
    const pool = this.pool;
    const idle = this.idle.length;
    return { total: pool.size, idle, borrowed: pool.borrowed - idle, waiting: this.waiters.size };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Stops handing out resources: waiters reject with ERR_POOL_CLOSED, idle
   * resources are destroyed. The caller destroys what it has borrowed. Bounded
   * by `timeoutMs`, so it never hangs on a resource that never comes back.
   */
  end(timeoutMs: number): Promise<void> {
    if (this.ending) return this.ending;
    this.closed = true;
    clearInterval(this.trimTimer);
    for (const waiter of [...this.waiters]) {
      this.settle(waiter);
      waiter.reject(new PoolClosedError());
    }
    for (const { resource } of this.idle.splice(0)) this.pool.destroy(resource).catch(() => undefined);
    const done = this.pool.drain().then(() => this.pool.clear());
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    this.ending = Promise.race([done, bound]).finally(() => clearTimeout(timer));
    // generic-pool's own requests settle as the caller's destroys free capacity: see createSlot.
    return this.ending;
  }

  private async createSlot(): Promise<Slot<T>> {
    if (this.closed) return new CreateFailure(new PoolClosedError());
    try {
      const resource = await this.factory.create();
      this.lastCreateError = undefined;
      return resource;
    } catch (error) {
      this.lastCreateError = error;
      return new CreateFailure(error);
    }
  }

  private lastCreateError: unknown;

  /** generic-pool rejects an acquire only once draining ("pool is draining"): that is our closed pool. */
  private readonly translateAcquireError = (error: unknown): never => {
    if (this.closed) throw new PoolClosedError();
    throw error;
  };
}
