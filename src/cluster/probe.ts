/**
 * The background probe of an offline cluster-aware node: asks the node,
 * through its own pool, whether it can serve (`HEALTH_SQL`), again and again
 * with exponential backoff (100 ms, 200 ms, 400 ms... capped), until it can.
 * One probe at a time per node; the timers are unref'd (a probe never keeps
 * the process alive) and cleared by `stop()`.
 *
 *   idle ──start()──▶ waiting ──timer──▶ asking ──can serve──▶ idle (onServing)
 *                       ▲                   │
 *                       └──cannot / failed──┘ (next delay doubled, capped)
 *   any ──stop()──▶ stopped
 */
import type { Pool } from '../pool/pool';
import { canServe, describeHealth, HEALTH_SQL, readHealth, type NodeHealth } from './health';

/** The first wait before asking: long enough not to spin, short enough to catch a quick recovery. */
const FIRST_DELAY_MS = 100;
/** A probe statement that does not answer in this long failed (a black-holed node must not hold the probe forever). */
const PROBE_TIMEOUT_MS = 2_000;

/** What a probe reports. */
export interface ProbeOutcome {
  /** The node can serve. */
  readonly serving: boolean;
  /** What the node said, if it answered. */
  readonly health?: NodeHealth;
  /** Why it cannot (the error, or the state). */
  readonly reason: string;
}

export class Probe {
  private timer: NodeJS.Timeout | undefined;
  private delayMs = FIRST_DELAY_MS;
  private running = false;
  private stopped = false;
  /** Probes asked so far (for stats). */
  count = 0;

  constructor(
    private readonly pool: Pool,
    /** The longest wait between two probes. */
    private readonly maxDelayMs: number,
    /** Every answer, serving or not (for stats and the `online` event). */
    private readonly onOutcome: (outcome: ProbeOutcome) => void,
  ) {}

  /** True while a probe is scheduled or under way. */
  get active(): boolean {
    return this.running || this.timer !== undefined;
  }

  /** Starts probing from the first delay (a no-op if already probing). */
  start(): void {
    if (this.stopped || this.active) return;
    this.delayMs = Math.min(FIRST_DELAY_MS, this.maxDelayMs);
    this.schedule();
  }

  /** For good (the node was removed or the cluster ended). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.ask();
    }, this.delayMs);
    this.timer.unref();
    this.delayMs = Math.min(this.delayMs * 2, this.maxDelayMs);
  }

  private async ask(): Promise<void> {
    if (this.stopped || this.pool.closed) return;
    this.running = true;
    this.count++;
    let outcome: ProbeOutcome;
    try {
      // Through the node's own pool: an idle connection answers (a node that lost its primary component
      // keeps its connections), or a new one is made, which its connect check refuses if the node cannot serve.
      const [rows] = await this.pool.query({ sql: HEALTH_SQL, timeout: PROBE_TIMEOUT_MS });
      const health = readHealth(rows);
      outcome = { serving: canServe(health), health, reason: `probe: ${describeHealth(health)}` };
    } catch (error) {
      outcome = { serving: false, reason: `probe failed: ${describe(error)}` };
    }
    this.running = false;
    if (this.stopped) return;
    this.onOutcome(outcome);
    if (!outcome.serving) this.schedule();
  }
}

/**
 * One check, now, on a connection of its own (not one of the pool's: an idle
 * connection to a node that just died may not know it yet, and a node that
 * refuses new connections is down whatever its old ones say). `error` is why
 * it failed, when it did not answer.
 */
export async function checkNow(pool: Pool): Promise<ProbeOutcome & { error?: unknown }> {
  let conn: Awaited<ReturnType<Pool['openSideConnection']>> | undefined;
  try {
    conn = await pool.openSideConnection();
    conn.on('error', () => undefined);
    const [rows] = await conn.query({ sql: HEALTH_SQL, timeout: PROBE_TIMEOUT_MS });
    const health = readHealth(rows);
    return { serving: canServe(health), health, reason: `check: ${describeHealth(health)}` };
  } catch (error) {
    return { serving: false, error, reason: `check failed: ${describe(error)}` };
  } finally {
    conn?.destroy();
  }
}

function describe(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}
