import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { UploadEndpoint } from '../backends/backend.js';
import {
  EndpointNotSupportedError,
  InvalidRequestError,
  RequestTooLargeError,
  UnsupportedMediaTypeError,
} from '../errors.js';
import { MultipartModelRewriter, multipartBoundary } from '../http/multipart-model-rewriter.js';
import type { Deployment } from './router.js';

export interface PendingUpload {
  /** The rest of the body, rewritten, counted against the limit; held bytes come first. */
  body: AsyncGenerator<Buffer>;
}

/**
 * Reads a multipart body only as far as its `model` field (the router needs it before any
 * byte can go upstream), then returns a generator for the whole body. Clients that send
 * `model` before `file` (the official SDKs send fields in the order given) are streamed
 * without holding the file; otherwise the bytes before the field are held, within the limit.
 */
export async function readUntilModel(
  source: Readable,
  rewriter: MultipartModelRewriter,
  limit: number,
): Promise<PendingUpload> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const held: Buffer[] = [];
  let size = 0;
  const count = (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) throw new RequestTooLargeError(limit);
  };
  let ended = false;
  while (!rewriter.modelKnown) {
    const next = await iterator.next();
    if (next.done) {
      held.push(rewriter.end());
      ended = true;
      break;
    }
    count(next.value);
    held.push(rewriter.write(next.value));
  }
  async function* body(): AsyncGenerator<Buffer> {
    for (const chunk of held) if (chunk.length > 0) yield chunk;
    if (ended) return;
    while (true) {
      const next = await iterator.next();
      if (next.done) break;
      count(next.value);
      yield rewriter.write(next.value);
    }
    const rest = rewriter.end();
    if (rest.length > 0) yield rest;
  }
  return { body: body() };
}

export interface OpenedUpload {
  deployment: Deployment;
  endpoint: UploadEndpoint;
  /** Includes the multipart boundary. */
  contentType: string;
  body: Readable;
}

/**
 * A multipart upload, routed: checks the content type, reads as far as the `model` field, has
 * `route` (④) resolve it, and returns the whole body, rewritten, as a stream to forward.
 */
export async function openUpload(
  request: FastifyRequest,
  endpoint: UploadEndpoint,
  limit: number,
  route: (model: string) => Deployment,
): Promise<OpenedUpload> {
  const contentType = request.headers['content-type'];
  const boundary = multipartBoundary(contentType);
  if (!contentType?.toLowerCase().startsWith('multipart/form-data') || !boundary) {
    throw new UnsupportedMediaTypeError(contentType, 'multipart/form-data');
  }
  let deployment: Deployment | undefined;
  const rewriter = new MultipartModelRewriter(boundary, (model) => {
    deployment = route(model);
    if (!deployment.backend.supports(endpoint)) throw new EndpointNotSupportedError(endpoint, model);
    return deployment.upstreamModel;
  });
  const upload = await readUntilModel(request.raw, rewriter, limit);
  if (!deployment) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model');
  return { deployment, endpoint, contentType, body: Readable.from(upload.body, { objectMode: false }) };
}
