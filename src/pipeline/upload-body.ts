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

/** What reading the rest of a refused upload found. */
export type DiscardOutcome = 'ended' | 'over-limit' | 'failed';

/**
 * An upload's body as it arrives, read once, counted against the upload limit. Routing and
 * forwarding read it through `next()`; a refusal reads the rest through `discardRest()`, from the
 * same place, so nothing is read twice or missed whichever stage gave up.
 */
export class UploadSource {
  private readonly iterator: AsyncIterator<Buffer>;
  private received = 0;

  constructor(
    source: Readable,
    readonly limit: number,
  ) {
    this.iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The next chunk, undefined at the end; RequestTooLargeError once the body passes the limit. */
  async next(): Promise<Buffer | undefined> {
    if (this.received > this.limit) throw new RequestTooLargeError(this.limit);
    const next = await this.iterator.next();
    if (next.done) return undefined;
    this.received += next.value.length;
    if (this.received > this.limit) throw new RequestTooLargeError(this.limit);
    return next.value;
  }

  /**
   * After a refusal: reads and drops the rest of the body, as long as it stays within the limit.
   * 'ended' means the connection is ready for the client's next request.
   */
  async discardRest(): Promise<DiscardOutcome> {
    try {
      while ((await this.next()) !== undefined) {}
      return 'ended';
    } catch (error) {
      return error instanceof RequestTooLargeError ? 'over-limit' : 'failed';
    }
  }

  /** Reads and drops everything else the client sends, with no limit (a lingering close). */
  async discardAll(): Promise<void> {
    while (!(await this.iterator.next()).done) {}
  }
}

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
  source: UploadSource,
  rewriter: MultipartModelRewriter,
): Promise<PendingUpload> {
  const held: Buffer[] = [];
  let ended = false;
  while (!rewriter.modelKnown) {
    const chunk = await source.next();
    if (chunk === undefined) {
      held.push(rewriter.end());
      ended = true;
      break;
    }
    held.push(rewriter.write(chunk));
  }
  async function* body(): AsyncGenerator<Buffer> {
    for (const chunk of held) if (chunk.length > 0) yield chunk;
    if (ended) return;
    while (true) {
      const chunk = await source.next();
      if (chunk === undefined) break;
      yield rewriter.write(chunk);
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
  source: UploadSource,
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
  const upload = await readUntilModel(source, rewriter);
  if (!deployment) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model');
  return { deployment, endpoint, contentType, body: Readable.from(upload.body, { objectMode: false }) };
}
