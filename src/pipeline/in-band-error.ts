import { splitEvents } from '../backends/sse-splitter.js';
import { UpstreamClientError, UpstreamError, UpstreamOverloadedError } from '../errors.js';
import { jsonObjectOf, OPEN_BRACE, QUOTE, valueStartAfterKey } from './json-bytes.js';
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

const ERROR_WORD = Buffer.from('"error"');
const ERROR_EVENT_NAME = /^event:[ \t]*error[ \t]*\r?$/m;
const RESPONSE_FAILED = Buffer.from('"response.failed"');
// Byte checks first: every block of every stream passes here, and a string of it would be a copy.
const NAMED_ERROR = Buffer.from('event: error');
const NAMED_ERROR_TIGHT = Buffer.from('event:error');

/** Events that may say the stream failed: an error's bytes, `response.failed`, or the name. */
function mayHoldErrorEvent(block: Buffer): boolean {
  return (
    mayHoldError(block) ||
    block.includes(RESPONSE_FAILED) ||
    block.includes(NAMED_ERROR) ||
    block.includes(NAMED_ERROR_TIGHT)
  );
}

/**
 * Where an error may be: `"error"` followed by an object or a string (not `null`, which every
 * Responses object carries). Bytes without one are not parsed at all.
 */
function mayHoldError(bytes: Buffer): boolean {
  for (let at = bytes.indexOf(ERROR_WORD); at !== -1; at = bytes.indexOf(ERROR_WORD, at + 1)) {
    const value = valueStartAfterKey(bytes, at, ERROR_WORD);
    // A value `"error"`, not a key: Anthropic's and the Responses API's `"type":"error"`.
    if (value === -1 || bytes[value] === OPEN_BRACE || bytes[value] === QUOTE) return true;
  }
  return false;
}

/**
 * The error the first event of a stream carries (`data: {"error":{...}}`, or the Responses API's
 * `{"type":"error",...}`) as the failure an upstream answering with that status would have been:
 * a 4xx is relayed with the upstream's error body (and retried where a 408/409/429 is), a 5xx is
 * an upstream failure. Undefined when the first event is not an error. Events the `preamble`
 * takes (a Messages stream's `message_start` and `ping`) come before the first event, not as it.
 */
export function inBandError(
  head: Buffer | undefined,
  preamble?: (event: Buffer) => boolean,
): Error | undefined {
  // Every stream passes here: a first event without an error's bytes is not parsed at all.
  if (!head || !mayHoldErrorEvent(head)) return undefined;
  for (const event of splitEvents(head)) {
    if (preamble?.(event)) continue;
    const error = eventError(event);
    if (error !== 'none') return error ? failureOf(error, 'then an error as its first event') : undefined;
  }
  return undefined;
}

/**
 * A whole JSON answer with a 200 that is an error object and nothing else (some upstreams and
 * proxies answer that way), as the failure its status stands for, like a stream's first event;
 * undefined for an answer, whatever else it carries (`"error": null`, an extra `error` field next
 * to `choices` or `data`, a Responses object, which says `status: "failed"` itself).
 */
export function jsonAnswerError(body: Buffer): Error | undefined {
  if (!mayHoldError(body)) return undefined;
  const answer = jsonObjectOf(body);
  if (!answer) return undefined;
  if (answer.object === 'response' || ANSWER_FIELDS.some((field) => answer[field] !== undefined))
    return undefined;
  const error = errorObjectOf(answer);
  return error ? failureOf(error, 'with an error') : undefined;
}

/** What an answer holds when it is one: an error object beside them is not the answer's failure. */
const ANSWER_FIELDS = ['choices', 'data', 'output', 'content', 'results', 'embedding'];

/**
 * True when a block of events holds one that says the stream failed part way: the stream then
 * failed as much as one broken off (src/pipeline/stream.ts).
 */
export function hasErrorEvent(block: Buffer): boolean {
  if (!mayHoldErrorEvent(block)) return false;
  return splitEvents(block).some((event) => {
    const error = eventError(event);
    return error !== 'none' && error !== undefined;
  });
}

/**
 * The error an event stands for: an error object in its data, or an event named `error` whatever
 * its data (then the data, or a plain server error); undefined for an event that is none,
 * 'none' for one without data (a comment, a ping), which says nothing either way.
 */
function eventError(event: Buffer): Record<string, unknown> | undefined | 'none' {
  const payload = eventData(event);
  const named = ERROR_EVENT_NAME.test(event.toString('latin1'));
  if (!payload)
    return named ? { type: 'server_error', message: 'The upstream sent an error event.' } : 'none';
  const error = errorObjectOf(payload);
  if (error || !named) return error;
  return { type: 'server_error', ...payload };
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

/** TGI's `error_type` beside a bare message: what kind of failure it is. */
const TGI_ERROR_TYPES: Readonly<Record<string, string>> = {
  validation: 'invalid_request_error',
  overloaded: 'overloaded',
  generation: 'server_error',
  incomplete_generation: 'server_error',
};

/**
 * The error object of an event or answer: OpenAI's `{"error":{...}}` (or a bare message, as TGI
 * sends it), the Responses API's `{"type":"error",...}` and `response.failed`, Anthropic's
 * `{"type":"error","error":{...}}`. Undefined for anything else: `"error": null`, and an error
 * object that says nothing (no message, type or code).
 */
function errorObjectOf(payload: Record<string, unknown>): Record<string, unknown> | undefined {
  const nested = payload.error;
  if (nested !== null && typeof nested === 'object' && !Array.isArray(nested))
    return saysSomething(nested as Record<string, unknown>);
  if (typeof nested === 'string' && nested !== '' && payload.choices === undefined) {
    const kind = typeof payload.error_type === 'string' ? TGI_ERROR_TYPES[payload.error_type] : undefined;
    return { message: nested, type: kind ?? 'server_error' };
  }
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

function saysSomething(error: Record<string, unknown>): Record<string, unknown> | undefined {
  return error.message !== undefined || error.type !== undefined || error.code !== undefined
    ? error
    : undefined;
}
