/**
 * rollback-pool/fastify: one request scope per HTTP request, for Fastify 5.
 *
 * ```ts
 * import { scope } from 'rollback-pool/fastify';
 * await app.register(scope(pool)); // before the routes
 * ```
 *
 * Every connection the request's code takes from `pool` (`getConnection`,
 * `begin`, `query`, `execute`, `transaction`) joins the request's unit of
 * work. In `onSend`, before anything is written, the scope is committed
 * (status < 400, no error) or rolled back (an error was thrown, or the status
 * is 400 or more, or `decide` says so): the client never sees a success whose
 * data was not committed. If the COMMIT fails, the reply becomes a 500 with a
 * small JSON body. If the client hangs up first (`onRequestAbort`), or the
 * response ends without going through `onSend` (`reply.hijack()`), the scope
 * rolls back and its connections go back to the pool.
 *
 * The plugin is not encapsulated (it carries fastify-plugin's
 * `skip-override` mark), so its hooks apply to the whole app. Register it
 * before other plugins whose hooks use the database. Fastify is not imported
 * at run time, only its types.
 *
 * @module rollback-pool/fastify
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { Pool } from '../pool/pool';
import type { ScopeDecision, ScopeTransactionOptions } from './scope';
import { clearHeadersForFailure, decisionForStatus, failureResponse, isStream, RequestScope } from './http';

/** Options of the Fastify plugin {@link scope}. */
export interface FastifyScopeOptions extends ScopeTransactionOptions {
  /**
   * Commit or roll back, in `onSend` (`reply.statusCode` is the status about
   * to be sent). Not asked when the request failed with an error: that always
   * rolls back. Default: commit below 400, roll back otherwise. If it throws,
   * the scope rolls back and the client gets a 500.
   */
  decide?(request: FastifyRequest, reply: FastifyReply): ScopeDecision | Promise<ScopeDecision>;
  /**
   * Told when the scope could not be committed (a `ScopeCommitError`) or
   * `decide` threw; the client got a 500. Default: `request.log.error`.
   */
  onError?(error: unknown, request: FastifyRequest, reply: FastifyReply): void;
}

interface RequestState {
  readonly scope: RequestScope;
  /** An error went through Fastify's error handling (`onError`). */
  errored: boolean;
}

/** A Fastify plugin that runs each request in a request scope of `pool`. */
export function scope(pool: Pool, options: FastifyScopeOptions = {}): FastifyPluginCallback {
  const { decide } = options;
  const onError = options.onError ?? logError;
  const states = new WeakMap<FastifyRequest, RequestState>();

  const plugin: FastifyPluginCallback = (app, _opts, done) => {
    app.addHook('onRequest', (request, reply, next) => {
      const state: RequestState = { scope: new RequestScope(pool.openScope({ twoPhase: options.twoPhase })), errored: false };
      states.set(request, state);
      // The response ended without a decision (hijacked, or the socket closed): roll back.
      reply.raw.once('close', () => {
        if (!state.scope.settled) void state.scope.rollback();
      });
      // Everything after this hook (parsing, hooks, the handler) starts inside the scope.
      state.scope.run(() => next());
    });

    // Fastify 5 runs its content-type parsers in the request's async context; a body parsed in
    // callbacks of its own (as in Fastify 4, or a custom parser) would not be. Enter the scope
    // again for validation, preHandler and the handler, as @fastify/request-context does.
    app.addHook('preValidation', (request, _reply, next) => {
      const state = states.get(request);
      if (state && !state.scope.settled) state.scope.run(() => next());
      else next();
    });

    app.addHook('onError', (request, _reply, _error, next) => {
      const state = states.get(request);
      if (state) state.errored = true;
      next();
    });

    app.addHook('onSend', async (request, reply, payload) => {
      const state = states.get(request);
      if (!state) return payload;
      const ok = await state.scope.settle(
        () => {
          if (state.errored) return 'rollback'; // a thrown error rolls back, whatever the reply says
          return decide ? decide(request, reply) : decisionForStatus(reply.statusCode);
        },
        (error) => onError(error, request, reply),
      );
      if (ok) return payload;
      if (reply.raw.headersSent) {
        reply.raw.destroy(); // written past Fastify: the only safe answer left is a broken response
        return payload;
      }
      // The COMMIT failed: this reply must not go out. Answer 500 instead.
      if (isStream(payload)) payload.destroy();
      const failure = failureResponse(state.scope.failure);
      clearHeadersForFailure(reply.raw);
      for (const name of Object.keys(reply.getHeaders())) {
        if (name !== 'vary' && !name.startsWith('access-control-')) reply.removeHeader(name);
      }
      reply.code(500).headers(failure.headers);
      return failure.body;
    });

    app.addHook('onRequestAbort', (request, next) => {
      const state = states.get(request);
      if (state) void state.scope.rollback();
      next();
    });

    done();
  };

  // fastify-plugin's marks, without depending on it: no encapsulation, a name, the Fastify versions it fits.
  Object.defineProperties(plugin, {
    [Symbol.for('skip-override')]: { value: true },
    [Symbol.for('fastify.display-name')]: { value: 'rollback-pool/fastify' },
    [Symbol.for('plugin-meta')]: { value: { name: 'rollback-pool/fastify', fastify: '5.x' } },
  });
  return plugin;
}

function logError(error: unknown, request: FastifyRequest): void {
  request.log.error({ err: error }, 'rollback-pool/fastify: the request scope was not committed; the client got a 500.');
}
