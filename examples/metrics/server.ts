/**
 * `npm run example:metrics`: a pool with Prometheus metrics on
 * http://127.0.0.1:9464/metrics and its events logged as JSON lines by pino.
 * A little traffic keeps the numbers moving: a clean query every second and,
 * every five seconds, a transaction released without COMMIT (which the pool
 * rolls back, logs and counts).
 *
 *   npx tsx examples/metrics/server.ts      (MYSQL_URL, PORT, LOG_LEVEL; DEMO_TRAFFIC=0 for none)
 *   curl -s localhost:9464/metrics | grep rollback_pool_
 *
 * In your own app the import is 'rollback-pool'; here it points at the
 * sources so that the example runs without a build.
 */
import { collectDefaultMetrics } from 'prom-client';
import { createPool } from '../../src/index'; // 'rollback-pool'
import { createEventLogger, createLogger } from './logging';
import { createMetrics, startMetricsServer } from './metrics';
import { subscribe } from './pool-events';

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const PORT = Number(process.env.PORT ?? 9464);

async function main(): Promise<void> {
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'info' });
  const pool = createPool({ uri: MYSQL_URL, connectionLimit: 10 });

  const metrics = createMetrics(pool);
  collectDefaultMetrics({ register: metrics.registry }); // the process's own: CPU, memory, event loop lag
  const stopLogging = subscribe(pool, createEventLogger(logger));
  const server = await startMetricsServer(metrics.registry, { port: PORT });
  // Log where to scrape, never the pool's options or MYSQL_URL (they may hold a password).
  logger.info({ metrics: server.url }, 'serving Prometheus metrics');

  const traffic = process.env.DEMO_TRAFFIC === '0' ? [] : startTraffic(pool, logger);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const timer of traffic) clearInterval(timer);
    await server.close();
    await pool.end(); // its `destroy` events ('pool closed') are still logged
    stopLogging();
    metrics.close();
    logger.info('stopped');
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

/** A clean query every second, an abandoned transaction every five. */
function startTraffic(pool: ReturnType<typeof createPool>, logger: ReturnType<typeof createLogger>): NodeJS.Timeout[] {
  const report = (error: unknown): void => logger.error({ err: error }, 'demo traffic failed');
  const clean = setInterval(() => {
    pool.query('SELECT 1').catch(report);
  }, 1_000);
  const abandoned = setInterval(() => {
    void (async () => {
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.query('SELECT 1');
      conn.release(); // no COMMIT: the pool logs `abandon`, rolls back, logs `rollback`
    })().catch(report);
  }, 5_000);
  return [clean, abandoned];
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
