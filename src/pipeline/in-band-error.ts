import { UpstreamClientError, UpstreamError, UpstreamOverloadedError } from '../errors.js';
import { splitEvents } from '../http/sse-splitter.js';
import { eventData } from './usage.js';

/**
 * What an error object's `type` or `code` says the HTTP status would have been. Some upstreams
 * (vLLM, LiteLLM proxies, OpenAI itself under load) answer a stream with a 200 and then an
 * error as its first event; read ahead, that is the failure the status would have said.
 */
const STATUS_OF: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  context_length_exceeded: 400,
  content_policy_violation: 400,
  content_filter: 400,
  bad_request: 400,
  badrequesterror: 400,
  authentication_error: 401,
  invalid_api_key: 401,
  permission_error: 403,
  permission_denied: 403,
  not_found_error: 404,
  request_too_large: 413,
  model_not_found: 404,
  request_timeout: 408,
  timeout: 408,
  conflict: 409,
  rate_limit_error: 429,
  rate_limit_exceeded: 429,
  rate_limit: 429,
  tokens: 429,
  insufficient_quota: 429,
  server_error: 500,
  internal_error: 500,
  internal_server_error: 500,
  api_error: 500,
  overloaded: 503,
  overloaded_error: 503,
  service_unavailable: 503,
  timeout_error: 504,
  // Anthropic's: the gateway's own account, not the client's request; another deployment may do.
  billing_error: 502,
};

/** The status an in-band error stands for; 502 (the upstream failed somehow) when nothing says. */
export function inBandErrorStatus(error: Record<string, unknown>): number {
  for (const field of [error.status, error.code]) {
    if (typeof field === 'number' && Number.isInteger(field) && field >= 400 && field <= 599) return field;
  }
  // The code is the more precise of the two (`context_length_exceeded` under `invalid_request_error`).
  for (const field of [error.code, error.type]) {
    if (typeof field !== 'string') continue;
    const status = STATUS_OF[field.toLowerCase()];
    if (status !== undefined) return status;
  }
  return 502;
}

/** Where an error's bytes may be: a block or body without them is not parsed at all. */
const ERROR_WORD = Buffer.from('"error"');

/**
 * The error the first event of a stream carries (`data: {"error":{...}}`, or the Responses API's
 * `{"type":"error",...}`) as the failure an upstream answering with that status would have been:
 * a 4xx is relayed with the upstream's error body (and retried where a 408/409/429 is), a 5xx is
 * an upstream failure. Undefined when the first event is not an error.
 */
export function inBandError(head: Buffer | undefined): Error | undefined {
  // Every stream passes here: a first event without the word is not parsed at all.
  if (!head?.includes(ERROR_WORD)) return undefined;
  for (const event of splitEvents(head)) {
    const payload = eventData(event);
    if (!payload) continue;
    const error = errorObjectOf(payload);
    return error ? failureOf(error, 'then an error as its first event') : undefined;
  }
  return undefined;
}

/**
 * A whole JSON answer with a 200 that is an error object (some upstreams and proxies do that), as
 * the failure its status stands for, like a stream's first event; undefined for an answer.
 */
export function jsonAnswerError(body: Buffer): Error | undefined {
  if (!body.includes(ERROR_WORD)) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return undefined;
  const error = errorObjectOf(payload as Record<string, unknown>);
  return error ? failureOf(error, 'with an error') : undefined;
}

/**
 * True when a block of events holds one that says the stream failed part way: the stream then
 * failed as much as one broken off (src/pipeline/stream.ts).
 */
export function hasErrorEvent(block: Buffer): boolean {
  if (!block.includes(ERROR_WORD)) return false;
  return splitEvents(block).some((event) => {
    const payload = eventData(event);
    return payload !== undefined && errorObjectOf(payload) !== undefined;
  });
}

function failureOf(error: Record<string, unknown>, what: string): Error {
  const status = inBandErrorStatus(error);
  if (status >= 500) {
    const message = typeof error.message === 'string' ? error.message.slice(0, 200) : undefined;
    if (status === 503)
      return new UpstreamOverloadedError(
        `The upstream answered 200, then said it is overloaded${message ? `: ${message}` : '.'}`,
      );
    return new UpstreamError(`The upstream answered 200 ${what}${message ? `: ${message}` : '.'}`);
  }
  const body = Buffer.from(JSON.stringify({ error }));
  return new UpstreamClientError(status, body, 'application/json', {});
}

/**
 * The error object of an event or answer: OpenAI's `{"error":{...}}` (or a bare message, as TGI
 * sends it), the Responses API's `{"type":"error",...}` and `response.failed`, Anthropic's
 * `{"type":"error","error":{...}}`. Undefined for anything else (`"error": null` included).
 */
function errorObjectOf(payload: Record<string, unknown>): Record<string, unknown> | undefined {
  const nested = payload.error;
  if (nested !== null && typeof nested === 'object' && !Array.isArray(nested))
    return nested as Record<string, unknown>;
  if (typeof nested === 'string' && nested !== '' && payload.choices === undefined)
    return { message: nested, type: 'server_error' };
  // Responses API streams: `{"type":"error","code":...,"message":...}`.
  if (payload.type === 'error' && payload.choices === undefined) {
    const { type: _type, sequence_number: _sequence, ...rest } = payload;
    return { type: typeof rest.code === 'string' ? rest.code : 'server_error', ...rest };
  }
  if (payload.type === 'response.failed') {
    const failed = (payload.response as { error?: unknown } | undefined)?.error;
    return failed !== null && typeof failed === 'object' && !Array.isArray(failed)
      ? (failed as Record<string, unknown>)
      : { type: 'server_error', message: 'The response failed.' };
  }
  return undefined;
}
