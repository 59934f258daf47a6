import { type GatewayError, UpstreamClientError, UpstreamOverloadedError } from '../errors.js';
import { type AnthropicErrorType, anthropicTypeForStatus } from '../schemas/anthropic/error-types.js';
import { toGatewayError } from './openai-error.js';

/**
 * The one place where errors become Anthropic's error JSON, for the Messages API surface
 * (`/v1/messages`, `/v1/messages/count_tokens`, and any request with `anthropic-version`: see
 * error-surface.ts); the OpenAI surface's twin is openai-error.ts. `{"type":"error","error":{"type","message"},"request_id"}` with the
 * status Anthropic uses for the same failure, so the Anthropic SDK and Claude Code react as they
 * would to Anthropic itself.
 *
 * What they retry (@anthropic-ai/sdk `shouldRetry`, Claude Code's wrapper reads the same
 * header first): `x-should-retry: true|false` decides when present; otherwise 408, 409, 429 and
 * every status >= 500 are retried, honouring `retry-after-ms` then `retry-after`. Every other 4xx
 * is final. So a refusal no wait can cure carries `x-should-retry: false` (a budget, a key, a
 * request larger than a whole tokens-per-minute window), and one that passes keeps `retry-after`.
 *
 * | gateway error (status, type / code)              | Anthropic status, type     | headers                  |
 * | ------------------------------------------------ | -------------------------- | ------------------------ |
 * | 400 invalid_request_error (any code)              | 400 invalid_request_error  |                          |
 * | 401 invalid_api_key                               | 401 authentication_error   | x-should-retry: false    |
 * | 403 permission_error                              | 403 permission_error       |                          |
 * | 404 model_not_found, unknown_url                  | 404 not_found_error        |                          |
 * | 413 request_too_large                             | 413 request_too_large      |                          |
 * | 429 insufficient_quota (budget exhausted)         | 402 billing_error          | x-should-retry: false    |
 * | 429 tokens (larger than a whole TPM window)       | 429 rate_limit_error       | x-should-retry: false    |
 * | 429 rate_limit_error (requests, tokens, slots)    | 429 rate_limit_error       | retry-after(-ms) kept    |
 * | 500 internal_error                                | 500 api_error              |                          |
 * | 502 upstream_error                                | 502 api_error              |                          |
 * | 503 upstream_unavailable (every deployment out)   | 529 overloaded_error       | retry-after kept         |
 * | 503 an upstream overloaded (its 529, its 503)      | 529 overloaded_error       | retry-after kept         |
 * | 503 service_unavailable (store down, fail-closed) | 503 api_error              | retry-after kept         |
 * | 504 upstream_timeout                              | 504 timeout_error          |                          |
 * | any other 4xx (405, 408, 409, 415, 431, ...)      | same, invalid_request_error|                          |
 * | any other 5xx                                     | same, api_error            |                          |
 *
 * A budget is Anthropic's billing_error (402: "out of credits or spend limit reached"), which no
 * client retries whatever the header says; the header is set all the same. An upstream's own 4xx
 * is relayed byte for byte when it already is Anthropic's envelope (an Anthropic backend), and
 * rewritten into it otherwise (an OpenAI-compatible backend's `{"error":{...}}`), keeping its
 * status, message and retry headers.
 */
export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
  request_id?: string;
}

export interface AnthropicErrorPayload {
  status: number;
  headers: Record<string, string>;
  /** Bytes: an upstream's own Anthropic envelope, relayed as it came. */
  body: AnthropicErrorBody | Buffer;
}

export interface AnthropicErrorOptions {
  /** The request's Content-Type, for the message of a 415. */
  contentType?: string | undefined;
  /** Anthropic puts the request id in the body too; the SDKs read it from the header. */
  requestId?: string | undefined;
}

const NO_RETRY = { 'x-should-retry': 'false' };

/** Status, type and headers on this surface for one of our typed errors. */
export function anthropicErrorOf(error: GatewayError): {
  status: number;
  type: AnthropicErrorType;
  headers: Record<string, string>;
} {
  if (error.type === 'insufficient_quota')
    return { status: 402, type: 'billing_error', headers: { ...error.headers, ...NO_RETRY } };
  if (error.status === 401)
    return { status: 401, type: 'authentication_error', headers: { ...error.headers, ...NO_RETRY } };
  if (error.code === 'upstream_unavailable' || error instanceof UpstreamOverloadedError)
    return { status: 529, type: 'overloaded_error', headers: error.headers };
  return { status: error.status, type: anthropicTypeForStatus(error.status), headers: error.headers };
}

function envelope(type: string, message: string, requestId: string | undefined): AnthropicErrorBody {
  return {
    type: 'error',
    error: { type, message },
    ...(requestId === undefined ? {} : { request_id: requestId }),
  };
}

function parsed(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

function isAnthropicEnvelope(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const { type, error } = value as { type?: unknown; error?: unknown };
  if (type !== 'error' || error === null || typeof error !== 'object') return false;
  const inner = error as { type?: unknown; message?: unknown };
  return typeof inner.type === 'string' && typeof inner.message === 'string';
}

/** An upstream's 4xx: its own bytes when they are Anthropic's envelope, else rewritten into it. */
function upstreamPayload(error: UpstreamClientError, requestId: string | undefined): AnthropicErrorPayload {
  const value = parsed(error.upstreamBody);
  if (isAnthropicEnvelope(value))
    return { status: error.status, headers: error.headers, body: error.upstreamBody };
  const inner = (value as { error?: unknown } | undefined)?.error;
  let message: string;
  if (
    inner !== null &&
    typeof inner === 'object' &&
    typeof (inner as { message?: unknown }).message === 'string'
  )
    message = (inner as { message: string }).message;
  else if (typeof inner === 'string') message = inner;
  else message = error.upstreamBody.toString('utf8').trim().slice(0, 500) || error.message;
  return {
    status: error.status,
    headers: error.headers,
    body: envelope(anthropicTypeForStatus(error.status), message, requestId),
  };
}

/** Any error thrown while serving the Messages API, as Anthropic's status, headers and body. */
export function anthropicErrorPayload(
  error: unknown,
  bodyLimit: number,
  options: AnthropicErrorOptions = {},
): AnthropicErrorPayload {
  if (error instanceof UpstreamClientError) return upstreamPayload(error, options.requestId);
  const gatewayError = toGatewayError(error, bodyLimit, options.contentType);
  const { status, type, headers } = anthropicErrorOf(gatewayError);
  return { status, headers, body: envelope(type, gatewayError.message, options.requestId) };
}

/**
 * The SSE form, for failures after the 200 went out: Anthropic's named `error` event, which the
 * SDK's stream reader throws as an APIError of that type.
 */
export function anthropicErrorEvent(error: unknown, bodyLimit: number, requestId?: string): string {
  const { body } = anthropicErrorPayload(error, bodyLimit, { requestId });
  const data = Buffer.isBuffer(body) ? JSON.stringify(parsed(body)) : JSON.stringify(body);
  return `event: error\ndata: ${data}\n\n`;
}
