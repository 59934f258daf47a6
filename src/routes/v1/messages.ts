import type { FastifyInstance } from 'fastify';
import type { InferencePipeline } from '../../pipeline/pipeline.js';
import { countTokensRequest, messagesRequest } from '../../schemas/anthropic/messages.js';
import { parseRequestBody } from '../../schemas/parse-input.js';

/**
 * Anthropic's Messages API: `POST /v1/messages` (Claude Code adds `?beta=true`, which routing
 * ignores with the rest of the query) and `POST /v1/messages/count_tokens`. The same pipeline as
 * the OpenAI routes; errors on these paths come out in Anthropic's shape (http/error-surface.ts).
 */
export async function messagesRoutes(
  app: FastifyInstance,
  options: { pipeline: InferencePipeline },
): Promise<void> {
  const { pipeline } = options;
  app.post('/messages', (request, reply) => {
    const body = parseRequestBody(messagesRequest, request.body);
    return pipeline.json(request, reply, {
      endpoint: 'messages',
      body: request.body as Record<string, unknown>,
      stream: body.stream === true,
    });
  });
  app.post('/messages/count_tokens', (request, reply) => {
    parseRequestBody(countTokensRequest, request.body);
    return pipeline.countTokens(request, reply, {
      endpoint: 'messages.count_tokens',
      body: request.body as Record<string, unknown>,
      stream: false,
    });
  });
}
