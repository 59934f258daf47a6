import type { IncomingHttpHeaders } from 'node:http';
import { errorSurfaceOf } from '../../src/http/error-surface.js';
import type { RecordedRequest } from './fake-upstream.js';
import { HEADER_MARK } from './fuzz-arbitraries.js';
import type { FuzzRequest } from './fuzz-requests.js';
import { expectErrorResponse } from './spec-validator.js';

/** A gateway answer, from app.inject or a real socket. */
export interface FuzzAnswer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

/** Routes whose successful answers are neither JSON nor SSE, and what they may declare instead. */
const OTHER_BODIES: Record<string, RegExp> = {
  // Audio bytes, relayed with the upstream's own content type.
  'POST /v1/audio/speech': /^audio\//,
  'GET /admin/metrics': /^text\/plain/,
};

/** Stack frames, source and dependency paths: never in anything a client receives. */
const INTERNALS: Array<[RegExp, string]> = [
  [/\bat [\w.<>$]+ \(/, 'a stack frame'],
  [/\n\s+at /, 'a stack frame'],
  [/\/src\//, 'a source path'],
  [/node_modules/, 'a dependency path'],
  [/\.ts:\d+/, 'a source location'],
];

/** The request's headers as node:http hands them to the gateway: lower-case names. */
function lowerCaseHeaders(headers: Readonly<Record<string, string>> | undefined): IncomingHttpHeaders {
  return Object.fromEntries(
    Object.entries(headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
  );
}

function header(answer: FuzzAnswer, name: string): string {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value === undefined ? '' : String(value);
}

/** The OpenAI error envelope (the vendored spec's ErrorResponse, every key present); what is wrong with it. */
export function envelopeProblems(value: unknown): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return ['error body is not a JSON object'];
  try {
    expectErrorResponse(value);
  } catch (error) {
    return [`error body is not OpenAI's ErrorResponse: ${(error as Error).message.slice(0, 300)}`];
  }
  const error = (value as { error?: unknown }).error;
  if (error === null || typeof error !== 'object' || Array.isArray(error))
    return ['body.error is not an object'];
  const e = error as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of ['message', 'type', 'param', 'code']) {
    if (!Object.hasOwn(e, key)) problems.push(`error.${key} is missing`);
  }
  if (typeof e.message !== 'string' || e.message.length === 0)
    problems.push('error.message is not a non-empty string');
  if (typeof e.type !== 'string' || e.type.length === 0)
    problems.push('error.type is not a non-empty string');
  if (e.param !== null && typeof e.param !== 'string')
    problems.push('error.param is neither a string nor null');
  if (e.code !== null && typeof e.code !== 'string') problems.push('error.code is neither a string nor null');
  return problems;
}

/** An SSE body: `data:` lines of JSON or `[DONE]`, named events, comments; error events are envelopes. */
function sseProblems(text: string): string[] {
  const problems: string[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':') || /^(event|id|retry):/.test(line)) continue;
      if (!line.startsWith('data:')) {
        problems.push(`SSE line is not a field: ${JSON.stringify(line.slice(0, 120))}`);
        continue;
      }
      const data = line.slice(5).trim();
      if (data === '[DONE]') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(data);
      } catch {
        problems.push(`SSE data is not JSON: ${JSON.stringify(data.slice(0, 120))}`);
        continue;
      }
      if (parsed !== null && typeof parsed === 'object' && 'error' in parsed && !('type' in parsed)) {
        problems.push(...envelopeProblems(parsed).map((p) => `SSE error event: ${p}`));
      } else if (
        parsed !== null &&
        typeof parsed === 'object' &&
        (parsed as { type?: unknown }).type === 'error'
      ) {
        // Anthropic's stream error event (`event: error`) carries its own envelope.
        if ('error' in parsed && typeof (parsed as { error?: unknown }).error === 'object')
          problems.push(...anthropicEnvelopeProblems(parsed).map((p) => `SSE error event: ${p}`));
      }
    }
  }
  return problems;
}

const ANTHROPIC_ERROR_TYPES = new Set([
  'invalid_request_error',
  'authentication_error',
  'billing_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'timeout_error',
  'api_error',
  'overloaded_error',
]);

/** Anthropic's error envelope, for the Messages API surface; what is wrong with it. */
export function anthropicEnvelopeProblems(value: unknown): string[] {
  const body = value as { type?: unknown; error?: { type?: unknown; message?: unknown } } | null;
  if (body?.type !== 'error' || body.error === null || typeof body.error !== 'object')
    return [`error body is not Anthropic's envelope: ${JSON.stringify(value).slice(0, 200)}`];
  const problems: string[] = [];
  if (typeof body.error.type !== 'string' || !ANTHROPIC_ERROR_TYPES.has(body.error.type))
    problems.push(`Anthropic error type ${JSON.stringify(body.error.type)} is not one of Anthropic's`);
  if (typeof body.error.message !== 'string' || body.error.message === '')
    problems.push('Anthropic error without a message');
  return problems;
}

/**
 * Everything wrong with one answer, given that nothing behind the gateway is down: any 5xx,
 * an error that is not the OpenAI envelope, a body that is not what its content type says,
 * internals in the body or headers.
 */
export function answerProblems(request: FuzzRequest, answer: FuzzAnswer): string[] {
  const problems: string[] = [];
  const type = header(answer, 'content-type').toLowerCase();
  const text = answer.body.toString('utf8');
  if (answer.status >= 500) problems.push(`status ${answer.status} while no upstream or store is down`);
  if (answer.status < 100 || answer.status > 599) problems.push(`status ${answer.status} is not HTTP`);
  const headerText = Object.entries(answer.headers)
    .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(', ') : String(value)}`)
    .join('\n');
  for (const [pattern, what] of INTERNALS) {
    if (pattern.test(headerText)) problems.push(`response headers contain ${what}`);
  }
  const bodyless = request.method === 'HEAD' || answer.status === 204 || answer.status === 304;
  if (bodyless) {
    if (answer.body.length > 0 && request.method !== 'HEAD') problems.push(`a ${answer.status} with a body`);
    return problems;
  }
  if (!type.startsWith('audio/')) {
    for (const [pattern, what] of INTERNALS) {
      if (pattern.test(text)) problems.push(`response body contains ${what}`);
    }
  }
  if (answer.status >= 400) {
    if (!type.startsWith('application/json')) problems.push(`error answer declared as "${type}", not JSON`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      problems.push(`error answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
      return problems;
    }
    const anthropic = errorSurfaceOf(request.url, lowerCaseHeaders(request.headers)) === 'anthropic';
    problems.push(...(anthropic ? anthropicEnvelopeProblems(parsed) : envelopeProblems(parsed)));
    return problems;
  }
  if (type.startsWith('application/json')) {
    try {
      JSON.parse(text);
    } catch {
      problems.push(`answer declared JSON does not parse: ${JSON.stringify(text.slice(0, 200))}`);
    }
  } else if (type.startsWith('text/event-stream')) {
    problems.push(...sseProblems(text));
  } else {
    // A stray request may still hit a real route (`GET /admin/metrics` spelled exactly).
    const path = request.url.split('?')[0] ?? '';
    const allowed = OTHER_BODIES[request.route] ?? OTHER_BODIES[`${request.method} ${path}`];
    if (!allowed?.test(type)) problems.push(`answer declared as "${type}" on ${request.route}`);
  }
  return problems;
}

/** Header names the gateway itself sets on an upstream request; anything else came from a client. */
const UPSTREAM_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'content-type',
  'transfer-encoding',
  'authorization',
  'api-key',
  'accept',
  'x-client-request-id',
]);

export interface UpstreamCredential {
  header: 'authorization' | 'api-key';
  value: string;
}

/**
 * What is wrong with one request the upstream received: a header the gateway does not set
 * (so it came from a client), a fuzzed header value, the wrong credential, a secret anywhere,
 * or a URL path a normalising server would read as another path.
 */
export function upstreamProblems(
  seen: RecordedRequest,
  credential: UpstreamCredential,
  secrets: readonly string[],
): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(seen.headers)) {
    if (!UPSTREAM_HEADERS.has(name)) problems.push(`client header "${name}" reached the upstream`);
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    if (name !== 'x-client-request-id' && text.includes(HEADER_MARK)) {
      problems.push(`a client header's value reached the upstream in "${name}"`);
    }
  }
  const sent = seen.headers[credential.header];
  if (sent !== credential.value) problems.push(`upstream ${credential.header} is ${JSON.stringify(sent)}`);
  const other = credential.header === 'authorization' ? 'api-key' : 'authorization';
  if (seen.headers[other] !== undefined) problems.push(`upstream got a ${other} header as well`);
  const everything = `${seen.url}\n${JSON.stringify(seen.headers)}\n${seen.body.toString('latin1')}`;
  for (const secret of secrets) {
    if (everything.includes(secret))
      problems.push(`a gateway secret reached the upstream (${secret.slice(0, 6)}…)`);
  }
  const path = seen.url.split('?')[0] ?? '';
  for (const segment of path.split('/')) {
    let decoded = segment;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      problems.push(`upstream path segment is not valid percent-encoding: ${segment}`);
    }
    if (segment === '.' || segment === '..' || decoded === '.' || decoded === '..') {
      problems.push(`upstream path has a dot segment: ${path}`);
    }
  }
  if (/[^A-Za-z0-9\-._~%/!$&'()*+,;=:@]/.test(path))
    problems.push(`upstream path is not URL-encoded: ${path}`);
  return problems;
}

/** Which of `secrets` occur in `text` (shortened, so the report itself leaks nothing). */
export function leakedSecrets(text: string, secrets: readonly string[]): string[] {
  return [...new Set(secrets.filter((secret) => text.includes(secret)).map((s) => `${s.slice(0, 6)}…`))];
}

/** A Tollgate key and the pieces of it that would betray it: the whole key, its secret, either end. */
export function keyPieces(key: string): string[] {
  const secret = /^tg-[0-9a-z]+-(.+)$/.exec(key)?.[1];
  if (!secret || secret.length < 32) throw new Error(`not a Tollgate key: ${key.slice(0, 6)}…`);
  return [key, secret, secret.slice(0, 16), secret.slice(-16)];
}
