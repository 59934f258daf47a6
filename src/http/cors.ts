import type { FastifyInstance } from 'fastify';

export interface CorsOptions {
  /** `'*'`, or the origins whose pages may call the gateway. */
  origins: '*' | readonly string[];
  /** Response headers a page's script may read. */
  exposedHeaders: readonly string[];
}

const ALLOWED_METHODS = 'GET, POST, PATCH, DELETE, OPTIONS';
/** How long a browser may reuse a preflight's answer. */
const PREFLIGHT_MAX_AGE_S = '600';

/**
 * CORS for browser clients, done by hand rather than with @fastify/cors because a request
 * without `Origin` (every SDK, curl, server-to-server: nearly all of a gateway's traffic) needs
 * none of it, and that plugin writes its headers (~400 bytes of them) on every response: measured
 * at ~3 % of the instructions of a request (BENCHMARKS.md). A browser always sends `Origin` on
 * the cross-origin requests CORS governs.
 *
 * Registered after the error handler, whose hook answers an OPTIONS that is no preflight.
 */
export function registerCors(app: FastifyInstance, options: CorsOptions): void {
  const anyOrigin = options.origins === '*';
  const allowed = new Set(anyOrigin ? [] : options.origins);
  const exposed = options.exposedHeaders.join(', ');

  app.addHook('onRequest', (request, reply, done) => {
    const headers = request.headers;
    // With a list the answer depends on the origin: caches must keep one per origin, also of
    // answers to requests without one (else a cached answer without allow-origin reaches a page).
    if (!anyOrigin) reply.header('vary', 'Origin');
    const origin = headers.origin;
    if (origin === undefined) {
      done();
      return;
    }
    const allowOrigin = anyOrigin ? '*' : allowed.has(origin) ? origin : undefined;
    if (allowOrigin !== undefined) {
      reply.header('access-control-allow-origin', allowOrigin);
      reply.header('access-control-expose-headers', exposed);
    }
    if (request.method !== 'OPTIONS' || headers['access-control-request-method'] === undefined) {
      done();
      return;
    }
    // A preflight, answered here: it carries no credentials, so it must not reach auth. Allowed
    // request headers mirror what it asks for, so X-Stainless-* and friends pass.
    reply.header('access-control-allow-methods', ALLOWED_METHODS);
    const asked = headers['access-control-request-headers'];
    if (asked !== undefined) reply.header('access-control-allow-headers', asked);
    reply.header(
      'vary',
      anyOrigin ? 'Access-Control-Request-Headers' : 'Origin, Access-Control-Request-Headers',
    );
    reply.header('access-control-max-age', PREFLIGHT_MAX_AGE_S);
    reply.code(204).header('content-length', '0').send();
  });

  // A preflight may be for any path: this route makes the router take it, so the hook above
  // runs. What reaches the handler is an OPTIONS the hooks did not answer.
  app.options('*', (_request, reply) => {
    reply.callNotFound();
  });
}
