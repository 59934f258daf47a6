import type { FastifyError } from 'fastify';
import {
  GatewayError,
  InvalidRequestError,
  type OpenAIErrorBody,
  RequestTooLargeError,
  UnsupportedMediaTypeError,
  UpstreamClientError,
} from '../errors.js';

/**
 * The one place where errors become OpenAI error JSON: Fastify's own errors, our typed
 * errors, upstream errors, and anything unexpected (which never shows its stack).
 */
export interface ErrorPayload {
  status: number;
  headers: Record<string, string>;
  body: OpenAIErrorBody | Buffer;
}

export function isFastifyError(error: unknown): error is FastifyError {
  return error instanceof Error && typeof (error as Partial<FastifyError>).code === 'string';
}

export function toGatewayError(error: unknown, bodyLimit: number, contentType?: string): GatewayError {
  if (error instanceof GatewayError) return error;
  if (isFastifyError(error)) {
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new RequestTooLargeError(bodyLimit);
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return new UnsupportedMediaTypeError(contentType, 'application/json');
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return new InvalidRequestError('The request body is empty; this endpoint expects a JSON object.');
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return new InvalidRequestError(unparseableMessage());
    }
  }
  if (error instanceof SyntaxError) return new InvalidRequestError(unparseableMessage());
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    // JSON.parse accepts nesting that serialising it again cannot survive.
    return new InvalidRequestError('The request body is nested too deeply.');
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new GatewayError(status, 'invalid_request_error', null, (error as Error).message);
  }
  return new GatewayError(500, 'server_error', 'internal_error', 'The gateway hit an unexpected error.');
}

function unparseableMessage(): string {
  return 'We could not parse the JSON body of your request. The API expects a JSON payload; check that it is valid JSON.';
}

/** Upstream 4xx: its own body when it is an OpenAI envelope, otherwise wrapped into one. */
function upstreamPayload(error: UpstreamClientError): ErrorPayload {
  const text = error.upstreamBody.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const inner = (parsed as { error?: unknown } | undefined)?.error;
  if (
    inner !== null &&
    typeof inner === 'object' &&
    typeof (inner as { message?: unknown }).message === 'string'
  ) {
    const e = inner as { message: string; type?: unknown; param?: unknown; code?: unknown };
    if ('type' in e && 'param' in e && 'code' in e) {
      return { status: error.status, headers: error.headers, body: error.upstreamBody };
    }
    return {
      status: error.status,
      headers: error.headers,
      body: {
        error: {
          ...e,
          type: typeof e.type === 'string' ? e.type : 'invalid_request_error',
          param: typeof e.param === 'string' ? e.param : null,
          code: typeof e.code === 'string' || typeof e.code === 'number' ? String(e.code) : null,
        },
      },
    };
  }
  const message = typeof inner === 'string' ? inner : text.trim().slice(0, 500) || error.message;
  return {
    status: error.status,
    headers: error.headers,
    body: { error: { message, type: 'invalid_request_error', param: null, code: null } },
  };
}

export function errorPayload(error: unknown, bodyLimit: number, contentType?: string): ErrorPayload {
  if (error instanceof UpstreamClientError) return upstreamPayload(error);
  const gatewayError = toGatewayError(error, bodyLimit, contentType);
  return { status: gatewayError.status, headers: gatewayError.headers, body: gatewayError.toBody() };
}

/** The SSE form, for failures after the 200 went out. */
export function errorEvent(error: unknown, bodyLimit: number): string {
  const { body } = errorPayload(error, bodyLimit);
  return `data: ${Buffer.isBuffer(body) ? body.toString('utf8').trim() : JSON.stringify(body)}\n\n`;
}

/**
 * The Responses API's `error` event for a stream that failed after its 200: a named event with
 * OpenAI's error object nested, which both the official SDK (it throws on `event: error`) and the
 * AI SDK's Responses provider (its nested error chunk) read as the failure. `sequenceNumber` is the
 * stream's next (pipeline/responses-sequence.ts): the relay counts the events it passed on.
 */
export function responsesErrorEvent(error: unknown, bodyLimit: number, sequenceNumber: number): string {
  const { body } = errorPayload(error, bodyLimit);
  let inner: unknown;
  try {
    inner = (
      JSON.parse(Buffer.isBuffer(body) ? body.toString('utf8') : JSON.stringify(body)) as { error?: unknown }
    ).error;
  } catch {
    inner = undefined;
  }
  const detail =
    inner !== null && typeof inner === 'object'
      ? (inner as Record<string, unknown>)
      : { message: 'The upstream failed.', type: 'server_error', param: null, code: null };
  // The Responses spec's own fields at the top too.
  const event = {
    type: 'error',
    code:
      typeof detail.code === 'string' ? detail.code : typeof detail.type === 'string' ? detail.type : null,
    message: typeof detail.message === 'string' ? detail.message : 'The upstream failed.',
    param: typeof detail.param === 'string' ? detail.param : null,
    sequence_number: sequenceNumber,
    error: detail,
  };
  return `event: error\ndata: ${JSON.stringify(event)}\n\n`;
}
