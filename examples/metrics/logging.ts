/**
 * The pool's events as structured logs with pino: one line per event, with
 * the event's own fields (`event`, `threadId`, `reason`, `durationMs`...).
 *
 * Only those fields are logged. Never log `pool.options` or a mysql2
 * connection object: both hold the connection settings, password included.
 * `createLogger` also redacts any `password` field, in case one slips in.
 */
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { PoolEventHandlers } from './pool-events';

/** Paths pino replaces with `[Redacted]`: a second line of defence, not the first. */
export const REDACT_PATHS = ['password', '*.password', '*.*.password', 'config', '*.config', 'options', '*.options'];

/** A pino logger with password redaction; `destination` defaults to stdout. */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const settings: LoggerOptions = { level: 'info', ...options, redact: { paths: REDACT_PATHS, censor: '[Redacted]' } };
  return destination ? pino(settings, destination) : pino(settings);
}

/**
 * Handlers that log each event (subscribe them with `subscribe(pool, ...)`).
 * Levels: `abandon` and `leak` warn (a code path gave up a transaction or
 * holds a connection too long), `rollbackError` is an error, `destroy` warns
 * when it carries an error. mysql2's `acquire`/`release` fire on every
 * checkout: they are logged (at debug) only when debug is enabled when the
 * handlers are made, so that the pool does not emit them for nothing.
 */
export function createEventLogger(logger: Logger): PoolEventHandlers {
  const log = logger.child({ component: 'rollback-pool' });
  const handlers: PoolEventHandlers = {
    connection: (connection) => log.info({ event: 'connection', threadId: connection.threadId }, 'connection opened'),
    enqueue: () => log.debug({ event: 'enqueue' }, 'checkout waiting for a free connection'),
    abandon: ({ threadId, reason, stack }) =>
      log.warn({ event: 'abandon', threadId, reason, stack }, 'transaction abandoned without commit or rollback; the pool rolls it back'),
    rollback: ({ threadId, durationMs }) =>
      log.info({ event: 'rollback', threadId, durationMs }, 'abandoned transaction rolled back'),
    rollbackError: ({ threadId, error }) =>
      log.error({ event: 'rollbackError', threadId, err: error }, 'rollback of an abandoned transaction failed; its connection was destroyed'),
    destroy: ({ threadId, reason, error }) =>
      error === undefined
        ? log.info({ event: 'destroy', threadId, reason }, 'connection destroyed')
        : log.warn({ event: 'destroy', threadId, reason, err: error }, 'connection destroyed'),
    leak: ({ threadId, heldMs, stack }) =>
      log.warn({ event: 'leak', threadId, heldMs, stack }, 'connection held longer than leakDetectionMs'),
  };
  if (log.isLevelEnabled('debug')) {
    handlers.acquire = (connection) => log.debug({ event: 'acquire', threadId: connection.threadId }, 'connection checked out');
    handlers.release = (connection) => log.debug({ event: 'release', threadId: connection.threadId }, 'connection released clean');
  }
  return handlers;
}
