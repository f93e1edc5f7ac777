/**
 * rollback-pool/koa: one request scope per HTTP request, for Koa 3.
 *
 * ```ts
 * import { scope } from 'rollback-pool/koa';
 * app.use(scope(pool)); // before the routes
 * ```
 *
 * The middleware runs the rest of the chain inside the scope: every
 * connection it takes from `pool` (`getConnection`, `begin`, `query`,
 * `execute`, `transaction`) joins the request's unit of work. When the chain
 * resolves, and before Koa writes the response (a stream body included), the
 * scope is committed (`ctx.status` < 400) or rolled back (anything else, or
 * `decide`); if the chain throws, it rolls back and the error goes on to Koa.
 * If the COMMIT fails, the response becomes a 500 with a small JSON body. If
 * the client hangs up first, the scope rolls back at once and its connections
 * go back to the pool.
 *
 * Writing to `ctx.res` directly (`ctx.respond = false`) bypasses Koa's
 * response, and so the moment this middleware decides: commit yourself
 * before writing in that case.
 *
 * Koa is not imported, not even its types: the context is typed by the few
 * members the middleware uses, which Koa's context has.
 *
 * @module rollback-pool/koa
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../pool/pool';
import type { ScopeDecision, ScopeTransactionOptions } from './scope';
import { clearHeadersForFailure, decisionForStatus, failureBody, isStream, RequestScope } from './http';

/**
 * The members of Koa's context the middleware and a `decide` use. Koa's own
 * `Context` has them all: pass it (`scope<Koa.Context>(pool, ...)`) to give
 * `decide` the full types.
 */
export interface KoaContextLike {
  status: number;
  body: unknown;
  readonly headerSent: boolean;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly request: { readonly method: string; readonly path: string; readonly headers: IncomingHttpHeaders; get(field: string): string };
  readonly response: { readonly status: number; readonly body: unknown };
  readonly app: { emit(event: 'error', ...args: unknown[]): unknown };
}

/** Options of the Koa middleware {@link scope}. */
export interface KoaScopeOptions<Ctx extends KoaContextLike = KoaContextLike> extends ScopeTransactionOptions {
  /**
   * Commit or roll back, when the chain resolved (`ctx.status` is the status
   * about to be sent). Default: commit below 400, roll back otherwise. If it
   * throws, the scope rolls back and the client gets a 500.
   */
  decide?(req: Ctx['request'], res: Ctx['response'], ctx: Ctx): ScopeDecision | Promise<ScopeDecision>;
  /**
   * Told when the scope could not be committed (a `ScopeCommitError`) or
   * `decide` threw; the client got a 500. Default: `ctx.app.emit('error', error, ctx)`,
   * which Koa logs.
   */
  onError?(error: unknown, ctx: Ctx): void;
}

/** The middleware: `(ctx, next) => Promise<void>`. */
export type KoaScopeMiddleware<Ctx extends KoaContextLike = KoaContextLike> = (ctx: Ctx, next: () => Promise<unknown>) => Promise<void>;

/** Koa middleware that runs each request in a request scope of `pool`. */
export function scope<Ctx extends KoaContextLike = KoaContextLike>(pool: Pool, options: KoaScopeOptions<Ctx> = {}): KoaScopeMiddleware<Ctx> {
  const { decide } = options;
  const onError = options.onError ?? ((error: unknown, ctx: Ctx) => void ctx.app.emit('error', error, ctx));
  return async function rollbackPoolScope(ctx: Ctx, next: () => Promise<unknown>): Promise<void> {
    const request = new RequestScope(pool.openScope({ twoPhase: options.twoPhase }));
    // The client hung up before the response: roll back now, not when the handler is done.
    ctx.res.once('close', () => {
      if (!request.settled) void request.rollback();
    });
    try {
      await request.run(next);
    } catch (error) {
      await request.rollback();
      throw error;
    }
    const ok = await request.settle(
      () => (decide ? decide(ctx.request, ctx.response, ctx) : decisionForStatus(ctx.status)),
      (error) => onError(error, ctx),
    );
    if (ok) return;
    if (ctx.headerSent) {
      ctx.res.destroy(); // written past Koa: the only safe answer left is a broken response
      return;
    }
    // The COMMIT failed: this response must not go out. Answer 500 instead.
    const body = ctx.body;
    if (isStream(body)) body.destroy();
    clearHeadersForFailure(ctx.res);
    ctx.status = 500;
    ctx.body = failureBody(request.failure);
  };
}
