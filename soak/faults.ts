/**
 * The fault scheduler of the soak: fires one fault at a time, at random, from
 * a weighted list, and measures how long the pool takes to be back at full
 * size after each one.
 *
 * Network faults go through the fault proxy (__tests__/support/fault-proxy.ts);
 * `KILL` / `KILL QUERY` go over a side connection straight to the server. The
 * targeted kills are armed here and fired by the proxy's statement hook at the
 * moment the next matching statement passes: before it reaches the server,
 * at the same time, or after the server answered but before the client got
 * the answer. "Pending ROLLBACK" means a ROLLBACK on a connection the pool
 * has just reported abandoned (the pool's own cleanup).
 */
import { createConnection, type Connection } from 'mysql2/promise';
import type { Pool } from '../src/index';
import type { ProxiedConnection, Proxy, QueryAction } from '../__tests__/support/fault-proxy';
import { bump } from './ledger';

export const FAULT_KINDS = [
  'latency', // 5-45 ms added to every chunk, both directions, for 1-3 s
  'drop', // a random proxied connection reset
  'blackHoleConnect', // new connections accepted, never answered, for 1-2.5 s
  'stall', // a live connection goes silent for 1-3 s, then is reset
  'cutMidResult', // the next multi-packet result is cut after 50-4000 bytes
  'kill', // KILL <random pool connection>
  'killQuery', // KILL QUERY <random pool connection>
  'killDuringBegin', // KILL or KILL QUERY at the next START TRANSACTION
  'killDuringCommit', // ... at the next COMMIT
  'killDuringPendingRollback', // ... at the next ROLLBACK the pool runs for an abandoned transaction
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const DEFAULT_FAULT_WEIGHTS: Record<FaultKind, number> = {
  latency: 1, drop: 2, blackHoleConnect: 1, stall: 1, cutMidResult: 2,
  kill: 2, killQuery: 2, killDuringBegin: 2, killDuringCommit: 2, killDuringPendingRollback: 2,
};

type Target = 'begin' | 'commit' | 'pendingRollback' | 'cutMidResult';
type Rng = () => number;

export interface Recovery {
  count: number;
  maxMs: number;
  totalMs: number;
}

export interface FaultSchedulerOptions {
  pool: Pool;
  proxy: () => Proxy;
  /** The server itself (not the proxy), for the side connection that sends KILL. */
  directUrl: string;
  connectionLimit: number;
  readsTable: string;
  rng: Rng;
  weights?: Record<FaultKind, number>;
  /** A fault whose pool has not been back at full size within this bound is a violation. */
  recoveryBoundMs?: number;
}

export class FaultScheduler {
  /** Faults injected, by kind (armed ones count when they fire). */
  readonly fired = new Map<string, number>();
  /** How the targeted kills landed: `${target}:${KILL|KILL QUERY}:${when}`. */
  readonly landed = new Map<string, number>();
  /** Pool back at full size after each fault, by kind. */
  readonly recovery = new Map<string, Recovery>();
  /** Faults after which the pool was not back at full size within the bound. */
  readonly notRecovered: Array<{ kind: string; at: number }> = [];
  /** Pool connections known alive, by thread id. */
  private readonly threads = new Set<number>();
  /** Thread ids the pool just reported abandoned: their next ROLLBACK is the pool's own. */
  private readonly abandoned = new Set<number>();
  private readonly armed: Array<{ target: Target; query: boolean }> = [];
  private readonly outstanding: Array<{ kind: string; at: number }> = [];
  /** Windows in progress, with what ends them. */
  private readonly timers = new Map<NodeJS.Timeout, () => void>();
  private pausedAt = 0;
  private side: Connection | undefined;
  private sideConnecting: Promise<Connection | undefined> | undefined;
  private loop: NodeJS.Timeout | undefined;
  private monitor: NodeJS.Timeout | undefined;
  private paused = false;
  private firstPass: FaultKind[] | undefined;
  private latencyActive = false;
  private blackHoleActive = false;
  private readonly weights: Record<FaultKind, number>;
  private readonly recoveryBoundMs: number;

  constructor(private readonly o: FaultSchedulerOptions) {
    this.weights = o.weights ?? DEFAULT_FAULT_WEIGHTS;
    this.recoveryBoundMs = o.recoveryBoundMs ?? 20_000;
    o.pool.on('connection', (raw) => this.threads.add(raw.threadId));
    o.pool.on('destroy', ({ threadId }) => {
      this.threads.delete(threadId);
      this.abandoned.delete(threadId);
    });
    o.pool.on('abandon', ({ threadId }) => this.abandoned.add(threadId));
  }

  /** The proxy's statement hook: fires an armed targeted fault when its statement passes. */
  onQuery = (sql: string, _index: number, conn: ProxiedConnection): QueryAction => {
    const threadId = conn.threadId;
    let target: Target | undefined;
    if (sql.startsWith('START TRANSACTION')) target = 'begin';
    else if (sql === 'COMMIT') target = 'commit';
    else if (sql === 'ROLLBACK' && threadId !== undefined && this.abandoned.delete(threadId)) target = 'pendingRollback';
    else if (sql.includes(this.o.readsTable) && sql.startsWith('SELECT')) target = 'cutMidResult';
    if (target === undefined || threadId === undefined) return 'forward';
    const at = this.armed.findIndex((entry) => entry.target === target);
    if (at < 0) return 'forward';
    const [{ query }] = this.armed.splice(at, 1) as [{ target: Target; query: boolean }];
    if (target === 'cutMidResult') {
      this.count('cutMidResult');
      return { cutReplyAfter: 50 + Math.floor(this.o.rng() * 4_000) };
    }
    const kind = target === 'begin' ? 'killDuringBegin' : target === 'commit' ? 'killDuringCommit' : 'killDuringPendingRollback';
    this.count(kind);
    const statement = `${query ? 'KILL QUERY' : 'KILL'} ${threadId}`;
    const when = this.o.rng();
    if (when < 1 / 3) {
      bump(this.landed, `${target}:${query ? 'KILL QUERY' : 'KILL'}:before it reaches the server`);
      return { before: () => this.sideQuery(statement) };
    }
    if (when < 2 / 3) {
      bump(this.landed, `${target}:${query ? 'KILL QUERY' : 'KILL'}:at the same time`);
      void this.sideQuery(statement);
      return 'forward';
    }
    bump(this.landed, `${target}:${query ? 'KILL QUERY' : 'KILL'}:after the server answered, before the client heard`);
    return { holdReply: () => this.sideQuery(statement) };
  };

  /** Fires a fault every `intervalMs` (jittered) until `stop()`. */
  start(intervalMs: number): void {
    const next = (): void => {
      this.loop = setTimeout(() => {
        if (!this.paused) this.fireRandom();
        next();
      }, intervalMs * (0.5 + this.o.rng()));
    };
    next();
    this.monitor = setInterval(() => this.sample(), 50);
  }

  /** No new faults (during a server restart). */
  pause(): void {
    this.paused = true;
    this.pausedAt = Date.now();
  }

  /** Time spent paused does not count towards the recovery of faults fired before. */
  resume(): void {
    this.paused = false;
    const pausedFor = Date.now() - this.pausedAt;
    for (const fault of this.outstanding) fault.at += pausedFor;
  }

  /** Stops firing, ends every window, drops stalled connections; closes the side connection. */
  async stop(): Promise<void> {
    clearTimeout(this.loop);
    clearInterval(this.monitor);
    for (const [timer, end] of this.timers) {
      clearTimeout(timer);
      end(); // ends the window now (restores latency, answers new connections, drops stalled ones)
    }
    this.timers.clear();
    this.armed.length = 0;
    const proxy = this.o.proxy();
    proxy.latencyMs = 0;
    proxy.blackHoleNew = false;
    // Connects still waiting inside the black hole would otherwise wait for their connectTimeout.
    for (const conn of proxy.live()) if (conn.blackHoled) conn.drop();
    this.sample();
    const side = this.side;
    this.side = undefined;
    await side?.end().catch(() => side.destroy());
  }

  /** Faults still waiting for the pool to be back at full size, and how long the oldest has waited. */
  get pendingRecovery(): { count: number; oldestMs: number } {
    const oldest = this.outstanding[0];
    return { count: this.outstanding.length, oldestMs: oldest ? Date.now() - oldest.at : 0 };
  }

  /** Counts a fault and starts waiting for the pool to be back at full size. */
  count(kind: string): void {
    bump(this.fired, kind);
    this.outstanding.push({ kind, at: Date.now() });
  }

  /** Counts a fault fired from outside whose recovery is measured by the caller (the server restart). */
  countOnly(kind: string): void {
    bump(this.fired, kind);
  }

  /** Sends a statement over the side connection (reconnecting if needed); never rejects. */
  async sideQuery(sql: string): Promise<void> {
    const side = await this.sideConnection();
    if (!side) return;
    try {
      await side.query(sql);
    } catch (error) {
      if ((error as { fatal?: boolean }).fatal) {
        if (this.side === side) this.side = undefined;
        side.destroy();
      }
      // 1094 (no such thread): the connection was gone already. Nothing to do.
    }
  }

  private sideConnection(): Promise<Connection | undefined> {
    if (this.side) return Promise.resolve(this.side);
    this.sideConnecting ??= createConnection({ uri: this.o.directUrl, connectTimeout: 2_000 }).then(
      (conn) => {
        conn.on('error', () => undefined);
        this.side = conn;
        this.sideConnecting = undefined;
        return conn;
      },
      () => {
        this.sideConnecting = undefined;
        return undefined; // the server is down (restart): this fault simply misses
      },
    );
    return this.sideConnecting;
  }

  private fireRandom(): void {
    // First every kind once (in a random order), so that a short run covers them all; then by weight.
    if (this.firstPass === undefined) {
      this.firstPass = (Object.keys(this.weights) as FaultKind[]).filter((kind) => this.weights[kind] > 0);
      for (let i = this.firstPass.length - 1; i > 0; i--) {
        const j = Math.floor(this.o.rng() * (i + 1));
        [this.firstPass[i], this.firstPass[j]] = [this.firstPass[j]!, this.firstPass[i]!];
      }
    }
    const first = this.firstPass.shift();
    if (first !== undefined) {
      this.fire(first);
      return;
    }
    const entries = Object.entries(this.weights) as Array<[FaultKind, number]>;
    let pick = this.o.rng() * entries.reduce((sum, [, w]) => sum + w, 0);
    for (const [kind, weight] of entries) {
      pick -= weight;
      if (pick < 0) {
        this.fire(kind);
        return;
      }
    }
  }

  /** Fires one fault of `kind` now (armed kinds fire at their next statement). */
  fire(kind: FaultKind): void {
    const proxy = this.o.proxy();
    const rng = this.o.rng;
    switch (kind) {
      case 'latency': {
        if (this.latencyActive) return;
        this.latencyActive = true;
        proxy.latencyMs = 5 + Math.floor(rng() * 40);
        this.count(kind);
        this.after(1_000 + rng() * 2_000, () => {
          proxy.latencyMs = 0;
          this.latencyActive = false;
        });
        return;
      }
      case 'drop': {
        const conn = pickOne(proxy.live(), rng);
        if (!conn) return;
        conn.drop();
        this.count(kind);
        return;
      }
      case 'blackHoleConnect': {
        if (this.blackHoleActive) return;
        this.blackHoleActive = true;
        proxy.blackHoleNew = true;
        this.count(kind);
        this.after(1_000 + rng() * 1_500, () => {
          proxy.blackHoleNew = false;
          this.blackHoleActive = false;
        });
        return;
      }
      case 'stall': {
        const conn = pickOne(proxy.live(), rng);
        if (!conn) return;
        conn.blackHole();
        this.count(kind);
        this.after(1_000 + rng() * 2_000, () => conn.drop());
        return;
      }
      case 'cutMidResult':
        this.armed.push({ target: 'cutMidResult', query: false });
        return;
      case 'kill':
      case 'killQuery': {
        const threadId = pickOne([...this.threads], rng);
        if (threadId === undefined) return;
        this.count(kind);
        void this.sideQuery(`${kind === 'kill' ? 'KILL' : 'KILL QUERY'} ${threadId}`);
        return;
      }
      case 'killDuringBegin':
      case 'killDuringCommit':
      case 'killDuringPendingRollback': {
        const target: Target = kind === 'killDuringBegin' ? 'begin' : kind === 'killDuringCommit' ? 'commit' : 'pendingRollback';
        // At most one of each armed at a time, so an idle target does not pile up.
        if (!this.armed.some((entry) => entry.target === target)) this.armed.push({ target, query: rng() < 0.5 });
        return;
      }
    }
  }

  private after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.set(timer, fn);
  }

  /** Every 50 ms: if the pool is at full size, every outstanding fault has recovered. */
  private sample(): void {
    const now = Date.now();
    if (this.o.pool.stats().total >= this.o.connectionLimit) {
      for (const { kind, at } of this.outstanding) {
        const entry = this.recovery.get(kind) ?? { count: 0, maxMs: 0, totalMs: 0 };
        const ms = now - at;
        entry.count++;
        entry.totalMs += ms;
        entry.maxMs = Math.max(entry.maxMs, ms);
        this.recovery.set(kind, entry);
      }
      this.outstanding.length = 0;
      return;
    }
    while (this.outstanding.length > 0 && now - this.outstanding[0]!.at > this.recoveryBoundMs && !this.paused) {
      this.notRecovered.push(this.outstanding.shift()!);
    }
  }
}

function pickOne<T>(items: T[], rng: Rng): T | undefined {
  return items.length === 0 ? undefined : items[Math.floor(rng() * items.length)];
}
