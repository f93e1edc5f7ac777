/**
 * examples/metrics: the Prometheus exporter and the pino event log, on a real
 * pool against the real server. The pool logs in as a user of its own with a
 * password, so that "no password is ever logged or exported" is checked
 * against a real one.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Connection } from 'mysql2/promise';
import { createPool, type Pool, type PoolEventMap } from '../../src/index';
import { createEventLogger, createLogger } from '../../examples/metrics/logging';
import { createMetrics, startMetricsServer, type MetricsServer, type PoolMetrics } from '../../examples/metrics/metrics';
import { subscribe } from '../../examples/metrics/pool-events';
import { mysqlUrl, sideConnection } from '../support/db';

/** Every line pino writes, parsed. */
class LogCapture extends Writable {
  readonly text: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.text.push(chunk.toString('utf8'));
    done();
  }
  get lines(): Array<Record<string, unknown>> {
    return this.text
      .join('')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  ofEvent(event: string): Array<Record<string, unknown>> {
    return this.lines.filter((line) => line.event === event);
  }
}

/** The value of one sample of the Prometheus text format, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .join(',');
  const prefix = wanted ? `${name}{${wanted}} ` : `${name} `;
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

function nextEvent<K extends keyof PoolEventMap>(pool: Pool, name: K, timeoutMs = 5_000): Promise<PoolEventMap[K]> {
  const emitter = pool as unknown as NodeJS.EventEmitter;
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as PoolEventMap[K]);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(name, listener);
      reject(new Error(`no '${name}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.once(name, listener);
  });
}

async function scrape(server: MetricsServer): Promise<{ status: number; type: string | null; text: string }> {
  const response = await fetch(server.url);
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
}

const user = `rp_metrics_${randomBytes(4).toString('hex')}`;
const password = `S3cret-${randomBytes(8).toString('hex')}`;
let side: Connection;
let pool: Pool;
let metrics: PoolMetrics;
let server: MetricsServer;
let stopLogging: () => void;
const log = new LogCapture();

beforeAll(async () => {
  const url = new URL(mysqlUrl());
  const database = decodeURIComponent(url.pathname.slice(1)) || 'test';
  side = await sideConnection();
  await side.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
  await side.query(`GRANT ALL ON \`${database}\`.* TO ?@?`, [user, '%']);

  pool = createPool({
    host: url.hostname,
    port: Number(url.port || 3306),
    user,
    password,
    database,
    connectionLimit: 2,
  });
  metrics = createMetrics(pool);
  stopLogging = subscribe(pool, createEventLogger(createLogger({ level: 'debug' }, log)));
  server = await startMetricsServer(metrics.registry, { port: 0 });
});

afterAll(async () => {
  await server?.close();
  await pool?.end();
  stopLogging?.();
  metrics?.close();
  await side?.query('DROP USER IF EXISTS ?@?', [user, '%']);
  await side?.end();
});

test('a clean query and an abandoned transaction move the counters, and /metrics shows them', async () => {
  await pool.query('SELECT 1');

  const conn = await pool.getConnection();
  const threadId = conn.threadId;
  await conn.beginTransaction();
  await conn.query('SELECT 1');
  const rolledBack = nextEvent(pool, 'rollback');
  conn.release(); // no COMMIT: abandoned, rolled back by the pool
  await rolledBack;

  const { status, type, text } = await scrape(server);
  expect(status).toBe(200);
  expect(type).toContain('text/plain');
  expect(sample(text, 'rollback_pool_abandoned_transactions_total', { reason: 'released-in-transaction' })).toBe(1);
  expect(sample(text, 'rollback_pool_abandoned_transactions_total', { reason: 'disposed' })).toBe(0);
  expect(sample(text, 'rollback_pool_rollbacks_total')).toBe(1);
  expect(sample(text, 'rollback_pool_rollback_duration_seconds_count')).toBe(1);
  expect(sample(text, 'rollback_pool_rollback_duration_seconds_sum')).toBeGreaterThan(0);
  expect(sample(text, 'rollback_pool_rollback_errors_total')).toBe(0);
  expect(sample(text, 'rollback_pool_leaks_total')).toBe(0);
  expect(sample(text, 'rollback_pool_acquire_waits_total')).toBe(0);
  expect(sample(text, 'rollback_pool_acquire_wait_seconds_count')).toBe(2); // pool.query and getConnection
  expect(sample(text, 'rollback_pool_connections_opened_total')).toBe(1); // the clean query's connection, reused
  // Gauges from pool.stats(), read at scrape time: the rolled back connection is idle again.
  expect(sample(text, 'rollback_pool_connections', { state: 'idle' })).toBe(1);
  expect(sample(text, 'rollback_pool_connections', { state: 'leased' })).toBe(0);
  expect(sample(text, 'rollback_pool_connections', { state: 'pendingRollback' })).toBe(0);
  expect(sample(text, 'rollback_pool_acquirers_waiting')).toBe(0);
  // The event counters agree with the pool's own.
  expect(pool.stats()).toMatchObject({ abandoned: 1, rolledBack: 1, rollbackFailures: 0 });

  // One log line per event, with the event's fields.
  const abandons = log.ofEvent('abandon');
  expect(abandons).toHaveLength(1);
  expect(abandons[0]).toMatchObject({
    level: 40, // warn
    component: 'rollback-pool',
    event: 'abandon',
    threadId,
    reason: 'released-in-transaction',
  });
  expect(typeof abandons[0]?.msg).toBe('string');
  const rollbacks = log.ofEvent('rollback');
  expect(rollbacks).toHaveLength(1);
  expect(rollbacks[0]).toMatchObject({ level: 30, event: 'rollback', threadId });
  expect(rollbacks[0]?.durationMs).toEqual(expect.any(Number));
  expect(log.ofEvent('connection')).toEqual([expect.objectContaining({ event: 'connection', threadId })]);
  // Debug was on when the handlers were made: every checkout and clean release is logged too.
  expect(log.ofEvent('acquire').length).toBe(2);
  expect(log.ofEvent('release').length).toBe(2); // the clean query's, and the clean one after the rollback
  expect(log.ofEvent('rollbackError')).toEqual([]);
});

test('neither the log nor /metrics ever carries the password or the connection settings', async () => {
  const { text } = await scrape(server);
  const everything = log.text.join('') + text;
  expect(everything).not.toContain(password);
  expect(everything).not.toContain(user); // not even the user name: the events carry thread ids only
  for (const line of log.lines) {
    expect(line).not.toHaveProperty('config');
    expect(line).not.toHaveProperty('options');
    expect(line).not.toHaveProperty('connection');
  }
});

test('the logger redacts a password field even if one is logged by mistake', () => {
  const capture = new LogCapture();
  createLogger({}, capture).info({ connection: { host: 'db', password: 'hunter2' }, options: pool.options }, 'oops');
  expect(capture.text.join('')).not.toContain('hunter2');
  expect(capture.text.join('')).not.toContain(password);
  expect(capture.lines[0]).toMatchObject({ connection: { host: 'db', password: '[Redacted]' }, options: '[Redacted]' });
});

test('anything but GET /metrics is a 404', async () => {
  const response = await fetch(server.url.replace(/\/metrics$/, '/'));
  expect(response.status).toBe(404);
  await response.text();
});
