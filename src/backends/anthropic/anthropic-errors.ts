import {
  UpstreamClientError,
  UpstreamError,
  UpstreamOverloadedError,
  UpstreamTimeoutError,
} from '../../errors.js';

/** An Anthropic error as it arrives: `{"type":"error","error":{"type","message"}}`. */
export interface AnthropicErrorInfo {
  /** `invalid_request_error`, `overloaded_error`, ...; undefined when the body said nothing usable. */
  type: string | undefined;
  message: string | undefined;
}

/** The status each Anthropic error type stands for (an error event in a stream has none). */
const STATUS_OF_TYPE: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

const SHOWN_MESSAGE_CHARS = 500;

/** Reads Anthropic's error envelope; tolerant of anything else (a proxy's HTML, an empty body). */
export function parseAnthropicError(body: Buffer | Record<string, unknown>): AnthropicErrorInfo {
  let parsed: unknown = body;
  if (Buffer.isBuffer(body)) {
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      const text = body.toString('utf8').trim();
      return { type: undefined, message: text ? text.slice(0, SHOWN_MESSAGE_CHARS) : undefined };
    }
  }
  const error = (parsed as { error?: unknown } | null)?.error;
  if (error === null || typeof error !== 'object') return { type: undefined, message: undefined };
  const { type, message } = error as { type?: unknown; message?: unknown };
  return {
    type: typeof type === 'string' ? type : undefined,
    message: typeof message === 'string' ? message.slice(0, SHOWN_MESSAGE_CHARS) : undefined,
  };
}

export interface MappingContext {
  backend: string;
  /** The HTTP status; undefined for an `error` event inside a stream. */
  status: number | undefined;
  /** retry-after / retry-after-ms as the upstream sent them. */
  retryHeaders: Record<string, string>;
}

/**
 * An Anthropic failure as the gateway's typed error, so the client sees OpenAI's envelope with
 * the status OpenAI SDKs expect, and routing retries what another attempt may fix. The
 * gateway's own credentials are the operator's business: a refused key is a 502, never a 401
 * that would tell the client its (valid) team key is wrong. Messages are the upstream's, already
 * scrubbed of secrets by the caller.
 */
export function mapAnthropicError(info: AnthropicErrorInfo, context: MappingContext): Error {
  const status = (info.type !== undefined ? STATUS_OF_TYPE[info.type] : undefined) ?? context.status ?? 502;
  const where = `Backend '${context.backend}'`;
  const detail = info.message ?? 'no message';
  const said = `${info.type ?? `status ${status}`}: ${detail}`;
  if (status === 401 || status === 402) return credentialsRefused(context.backend, info.type ?? status);
  if (status === 529 || status === 503) {
    return new UpstreamOverloadedError(
      `${where} is overloaded (${said}); retry shortly.`,
      retryAfterSeconds(context.retryHeaders),
    );
  }
  if (status === 504 || status === 408) return new UpstreamTimeoutError(`${where} timed out (${said}).`);
  if (status >= 500) return new UpstreamError(`${where} failed (${said}).`);
  const relayed = status === 429 ? context.retryHeaders : {};
  return new UpstreamClientError(
    status,
    Buffer.from(JSON.stringify({ error: openAIError(status, info) })),
    'application/json',
    relayed,
  );
}

/**
 * The upstream refused the gateway's key or account: the request is fine, so a 502 (never the
 * upstream's 401, which would tell the client its own valid key is wrong) that routing retries on
 * another deployment.
 */
function credentialsRefused(backend: string, said: string | number): UpstreamError {
  return new UpstreamError(
    `Backend '${backend}' refused the gateway's credentials or account (${said}); check the backend's apiKey.`,
  );
}

/** The OpenAI `error` object a client gets for an Anthropic 4xx. */
function openAIError(
  status: number,
  info: AnthropicErrorInfo,
): { message: string; type: string; param: string | null; code: string | null } {
  const message = info.message ?? `The upstream rejected the request with status ${status}.`;
  switch (status) {
    case 400:
      return { message, type: 'invalid_request_error', param: null, code: contextCode(message) };
    case 403:
      return { message, type: 'permission_error', param: null, code: null };
    case 404:
      return {
        message,
        type: 'invalid_request_error',
        param: /model/i.test(message) ? 'model' : null,
        code: /model/i.test(message) ? 'model_not_found' : null,
      };
    case 413:
      return { message, type: 'invalid_request_error', param: null, code: 'request_too_large' };
    case 429:
      return { message, type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' };
    default:
      return { message, type: 'invalid_request_error', param: null, code: info.type ?? null };
  }
}

/**
 * Anthropic says a prompt does not fit with a 400 `invalid_request_error` whose message reads
 * "prompt is too long: 210000 tokens > 200000 maximum" (or names the context window); OpenAI's
 * `context_length_exceeded` code is what clients and `contextFallbacks` look for.
 */
function contextCode(message: string): string | null {
  return /prompt is too long|context (window|length)|input length and `max_tokens` exceed/i.test(message)
    ? 'context_length_exceeded'
    : null;
}

/** Whole seconds for a `retry-after` header; 1 when the upstream did not say. */
function retryAfterSeconds(headers: Record<string, string>): number {
  const ms = Number(headers['retry-after-ms']);
  if (headers['retry-after-ms'] !== undefined && Number.isFinite(ms) && ms >= 0)
    return Math.max(1, Math.ceil(ms / 1_000));
  const seconds = Number(headers['retry-after']);
  if (headers['retry-after'] !== undefined && Number.isFinite(seconds) && seconds >= 0)
    return Math.max(1, Math.ceil(seconds));
  return 1;
}
