/**
 * rollback-pool/express: one request scope per HTTP request, for Express 4
 * and 5 (and anything else with `(req, res, next)` middleware over node's
 * http server).
 *
 * ```ts
 * import { scope } from 'rollback-pool/express';
 * app.use(scope(pool)); // before the routes
 * ```
 *
 * Every connection the request's code takes from `pool` (`getConnection`,
 * `begin`, `query`, `execute`, `transaction`) joins the request's unit of
 * work. When the response starts (the first `res.writeHead`, `res.write`,
 * `res.end` or `res.flushHeaders`), that call is held, the scope is committed
 * (status < 400) or rolled back (anything else, or `decide`), and only then
 * does the response go out: the client never sees a success whose data was
 * not committed. If the COMMIT fails, the client gets a 500 with a small JSON
 * body instead. If the client hangs up before the response, the scope rolls
 * back at once and its connections go back to the pool.
 *
 * Thrown errors: Express turns them into an error response (your error
 * handler's status, or 500 from the final handler), which rolls back (a
 * custom `decide` sees that status). Work done after the response started
 * (after the first chunk of a streamed response, say) is no longer in the
 * scope: it runs outside, on its own connections.
 *
 * Express itself is not imported: the middleware is typed with node's http
 * types, so that it fits both Express 4 and 5.
 *
 * @module rollback-pool/express
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../pool/pool';
import type { ScopeDecision, ScopeTransactionOptions } from './scope';
import { clearHeadersForFailure, decisionForStatus, failureResponse, RequestScope } from './http';

/** Express's `next`, as much of it as the middleware uses. */
export type NextFunctionLike = (error?: unknown) => void;

/** The middleware: `(req, res, next)`, assignable to Express 4's and 5's `RequestHandler`. */
export type ScopeMiddleware<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse> = (
  req: Req,
  res: Res,
  next: NextFunctionLike,
) => void;

/** Options of the Express middleware {@link scope}. */
export interface ExpressScopeOptions<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse> extends ScopeTransactionOptions {
  /**
   * Commit or roll back, when the response starts (`res.statusCode` is the
   * status about to be sent). Default: commit below 400, roll back otherwise.
   * If it throws, the scope rolls back and the client gets a 500.
   */
  decide?(req: Req, res: Res): ScopeDecision | Promise<ScopeDecision>;
  /**
   * Told when the scope could not be committed (a `ScopeCommitError`) or
   * `decide` threw; the client got a 500. Default: `console.error`.
   */
  onError?(error: unknown, req: Req, res: Res): void;
}

/** Express middleware that runs each request in a request scope of `pool`. */
export function scope<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>(
  pool: Pool,
  options: ExpressScopeOptions<Req, Res> = {},
): ScopeMiddleware<Req, Res> {
  const { decide, onError = logError } = options;
  return function rollbackPoolScope(req: Req, res: Res, next: NextFunctionLike): void {
    const request = new RequestScope(pool.openScope({ twoPhase: options.twoPhase }));
    const settle = (): Promise<boolean> =>
      request.settle(
        () => (decide ? decide(req, res) : decisionForStatus(res.statusCode)),
        (error) => onError(error, req, res),
      );
    holdResponse(res, settle, () => request.failure);
    // The client hung up before the response (or the response ended without going through us): roll back.
    res.once('close', () => {
      if (!request.settled) void request.rollback();
    });
    request.run(() => next());
  };
}

function logError(error: unknown): void {
  console.error('rollback-pool/express: the request scope was not committed; the client got a 500.', error);
}

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders';
type Call = { method: Method; args: unknown[] };
type AnyMethod = (this: ServerResponse, ...args: unknown[]) => unknown;

/**
 * Holds the response from its first write until `settle` answered, then lets
 * it out (true) or replaces it with a 500 (false). The methods are wrapped on
 * the instance, once, and pass through after that: middleware that wraps them
 * later (compression, on-headers) wraps ours and keeps working.
 */
function holdResponse(res: ServerResponse, settle: () => Promise<boolean>, failure: () => unknown): void {
  const original: Record<Method, AnyMethod> = {
    writeHead: res.writeHead as AnyMethod,
    write: res.write as AnyMethod,
    end: res.end as AnyMethod,
    flushHeaders: res.flushHeaders as AnyMethod,
  };
  let mode: 'watching' | 'holding' | 'through' | 'swallowing' = 'watching';
  const held: Call[] = [];
  let snapshot: Snapshot | undefined;
  let owesDrain = false; // a held write() answered false

  const intercept = (method: Method, args: unknown[]): unknown => {
    if (mode === 'through' || (mode === 'watching' && res.destroyed)) return original[method].apply(res, args);
    if (mode === 'swallowing') {
      callBack(args);
      return method === 'write' ? true : method === 'flushHeaders' ? undefined : res;
    }
    held.push({ method, args });
    if (mode === 'watching') {
      mode = 'holding';
      if (method === 'writeHead' && isStatusCode(args[0])) res.statusCode = args[0]; // what decide() looks at
      snapshot = takeSnapshot(res);
      void settle().then(
        (ok) => (ok ? letOut() : replace()),
        () => replace(),
      );
    }
    if (method !== 'write') return method === 'flushHeaders' ? undefined : res;
    owesDrain = true; // while held, a write says "wait for 'drain'" (emitted once the response is let out)
    return false;
  };

  const letOut = (): void => {
    mode = 'through';
    let ended = false;
    try {
      if (snapshot) restoreSnapshot(res, snapshot); // what the code changed after it "sent" the headers does not count
      for (const call of held) {
        if (ended) {
          callBack(call.args); // a second end() (e.g. an error handler answering too): the response is already out
          continue;
        }
        original[call.method].apply(res, call.args);
        if (call.method === 'end') ended = true;
      }
    } catch {
      res.destroy(); // what would have thrown at the caller (an invalid header) cannot reach it any more
    }
    held.length = 0;
    if (owesDrain && !res.writableNeedDrain && !res.destroyed) res.emit('drain');
  };

  const replace = (): void => {
    mode = 'swallowing';
    for (const call of held) callBack(call.args);
    held.length = 0;
    if (res.headersSent || res.destroyed) {
      res.destroy(); // something wrote past us: the only safe answer left is a broken response
      return;
    }
    const { body, headers } = failureResponse(failure());
    clearHeadersForFailure(res);
    original.writeHead.call(res, 500, 'Internal Server Error', headers);
    original.end.call(res, body);
    if (owesDrain) res.emit('drain'); // writers waiting for it go on, into the void
  };

  for (const method of Object.keys(original) as Method[]) {
    (res as unknown as Record<Method, AnyMethod>)[method] = function (this: ServerResponse, ...args: unknown[]) {
      return intercept(method, args);
    };
  }
}

/** Calls the callback of a held write/end that will not be replayed, as if it had been written. */
function callBack(args: unknown[]): void {
  const last = args[args.length - 1];
  if (typeof last === 'function') process.nextTick(last as () => void);
}

function isStatusCode(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 999;
}

interface Snapshot {
  statusCode: number;
  statusMessage: string;
  headers: Map<string, number | string | string[]>;
}

function takeSnapshot(res: ServerResponse): Snapshot {
  const headers = new Map<string, number | string | string[]>();
  for (const name of res.getHeaderNames()) {
    const value = res.getHeader(name);
    if (value !== undefined) headers.set(name, value);
  }
  return { statusCode: res.statusCode, statusMessage: res.statusMessage, headers };
}

function restoreSnapshot(res: ServerResponse, snapshot: Snapshot): void {
  res.statusCode = snapshot.statusCode;
  res.statusMessage = snapshot.statusMessage;
  for (const name of res.getHeaderNames()) {
    if (!snapshot.headers.has(name)) res.removeHeader(name);
  }
  for (const [name, value] of snapshot.headers) {
    if (!sameValue(res.getHeader(name), value)) res.setHeader(name, value);
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}
