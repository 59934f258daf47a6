import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';

/**
 * Which requests get a `request` line: every one, only those that failed (status 400 or above,
 * a client that left, a stream that broke after its 200), or none. A line costs ~20 µs of the
 * event loop per request at saturation (BENCHMARKS.md), which a busy instance whose traffic is
 * watched through /admin/metrics and the usage records may rather spend on requests.
 */
export const REQUEST_LINE_CHOICES = ['all', 'errors', 'none'] as const;
export type RequestLines = (typeof REQUEST_LINE_CHOICES)[number];

/** Called once per request when its response is finished or abandoned. */
export type RequestLineWriter = (request: FastifyRequest, reply: FastifyReply) => void;

/**
 * The request line writer for `log.requests`. Its logger is the gateway's own without the
 * redaction of credential paths: the line holds only fields the gateway fills (never headers or
 * config), and redacting it cost more than writing it (~2 µs a line).
 */
export function requestLineWriter(logger: FastifyBaseLogger, lines: RequestLines): RequestLineWriter {
  if (lines === 'none') return () => {};
  const log = logger.child({}, { redact: { paths: [] } });
  if (lines === 'errors')
    return (request, reply) => {
      if (failed(request, reply)) writeLine(log, request, reply);
    };
  return (request, reply) => writeLine(log, request, reply);
}

function failed(request: FastifyRequest, reply: FastifyReply): boolean {
  const g = request.gateway;
  return reply.raw.statusCode >= 400 || g.abort.signal.aborted || g.streamError === true;
}

function writeLine(log: FastifyBaseLogger, request: FastifyRequest, reply: FastifyReply): void {
  const g = request.gateway;
  log.info(
    {
      request_id: request.id,
      method: request.method,
      route: request.routeOptions.url ?? null,
      model: g.model,
      backend: g.deployment,
      attempts: g.attempts,
      stream: g.stream,
      status: reply.raw.statusCode,
      duration_ms: Math.round((performance.now() - g.startedAt) * 100) / 100,
      aborted: g.abort.signal.aborted || undefined,
      stream_error: g.streamError,
      prompt_tokens: g.usage?.prompt_tokens ?? g.usage?.input_tokens,
      completion_tokens: g.usage?.completion_tokens ?? g.usage?.output_tokens,
    },
    'request',
  );
}
