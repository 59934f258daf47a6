import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { JsonEndpoint } from '../../backends/backend.js';
import type { InferencePipeline } from '../../pipeline/pipeline.js';
import { chatCompletionRequest } from '../../schemas/openai/chat-completions.js';
import { completionRequest } from '../../schemas/openai/completions.js';
import { embeddingRequest } from '../../schemas/openai/embeddings.js';
import {
  imageGenerationRequest,
  moderationRequest,
  speechRequest,
} from '../../schemas/openai/passthrough.js';
import { responseRequest } from '../../schemas/openai/responses.js';
import { parseRequestBody } from '../../schemas/parse-input.js';

interface JsonRoute {
  url: string;
  endpoint: JsonEndpoint;
  schema: z.ZodType<Record<string, unknown>>;
  /** OpenAI's model for this endpoint when the body names none (routing only; never injected). */
  impliedModel?: string;
}

const ROUTES: JsonRoute[] = [
  { url: '/chat/completions', endpoint: 'chat.completions', schema: chatCompletionRequest },
  { url: '/completions', endpoint: 'completions', schema: completionRequest },
  { url: '/embeddings', endpoint: 'embeddings', schema: embeddingRequest },
  { url: '/responses', endpoint: 'responses', schema: responseRequest },
  {
    url: '/images/generations',
    endpoint: 'images.generations',
    schema: imageGenerationRequest,
    impliedModel: 'dall-e-2',
  },
  {
    url: '/moderations',
    endpoint: 'moderations',
    schema: moderationRequest,
    impliedModel: 'omni-moderation-latest',
  },
  { url: '/audio/speech', endpoint: 'audio.speech', schema: speechRequest },
];

/** Thin handlers: validate what the gateway reads, then hand the body to the pipeline. */
export async function inferenceRoutes(
  app: FastifyInstance,
  options: { pipeline: InferencePipeline },
): Promise<void> {
  const { pipeline } = options;
  for (const route of ROUTES) {
    app.post(route.url, (request: FastifyRequest, reply: FastifyReply) => {
      const body = parseRequestBody(route.schema, request.body);
      return pipeline.json(request, reply, {
        endpoint: route.endpoint,
        body: request.body as Record<string, unknown>,
        stream: body.stream === true,
        ...(route.impliedModel ? { impliedModel: route.impliedModel } : {}),
      });
    });
  }
  // Legacy clients name the model in the path: /v1/engines/{engine}/completions.
  app.post(
    '/engines/:engine/completions',
    (request: FastifyRequest<{ Params: { engine: string } }>, reply) => {
      const raw = request.body;
      const withModel =
        raw !== null && typeof raw === 'object' && !Array.isArray(raw)
          ? {
              ...(raw as Record<string, unknown>),
              model: (raw as { model?: unknown }).model ?? request.params.engine,
            }
          : raw;
      const body = parseRequestBody(completionRequest, withModel);
      return pipeline.json(request, reply, {
        endpoint: 'completions',
        body: withModel as Record<string, unknown>,
        stream: body.stream === true,
      });
    },
  );
}
