/**
 * ReplicaMember: one replica of a replica pool: its rollback-pool `Pool`
 * (`refuseWrites`), its health, and the GTID position it is known to have
 * applied. Health state machine (only `healthy` is in rotation):
 *
 *   starting ──probe: threads run, lag ≤ maxLagMs──▶ healthy
 *   healthy ──probe: lag > maxLagMs; a read-your-writes wait timed out──▶ lagging
 *   any ──probe: a replication thread stopped, not a replica, no answer;
 *         a read lost its connection──▶ broken
 *   lagging, broken ──probe: threads run, lag ≤ maxLagMs──▶ healthy
 *   any ──end()──▶ closed
 *
 * A probe (`SHOW SLAVE STATUS`, then the primary's `@@gtid_binlog_pos`
 * awaited on the replica with `MASTER_GTID_WAIT`) runs every `healthCheckMs`
 * while healthy, and with backoff while out of rotation: from 100 ms
 * doubling to 4 x `healthCheckMs`, one probe at a time, on unref'd timers.
 * Lag is the time the replica takes to apply what the primary had committed
 * when the probe began: `Seconds_Behind_Master` stays 0 while hundreds of
 * rows behind, and says nothing below one second.
 */
import type { RowDataPacket } from 'mysql2';
import { describeConnection } from '../inspect';
import { GtidPosition } from '../pool/gtid';
import { Pool } from '../pool/pool';
import type { PoolOptions } from '../options';

/** Where a replica stands: only `healthy` replicas take reads. */
export type ReplicaState = 'starting' | 'healthy' | 'lagging' | 'broken' | 'closed';

/** A replica's health, from `replicaPool.health()` and the `health` event. */
export interface ReplicaHealth {
  /** The replica's place in `replicas`. */
  index: number;
  /** Where it is (never the password). */
  server: ReturnType<typeof describeConnection>;
  /** Only `healthy` takes reads. */
  state: ReplicaState;
  /** The lag the last good probe measured, in ms (an upper bound: it includes two round trips). */
  lagMs: number | undefined;
  /** Why it is out of rotation (undefined while healthy). */
  reason: string | undefined;
  /** When it entered this state (`Date.now()`). */
  since: number;
}

/** What a member needs from its replica pool. */
export interface MemberHost {
  readonly maxLagMs: number;
  readonly healthCheckMs: number;
  /** The primary's current `@@gtid_binlog_pos`. */
  primaryPosition(): Promise<GtidPosition>;
  /** A member changed state. */
  onHealth(member: ReplicaMember, previous: ReplicaState): void;
}

const FIRST_RETRY_MS = 100;

export class ReplicaMember {
  /** The replica's pool: every statement checked, every connection READ ONLY. */
  readonly pool: Pool;
  private stateValue: ReplicaState = 'starting';
  private lagMs: number | undefined;
  private reason: string | undefined;
  private since = Date.now();
  /** What the replica is known to have applied (a successful wait proves it). */
  private readonly reached = new GtidPosition();
  /** Waits in flight by position: concurrent reads after the same commit share one MASTER_GTID_WAIT. */
  private readonly waits = new Map<string, Promise<boolean>>();
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private failures = 0;
  private readonly firstProbe: Promise<void>;
  private firstProbed!: () => void;

  constructor(
    readonly index: number,
    options: PoolOptions,
    private readonly host: MemberHost,
  ) {
    this.pool = new Pool(options);
    this.firstProbe = new Promise((resolve) => {
      this.firstProbed = resolve;
    });
    // The first probe keeps the process alive: `ready()` waits for it, and a
    // script whose only work is that wait would otherwise exit silently
    // (code 0) before the probe ever ran. Later probes are background work.
    this.schedule(0, true);
  }

  get state(): ReplicaState {
    return this.stateValue;
  }

  /** In rotation: takes reads. */
  get healthy(): boolean {
    return this.stateValue === 'healthy';
  }

  /** Resolves once the first probe has given its verdict (whatever it was). */
  probed(): Promise<void> {
    return this.firstProbe;
  }

  health(): ReplicaHealth {
    return {
      index: this.index,
      server: describeConnection(this.pool.options.connection),
      state: this.stateValue,
      lagMs: this.lagMs,
      reason: this.reason,
      since: this.since,
    };
  }

  /** True when the replica is known to have applied `target` already (no wait needed). */
  hasApplied(target: GtidPosition): boolean {
    return this.reached.covers(target);
  }

  /**
   * Resolves true once the replica has applied `target` (at once when that is
   * already known), false if it has not after `timeoutMs`. Rejects when the
   * replica cannot be asked (connection refused, lost).
   */
  waitFor(target: GtidPosition, timeoutMs: number): Promise<boolean> {
    if (this.reached.covers(target)) return Promise.resolve(true);
    const key = target.value as string;
    let wait = this.waits.get(key);
    if (wait === undefined) {
      wait = this.pool
        .query<RowDataPacket[]>('SELECT MASTER_GTID_WAIT(?, ?) AS w', [key, timeoutMs / 1_000])
        .then(([rows]) => {
          const ok = Number(rows[0]?.['w']) === 0;
          if (ok) this.reached.merge(target);
          return ok;
        })
        .finally(() => this.waits.delete(key));
      this.waits.set(key, wait);
    }
    return wait;
  }

  /** Takes the replica out of rotation now (a read saw it fail or lag); a probe brings it back. */
  takeOut(state: 'lagging' | 'broken', reason: string): void {
    if (this.stateValue === 'closed' || this.stateValue === state) return;
    this.enter(state, reason, this.lagMs);
    this.failures = Math.max(this.failures, 1);
    if (!this.probing) this.schedule(this.backoffMs());
  }

  /** Stops probing and ends the replica's pool. */
  end(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stateValue !== 'closed') this.enter('closed', 'pool ended', this.lagMs);
    this.firstProbed();
    return this.pool.end();
  }

  private schedule(delayMs: number, keepAlive = false): void {
    if (this.stateValue === 'closed') return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probe(), delayMs);
    if (!keepAlive) this.timer.unref();
  }

  private async probe(): Promise<void> {
    this.timer = undefined;
    if (this.stateValue === 'closed' || this.probing) return;
    this.probing = true;
    let verdict: { state: 'healthy' | 'lagging' | 'broken'; reason?: string; lagMs?: number };
    try {
      verdict = await this.check();
    } catch (error) {
      verdict = { state: 'broken', reason: `no answer: ${describeError(error)}` };
    } finally {
      this.probing = false;
    }
    if (this.state === 'closed') return; // end() came while the probe ran (TS cannot see it change across the await)
    this.failures = verdict.state === 'healthy' ? 0 : this.failures + 1;
    if (verdict.state !== this.stateValue || verdict.state === 'healthy') this.enter(verdict.state, verdict.reason, verdict.lagMs);
    this.firstProbed();
    this.schedule(verdict.state === 'healthy' ? this.host.healthCheckMs : this.backoffMs());
  }

  private async check(): Promise<{ state: 'healthy' | 'lagging' | 'broken'; reason?: string; lagMs?: number }> {
    const startedAt = performance.now();
    const [[status], target] = await Promise.all([
      this.pool.query<RowDataPacket[]>('SHOW SLAVE STATUS').then(([rows]) => rows),
      // The primary down: the lag cannot be measured, the threads still tell whether the replica works.
      this.host.primaryPosition().catch(() => undefined),
    ]);
    if (status === undefined) return { state: 'broken', reason: 'not a replica (SHOW SLAVE STATUS is empty)' };
    const io = String(status['Slave_IO_Running'] ?? status['Replica_IO_Running']);
    const sql = String(status['Slave_SQL_Running'] ?? status['Replica_SQL_Running']);
    if (io !== 'Yes' || sql !== 'Yes') {
      const lastError = String(status['Last_SQL_Error'] || status['Last_IO_Error'] || '');
      return { state: 'broken', reason: `replication not running (IO thread: ${io}, SQL thread: ${sql})${lastError ? `: ${lastError}` : ''}` };
    }
    if (target === undefined) return { state: 'healthy', lagMs: undefined };
    if (target.empty) return { state: 'healthy', lagMs: 0 };
    const budget = Math.max(1, this.host.maxLagMs - (performance.now() - startedAt));
    const caughtUp = await this.waitFor(target, budget);
    const lagMs = performance.now() - startedAt;
    if (!caughtUp) return { state: 'lagging', reason: `more than ${this.host.maxLagMs} ms behind (maxLagMs): ${target.value as string} not applied in time` };
    return { state: 'healthy', lagMs };
  }

  private enter(state: ReplicaState, reason: string | undefined, lagMs: number | undefined): void {
    const previous = this.stateValue;
    this.stateValue = state;
    this.reason = state === 'healthy' ? undefined : reason;
    this.lagMs = lagMs;
    if (previous !== state) {
      this.since = Date.now();
      this.host.onHealth(this, previous);
    }
  }

  /** 100 ms, doubling per failed probe, at most 4 x healthCheckMs (never below 100 ms: no hot loop). */
  private backoffMs(): number {
    const ceiling = Math.max(FIRST_RETRY_MS, 4 * this.host.healthCheckMs);
    return Math.min(ceiling, FIRST_RETRY_MS * 2 ** Math.min(20, Math.max(0, this.failures - 1)));
  }
}

/** An error's message and code, for `reason` (mysql2's messages hold no password). */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
