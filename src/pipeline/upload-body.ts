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
import type { Deployment, RoutePlan } from './router.js';

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

/**
 * ④ where an upload goes, decided once its `model` field is read: one deployment, the body
 * streamed through as it arrives; or a route plan with more than one attempt, the body kept
 * (within the upload limit) so a failed attempt can send it again.
 */
export type UploadRoute = { kind: 'streamed'; deployment: Deployment } | { kind: 'kept'; plan: RoutePlan };

interface UploadTarget {
  endpoint: UploadEndpoint;
  /** Includes the multipart boundary. */
  contentType: string;
}

/** Forwarded as it arrives, once: the upload's one attempt. */
export interface StreamedUpload extends UploadTarget {
  kind: 'streamed';
  deployment: Deployment;
  body: Readable;
}

/** Read whole and kept: each attempt sends it again, its `model` rewritten for that deployment. */
export interface KeptUpload extends UploadTarget {
  kind: 'kept';
  plan: RoutePlan;
  /** The client's body as it came, `model` rewritten to this deployment's upstream name. */
  bodyFor(deployment: Deployment): Readable;
}

export type OpenedUpload = StreamedUpload | KeptUpload;

/**
 * A multipart upload, routed: checks the content type, reads as far as the `model` field and
 * has `route` (④) decide. Streamed: returns the whole body, rewritten, as a stream to forward;
 * the bytes before the field are held, within the limit (the official SDKs send `model` before
 * `file`, so they are streamed without holding the file). Kept: reads the rest, within the
 * limit, and keeps the client's bytes to rewrite per attempt. Every `model` part is shown to
 * `route`, to the end of the body, as the rewriter requires (a second one must not slip by).
 */
export async function openUpload(
  request: FastifyRequest,
  endpoint: UploadEndpoint,
  source: UploadSource,
  route: (model: string) => UploadRoute,
): Promise<OpenedUpload> {
  const contentType = request.headers['content-type'];
  const boundary = multipartBoundary(contentType);
  if (!contentType?.toLowerCase().startsWith('multipart/form-data') || !boundary) {
    throw new UnsupportedMediaTypeError(contentType, 'multipart/form-data');
  }
  let routed: UploadRoute | undefined;
  const rewriter = new MultipartModelRewriter(boundary, (model) => {
    const decided = route(model);
    routed ??= decided;
    if (decided.kind === 'kept') return model;
    if (!decided.deployment.backend.supports(endpoint)) throw new EndpointNotSupportedError(endpoint, model);
    return decided.deployment.upstreamModel;
  });
  /** The client's bytes so far, and what the rewriter let through of them. */
  const raw: Buffer[] = [];
  const held: Buffer[] = [];
  let ended = false;
  while (!rewriter.modelKnown) {
    const chunk = await source.next();
    if (chunk === undefined) {
      held.push(rewriter.end());
      ended = true;
      break;
    }
    raw.push(chunk);
    held.push(rewriter.write(chunk));
  }
  const decided = routed as UploadRoute | undefined;
  if (!decided) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model');
  if (decided.kind === 'kept') {
    if (!ended) {
      for (let chunk = await source.next(); chunk !== undefined; chunk = await source.next()) {
        raw.push(chunk);
        rewriter.write(chunk);
      }
      rewriter.end();
    }
    return {
      kind: 'kept',
      plan: decided.plan,
      endpoint,
      contentType,
      bodyFor: (deployment) => {
        const again = new MultipartModelRewriter(boundary, () => deployment.upstreamModel);
        const out = [...raw.map((chunk) => again.write(chunk)), again.end()].filter(
          (part) => part.length > 0,
        );
        return Readable.from(out, { objectMode: false });
      },
    };
  }
  raw.length = 0;
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
  return {
    kind: 'streamed',
    deployment: decided.deployment,
    endpoint,
    contentType,
    body: Readable.from(body(), { objectMode: false }),
  };
}
