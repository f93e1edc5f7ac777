/**
 * ResourcePool: the only file that imports generic-pool. generic-pool 3.9.0 is
 * unmaintained and has traps; each is defused here:
 *
 * - A failing `create` is retried by generic-pool at once, in a loop, while
 *   waiting acquirers are never told why. Here `create` never rejects: a
 *   failure becomes a `CreateFailure` slot, and the oldest waiter rejects
 *   with the real cause. One attempt per waiter, so no spin, and no stale
 *   retries: a create is started only for a waiter that has none under way.
 * - A `validate` that rejects loses its slot forever. Here there is no
 *   `validate`: the usable flag of a resource is read before it is handed
 *   out, and a dead one is dropped.
 * - No acquire timeout by default, and option values of 0 silently become
 *   defaults: every acquire that waits has a deadline from a validated
 *   number, checked by one timer for the whole queue (generic-pool's would
 *   cost a timer on every acquire, even the ones served at once).
 * - No return hook: the caller (the pool) cleans a session *before* it calls
 *   `release`; nothing dirty is ever handed out or kept idle.
 * - `drain()` waits forever for loans and waiters: `end()` is bounded, and
 *   rejects every waiting acquirer with `ERR_POOL_CLOSED` at once.
 * - Idle resources that die cannot be removed, and generic-pool's idle
 *   rules are not mysql2's: idle resources live in our own stack (never in
 *   generic-pool's idle list); `takeIdle` drops dead ones, `trimIdle` applies
 *   maxIdle / idleTimeout.
 *
 * What generic-pool still does: it creates and destroys resources and counts
 * them against `max` (a resource is "borrowed" in its books from its creation
 * to its destruction). The queue of acquirers that wait is ours (a FIFO list
 * of waiter objects, one timer for all of them), so that a released resource
 * goes straight to the oldest waiter, synchronously, without a request, a
 * loan, a timer or a promise of generic-pool's.
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
   * ROLLBACK, mark it leased). Called on every resource handed to a waiter;
   * synchronous unless a cleanup is pending.
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

/**
 * An acquire that waits in the queue. The pool makes its own kinds (a
 * `pool.execute` that sends its statement the moment it is served, a
 * `getConnection` that resolves with a lease), so that a waiting acquire
 * costs one object and one promise. Exactly one of `granted` / `failed` is
 * called, once; neither may throw (they run inside `release()`).
 */
export interface Waiter<T> {
  /** Set by the queue: when this waiter times out (`performance.now()` clock). */
  deadline: number;
  /** Set by the queue: the next (younger) waiter. */
  next: Waiter<T> | undefined;
  /** The resource, checked out (`factory.checkout`) for this waiter. */
  granted(resource: T): void;
  failed(error: unknown): void;
}

/** A failed `create`, carried back from generic-pool as if it were a resource. */
class CreateFailure {
  constructor(readonly error: unknown) {}
}

type Slot<T> = T | CreateFailure;

/** The plain promise waiter behind `acquire()`. */
class PromiseWaiter<T> implements Waiter<T> {
  deadline = 0;
  next: Waiter<T> | undefined = undefined;
  constructor(
    readonly granted: (resource: T) => void,
    readonly failed: (error: unknown) => void,
  ) {}
}

export class ResourcePool<T extends object> {
  private readonly pool: genericPool.Pool<Slot<T>>;
  private closed = false;
  private ending: Promise<void> | undefined;
  /** The oldest waiter (served first, and the first to time out: every deadline is enqueue time + acquireTimeoutMs). */
  private head: Waiter<T> | undefined;
  private tail: Waiter<T> | undefined;
  private waiting = 0;
  /** generic-pool acquires under way, each creating one resource for the queue. */
  private creating = 0;
  /** The one timer of the queue: armed for the head's deadline, re-armed lazily when it fires. */
  private timer: NodeJS.Timeout | undefined;
  /**
   * The hot path. Resources given back while nobody waits are kept here, still
   * "borrowed" in generic-pool's books, and handed out again without touching
   * generic-pool at all. LIFO: the warmest first; the oldest at index 0.
   * `idleSince` runs alongside (numbers, no object per release), kept only
   * when the idle rules need it.
   */
  private readonly idle: T[] = [];
  private readonly idleSince: number[] = [];
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
        // No testOnBorrow: it costs two promise hops per acquire; the usable flag is read before anything is handed out.
        testOnBorrow: false,
        autostart: false,
        // No acquireTimeoutMillis: the queue is ours, with one timer (see `arm`).
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
    return new Promise<T>((resolve, reject) => this.request(new PromiseWaiter<T>(resolve, reject)));
  }

  /**
   * Serves `waiter` at once from the idle stack (synchronously), or queues it
   * (starting a create if there is room), or fails it (closed pool,
   * `waitForConnections: false`, `queueLimit`).
   */
  request(waiter: Waiter<T>): void {
    if (this.closed) {
      waiter.failed(new PoolClosedError());
      return;
    }
    const ready = this.takeIdle();
    if (ready !== undefined) {
      this.serve(waiter, ready);
      return;
    }
    const pool = this.pool;
    if (pool.size >= pool.max) {
      if (!this.options.waitForConnections) {
        waiter.failed(new NoConnectionsError());
        return;
      }
      if (this.options.queueLimit > 0 && this.waiting >= this.options.queueLimit) {
        waiter.failed(new QueueLimitError());
        return;
      }
      this.options.onEnqueue();
    }
    this.enqueue(waiter);
    this.grow();
  }

  private enqueue(waiter: Waiter<T>): void {
    waiter.deadline = performance.now() + this.options.acquireTimeoutMs;
    waiter.next = undefined;
    if (this.tail === undefined) this.head = waiter;
    else this.tail.next = waiter;
    this.tail = waiter;
    this.waiting++;
    if (this.timer === undefined) this.arm(this.options.acquireTimeoutMs);
    else if (this.waiting === 1) this.timer.ref();
  }

  /** The oldest waiter, taken out of the queue. */
  private shift(): Waiter<T> | undefined {
    const waiter = this.head;
    if (waiter === undefined) return undefined;
    this.head = waiter.next;
    waiter.next = undefined;
    if (this.head === undefined) {
      this.tail = undefined;
      // Lazy: the timer stays armed (it is re-armed only when it fires), but keeps nothing alive with nobody waiting.
      this.timer?.unref();
    }
    this.waiting--;
    return waiter;
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(this.expire, Math.max(1, Math.ceil(delayMs)));
  }

  /**
   * The queue's timer. Deadlines grow along the queue, so the expired waiters
   * are at its head; the timer is then set for the new head's deadline. A
   * head served before its deadline leaves the timer as it was: it fires, finds
   * nothing due, and moves on (about one wake-up per acquireTimeoutMs, however
   * many acquires wait).
   */
  private readonly expire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    while (this.head !== undefined && this.head.deadline <= now) {
      (this.shift() as Waiter<T>).failed(new AcquireTimeoutError(this.options.acquireTimeoutMs, this.lastCreateError));
    }
    if (this.head !== undefined) this.arm(this.head.deadline - now);
  };

  /** Starts one create for each waiter that has none under way, while there is room. */
  private grow(): void {
    const pool = this.pool;
    while (this.waiting > this.creating && pool.size < pool.max && !this.closed) {
      this.creating++;
      pool.acquire().then(this.created, this.createRejected);
    }
  }

  /** A create finished: its resource goes to the oldest waiter (or the idle stack), its failure to the oldest waiter. */
  private readonly created = (slot: Slot<T>): void => {
    this.creating--;
    if (slot instanceof CreateFailure) {
      this.pool.destroy(slot).catch(noop);
      if (!this.closed) this.shift()?.failed(slot.error); // one attempt per waiter: no retry loop
      this.grow();
      return;
    }
    if (this.closed) {
      this.pool.destroy(slot).catch(noop);
      return;
    }
    this.give(slot);
  };

  /** generic-pool refuses acquires only once draining, i.e. after `end()`, which already failed every waiter. */
  private readonly createRejected = (): void => {
    this.creating--;
  };

  /** A usable resource to hand out: to the oldest waiter, else onto the idle stack. */
  private give(resource: T): void {
    if (!this.factory.isUsable(resource)) {
      this.destroy(resource); // died on the way (KILL, restart, network)
      return;
    }
    const waiter = this.shift();
    if (waiter === undefined) {
      this.idle.push(resource);
      this.idleSince.push(this.trimTimer === undefined ? 0 : Date.now());
      return;
    }
    this.serve(waiter, resource);
  }

  /** Checks `resource` out for `waiter`: synchronously, unless a cleanup is pending (lazy mode). */
  private serve(waiter: Waiter<T>, resource: T): void {
    let ready: T | Promise<T>;
    try {
      ready = this.factory.checkout(resource);
    } catch (error) {
      waiter.failed(error);
      return;
    }
    if (ready instanceof Promise) ready.then((checkedOut) => waiter.granted(checkedOut), (error: unknown) => waiter.failed(error));
    else waiter.granted(ready);
  }

  /**
   * Takes an idle resource at once, if one is ready: the fast path of every
   * checkout. The caller must pass it through its own checkout step.
   */
  takeIdle(): T | undefined {
    const idle = this.idle;
    while (idle.length > 0) {
      const resource = idle.pop() as T;
      this.idleSince.pop();
      if (this.factory.isUsable(resource)) return resource;
      this.destroy(resource); // died while idle (KILL, restart, network)
    }
    return undefined;
  }

  /** True when acquirers wait: a release goes straight to the oldest of them. */
  get hasWaiters(): boolean {
    return this.head !== undefined;
  }

  /**
   * Gives a clean (or flagged for cleanup) resource back: to the oldest
   * waiter at once (checked out for it in this same call), or onto the idle
   * stack. The caller gives back only what it borrowed. Never throws.
   */
  release(resource: T): void {
    if (this.closed) {
      this.destroy(resource);
      return;
    }
    this.give(resource);
  }

  /** mysql2's idle rule: beyond maxIdle, or idle longer than idleTimeout, an idle resource is closed. */
  private trimIdle(): void {
    const { maxIdle, idleTimeoutMs } = this.options;
    const now = Date.now();
    while (this.idle.length > 0 && (this.idle.length > maxIdle || now - (this.idleSince[0] as number) > idleTimeoutMs)) {
      const resource = this.idle.shift() as T;
      this.idleSince.shift();
      this.evicting.add(resource);
      this.pool.destroy(resource).catch(noop);
    }
  }

  /** Takes a borrowed resource out of the pool for good and disposes of it; a waiter may then get a new one. */
  destroy(resource: T): void {
    this.pool.destroy(resource).catch(noop);
    if (this.head !== undefined) this.grow();
  }

  counts(): ResourceCounts {
    const pool = this.pool;
    const idle = this.idle.length;
    return { total: pool.size, idle, borrowed: pool.borrowed - idle, waiting: this.waiting };
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
    clearTimeout(this.timer);
    this.timer = undefined;
    for (let waiter = this.shift(); waiter !== undefined; waiter = this.shift()) waiter.failed(new PoolClosedError());
    for (const resource of this.idle.splice(0)) this.pool.destroy(resource).catch(noop);
    this.idleSince.length = 0;
    const done = this.pool.drain().then(() => this.pool.clear());
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    this.ending = Promise.race([done, bound]).finally(() => clearTimeout(timer));
    // Creates still under way settle as failures (createSlot) or are destroyed when they arrive (created).
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
}

function noop(): void {
  return undefined;
}
