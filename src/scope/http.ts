/**
 * What the framework adapters (express, fastify, koa) share: the default
 * decision from an HTTP status, the one-time settling of a request's scope,
 * and the 500 that replaces a response whose changes could not be committed.
 * Framework-free: only node's http types.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { RollbackPoolError } from '../errors';
import type { ScopeDecision, ScopeHandle } from './scope';

/** The default decision: a status below 400 commits, anything else rolls back. */
export function decisionForStatus(status: number): ScopeDecision {
  return status < 400 ? 'commit' : 'rollback';
}

/**
 * A request's scope, settled once: by the response (`settle`, with the
 * adapter's decision) or by the request going away first (`rollback`).
 */
export class RequestScope {
  private settling: Promise<boolean> | undefined;
  /** Why `settle` answered false: the COMMIT's (or `decide`'s) error. */
  failure: unknown;

  constructor(private readonly handle: ScopeHandle) {}

  /** Runs `fn` inside the scope. */
  run<T>(fn: () => T): T {
    return this.handle.run(fn);
  }

  /** True once `settle` or `rollback` was called. */
  get settled(): boolean {
    return this.settling !== undefined;
  }

  /**
   * Decides and finishes the scope. Resolves true when the response may go
   * out as it is (committed, or rolled back as decided), false when it must
   * not: `decide` threw or the COMMIT failed (`report` got the error and the
   * scope is rolled back). Later calls get the first call's answer.
   */
  settle(decide: () => ScopeDecision | Promise<ScopeDecision>, report: (error: unknown) => void): Promise<boolean> {
    this.settling ??= this.finish(decide, report);
    return this.settling;
  }

  /** The request went away (client hang-up, error, no response): roll back now, unless already settling. */
  rollback(): Promise<boolean> {
    this.settling ??= this.handle.abort().then(yes, yes); // a failed ROLLBACK destroyed its connection
    return this.settling;
  }

  private async finish(decide: () => ScopeDecision | Promise<ScopeDecision>, report: (error: unknown) => void): Promise<boolean> {
    let decision: ScopeDecision;
    try {
      decision = (await decide()) === 'commit' ? 'commit' : 'rollback';
    } catch (error) {
      await this.handle.finish('rollback').catch(noop);
      this.failure = error;
      safely(report, error);
      return false;
    }
    try {
      await this.handle.finish(decision);
      return true;
    } catch (error) {
      this.failure = error;
      safely(report, error);
      return false;
    }
  }
}

/** The body of the 500 that replaces a response whose changes were not committed. */
export function failureBody(error: unknown): { statusCode: 500; error: string; message: string; code?: string } {
  const body: { statusCode: 500; error: string; message: string; code?: string } = {
    statusCode: 500,
    error: 'Internal Server Error',
    message: 'The changes of this request could not be committed.',
  };
  if (error instanceof RollbackPoolError) body.code = error.code;
  return body;
}

/** `failureBody` as JSON, with the headers to send it with. */
export function failureResponse(error: unknown): { body: string; headers: OutgoingHttpHeaders } {
  const body = JSON.stringify(failureBody(error));
  return {
    body,
    headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) },
  };
}

/**
 * Clears the headers the handler set for the response that is being replaced
 * (its length, type, cookies, cache validators...), keeping only CORS headers
 * so that a browser can still read the 500.
 */
export function clearHeadersForFailure(res: ServerResponse): void {
  for (const name of res.getHeaderNames()) {
    if (name === 'vary' || name.startsWith('access-control-')) continue;
    res.removeHeader(name);
  }
}

/** True for a node stream (its data must be released when the response is replaced). */
export function isStream(value: unknown): value is { pipe: unknown; destroy(): void } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { pipe?: unknown }).pipe === 'function' &&
    typeof (value as { destroy?: unknown }).destroy === 'function'
  );
}

/** Calls the user's error callback; one that throws does so on the next tick, like a throwing event listener. */
function safely(report: (error: unknown) => void, error: unknown): void {
  try {
    report(error);
  } catch (reportError) {
    process.nextTick(() => {
      throw reportError;
    });
  }
}

function yes(): boolean {
  return true;
}

function noop(): void {
  return undefined;
}
