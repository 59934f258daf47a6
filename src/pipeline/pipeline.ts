import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UploadEndpoint } from '../backends/backend.js';
import type { JsonDispatch } from './dispatch.js';

/** What the /v1 routes hand their requests to: the forward path (forward.ts). */
export interface InferencePipeline {
  json(request: FastifyRequest, reply: FastifyReply, dispatch: JsonDispatch): Promise<unknown>;
  /** A request that measures and generates nothing (count_tokens): routed, never reserved or charged. */
  countTokens(request: FastifyRequest, reply: FastifyReply, dispatch: JsonDispatch): Promise<unknown>;
  upload(request: FastifyRequest, reply: FastifyReply, endpoint: UploadEndpoint): Promise<unknown>;
}
