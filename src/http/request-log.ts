import type { FastifyReply, FastifyRequest } from 'fastify';

/** The one log line per request, written when its response is finished or abandoned. */
export function logRequest(request: FastifyRequest, reply: FastifyReply): void {
  const g = request.gateway;
  request.log.info(
    {
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
