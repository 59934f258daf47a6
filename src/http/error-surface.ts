import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { anthropicErrorEvent, anthropicErrorPayload } from './anthropic-error.js';
import { type ErrorPayload, errorEvent, errorPayload, responsesErrorEvent } from './openai-error.js';

/**
 * Which API's error shapes a request gets. The gateway serves two surfaces on one port: OpenAI's
 * (`{"error":{...}}`, `data:` error events) and Anthropic's Messages API
 * (`{"type":"error","error":{...}}`, `event: error`). Anthropic's SDKs and Claude Code send
 * `anthropic-version` on every request, and nothing else does, so that header (or a path under
 * `/v1/messages`) picks Anthropic's shapes, for errors raised anywhere: auth, limits, routing,
 * 404 / 405, upstream failures.
 */
export type ErrorSurface = 'openai' | 'anthropic';

/** How a stream that failed after its 200 ends: also the Responses API's own `error` event. */
export type StreamErrorSurface = ErrorSurface | 'responses';

export function errorSurfaceOf(url: string, headers: IncomingHttpHeaders): ErrorSurface {
  if (headers['anthropic-version'] !== undefined) return 'anthropic';
  return url === '/v1/messages' || url.startsWith('/v1/messages/') || url.startsWith('/v1/messages?')
    ? 'anthropic'
    : 'openai';
}

export interface SurfaceErrorOptions {
  /** The request's Content-Type, for the message of a 415. */
  contentType?: string | undefined;
  requestId?: string | undefined;
}

/** Status, headers and body of an error answer on `surface`. */
export function surfaceErrorPayload(
  surface: ErrorSurface,
  error: unknown,
  bodyLimit: number,
  options: SurfaceErrorOptions = {},
): ErrorPayload | ReturnType<typeof anthropicErrorPayload> {
  return surface === 'anthropic'
    ? anthropicErrorPayload(error, bodyLimit, options)
    : errorPayload(error, bodyLimit, options.contentType);
}

/**
 * The SSE event that ends a stream which failed after its 200, on `surface`; on `responses`
 * numbered `sequenceNumber`, the stream's next.
 */
export function surfaceErrorEvent(
  surface: StreamErrorSurface,
  error: unknown,
  bodyLimit: number,
  requestId?: string,
  sequenceNumber = 0,
): string {
  if (surface === 'anthropic') return anthropicErrorEvent(error, bodyLimit, requestId);
  return surface === 'responses'
    ? responsesErrorEvent(error, bodyLimit, sequenceNumber)
    : errorEvent(error, bodyLimit);
}

/**
 * `error` as a whole answer written on `response` outside fastify's reply (node:http's own events,
 * shutdown's end), in the shape of the API the request speaks and with its request id, closing
 * the connection after it.
 */
export function endWithSurfaceError(
  response: ServerResponse,
  request: { url?: string | undefined; headers: IncomingHttpHeaders },
  error: unknown,
  bodyLimit: number,
  requestId: string,
): void {
  const surface = errorSurfaceOf(request.url ?? '', request.headers);
  const payload = surfaceErrorPayload(surface, error, bodyLimit, { requestId });
  const body = Buffer.isBuffer(payload.body) ? payload.body : Buffer.from(JSON.stringify(payload.body));
  response.writeHead(payload.status, {
    ...payload.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': body.length,
    'x-request-id': requestId,
    // Anthropic's SDKs read the request id from their own header name.
    ...(surface === 'anthropic' ? { 'request-id': requestId } : {}),
    connection: 'close',
  });
  response.end(body);
}
