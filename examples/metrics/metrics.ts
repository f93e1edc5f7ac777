/**
 * Prometheus metrics for a rollback-pool `Pool`, with prom-client:
 *
 * - gauges read from `pool.stats()` when Prometheus scrapes (`collect()`),
 *   so they cost nothing between scrapes;
 * - counters and a histogram fed by the pool's events (see pool-events.ts);
 * - a histogram of how long checkouts waited, from the `rollback-pool:acquire`
 *   diagnostics channel (no event carries that time).
 *
 * ```ts
 * const metrics = createMetrics(pool);
 * const server = await startMetricsServer(metrics.registry, { port: 9464 });
 * ```
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CHANNEL_NAMES, type AbandonReason, type DiagnosticsMessages, type Pool } from '../../src/index'; // 'rollback-pool'
import { subscribe, type PoolEventHandlers } from './pool-events';

export interface MetricsOptions {
  /** Where the metrics are registered. Default: a new `Registry` of their own. */
  registry?: Registry;
  /** Prefix of every metric name. Default `'rollback_pool_'`. */
  prefix?: string;
  /** Listen to `pool`'s events now. Default true; false to feed `handlers` from another source. */
  subscribe?: boolean;
}

export interface PoolMetrics {
  readonly registry: Registry;
  /** The event handlers that move the counters (already subscribed unless `subscribe: false`). */
  readonly handlers: PoolEventHandlers;
  /** Stops listening to the pool and removes the metrics from the registry. */
  close(): void;
}

/**
 * Every abandon reason, so that each `reason` series exists (at 0) from the
 * first scrape and `rate()`/`increase()` see its first increment. A `Record`
 * so that a reason added to `AbandonReason` fails to compile here until listed.
 */
const ABANDON_REASONS: Record<AbandonReason, true> = {
  'released-in-transaction': true,
  disposed: true,
  'garbage-collected': true,
  timeout: true,
  aborted: true,
  superseded: true,
};

/** From no wait at all (an idle connection) to `acquireTimeoutMs`'s default of 10 s. */
const ACQUIRE_BUCKETS_S = [0, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

/** From half a millisecond (a ROLLBACK on a local server) to `rollbackTimeoutMs`'s default of 5 s. */
const ROLLBACK_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Registers the pool's metrics and (by default) subscribes to its events. */
export function createMetrics(pool: Pool, options: MetricsOptions = {}): PoolMetrics {
  const registry = options.registry ?? new Registry();
  const prefix = options.prefix ?? 'rollback_pool_';
  const registers = [registry];
  const names: string[] = [];
  const named = (suffix: string): string => {
    names.push(prefix + suffix);
    return prefix + suffix;
  };

  // ---- gauges: pool.stats(), read at scrape time ------------------------------------------
  new Gauge({
    name: named('connections'),
    help: 'Open connections by state (pool.stats(): idle, leased, pendingRollback).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const stats = pool.stats();
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'leased' }, stats.leased);
      this.set({ state: 'pendingRollback' }, stats.pendingRollback);
    },
  });
  new Gauge({
    name: named('acquirers_waiting'),
    help: 'Checkouts waiting for a connection (pool.stats().waiting).',
    registers,
    collect() {
      this.set(pool.stats().waiting);
    },
  });

  // ---- counters and a histogram: the pool's events ----------------------------------------
  const opened = new Counter({
    name: named('connections_opened_total'),
    help: 'Connections made (event: connection).',
    registers,
  });
  const acquireWaits = new Counter({
    name: named('acquire_waits_total'),
    help: 'Checkouts that had to wait for a connection (event: enqueue).',
    registers,
  });
  const abandoned = new Counter({
    name: named('abandoned_transactions_total'),
    help: 'Transactions given up without commit or rollback, by reason (event: abandon).',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of Object.keys(ABANDON_REASONS)) abandoned.inc({ reason }, 0);
  const rollbacks = new Counter({
    name: named('rollbacks_total'),
    help: 'Pending ROLLBACKs of abandoned transactions that succeeded (event: rollback).',
    registers,
  });
  const rollbackSeconds = new Histogram({
    name: named('rollback_duration_seconds'),
    help: 'From the release (or the checkout that found it pending) to the end of the ROLLBACK (event: rollback).',
    buckets: ROLLBACK_BUCKETS_S,
    registers,
  });
  const rollbackErrors = new Counter({
    name: named('rollback_errors_total'),
    help: 'Pending ROLLBACKs that failed or timed out; their connection was destroyed (event: rollbackError).',
    registers,
  });
  const destroyed = new Counter({
    name: named('connections_destroyed_total'),
    help: 'Connections closed for good, by reason (event: destroy).',
    labelNames: ['reason'] as const,
    registers,
  });
  const leaks = new Counter({
    name: named('leaks_total'),
    help: 'Leases held longer than leakDetectionMs (event: leak).',
    registers,
  });

  // Only the events that move a metric: mysql2's acquire/release are not listened to (hot path).
  const handlers: PoolEventHandlers = {
    connection: () => opened.inc(),
    enqueue: () => acquireWaits.inc(),
    abandon: (event) => abandoned.inc({ reason: event.reason }),
    rollback: (event) => {
      rollbacks.inc();
      rollbackSeconds.observe(event.durationMs / 1_000);
    },
    rollbackError: () => rollbackErrors.inc(),
    // A short fixed phrase from the pool (`pool closed`, `rollback failed`, `connection error`...): bounded.
    destroy: (event) => destroyed.inc({ reason: event.reason }),
    leak: () => leaks.inc(),
  };
  const unsubscribe = options.subscribe === false ? () => undefined : subscribe(pool, handlers);

  // ---- a histogram from the diagnostics channel: every pool of the process publishes there ----
  const acquireSeconds = new Histogram({
    name: named('acquire_wait_seconds'),
    help: 'How long checkouts waited for a connection (diagnostics channel rollback-pool:acquire).',
    buckets: ACQUIRE_BUCKETS_S,
    registers,
  });
  const onAcquire = (message: unknown): void => {
    const { pool: from, waitMs } = message as DiagnosticsMessages['acquire'];
    if (from === pool) acquireSeconds.observe(waitMs / 1_000);
  };
  subscribeChannel(CHANNEL_NAMES.acquire, onAcquire);

  return {
    registry,
    handlers,
    close() {
      unsubscribeChannel(CHANNEL_NAMES.acquire, onAcquire);
      unsubscribe();
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}

export interface MetricsServerOptions {
  /** Default 9464; 0 picks a free port. */
  port?: number;
  /** Default `'127.0.0.1'`: expose it further on purpose. */
  host?: string;
}

export interface MetricsServer {
  readonly server: Server;
  /** E.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `registry` on `GET /metrics` with node:http. */
export function startMetricsServer(registry: Registry, options: MetricsServerOptions = {}): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
    );
  });
  const host = options.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 9464, host, () => {
      server.removeListener('error', reject);
      const { port } = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((error) => (error ? fail(error) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
