/**
 * Typed errors. Anything in the gateway throws one of these; `http/openai-error.ts` and
 * `http/anthropic-error.ts` are the only places that turn them (and Fastify's own errors) into
 * wire JSON and SSE, one per API surface (`http/error-surface.ts` picks).
 */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  /** OpenAI's type for "Request too large ... on tokens per min": it can never fit. */
  | 'tokens'
  | 'insufficient_quota'
  | 'server_error';

export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
}

export interface GatewayErrorOptions {
  param?: string | null;
  headers?: Record<string, string>;
  cause?: unknown;
}

/**
 * On every GatewayError (its prototype's): a module that imports another copy of the package
 * (its author's node_modules) throws errors of another class, which `instanceof` misses; a
 * registered symbol is the same in every copy, and no other library's error carries it.
 */
export const GATEWAY_ERROR_BRAND: unique symbol = Symbol.for('tollgate.gateway-error');

export class GatewayError extends Error {
  get [GATEWAY_ERROR_BRAND](): true {
    return true;
  }

  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    type: OpenAIErrorType,
    code: string | null,
    message: string,
    options: GatewayErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  /**
   * A copy of this error, of the same class (which routing and dispatch read: a busy backend's
   * 429 is retried elsewhere), with some of what it says changed; this one stays as it was.
   */
  with(changes: { message?: string; param?: string | null; headers?: Record<string, string> }): this {
    const copy = Object.create(Object.getPrototypeOf(this) as object) as this;
    return Object.assign(copy, this, { message: this.message }, changes);
  }
}

export class InvalidRequestError extends GatewayError {
  constructor(message: string, param: string | null = null, code: string | null = null) {
    super(400, 'invalid_request_error', code, message, { param });
  }
}

/**
 * A body that is valid JSON with a `__proto__` key (or `constructor` with `prototype`): refused,
 * since code that copies the body could reach an object's prototype through it.
 */
export class PrototypeKeyError extends InvalidRequestError {
  constructor() {
    super(
      'The request body holds a "__proto__" key (or "constructor" with "prototype"), which the gateway refuses; rename or remove it.',
    );
  }
}

/** A page cursor the list could not have given out: malformed, or outside the range of its ids. */
export class InvalidCursorError extends InvalidRequestError {
  constructor(param: string, value: string) {
    const shown = value.length > 64 ? `${value.slice(0, 64)}...` : value;
    super(
      `Invalid value for '${param}': '${shown}' is not an id of this list; pass a page's last_id.`,
      param,
    );
  }
}

export class ModelNotFoundError extends GatewayError {
  constructor(model: string) {
    super(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model '${model}' does not exist or you do not have access to it.`,
      { param: 'model' },
    );
  }
}

/** A path longer than this is cut short where an error message repeats it. */
const SHOWN_PATH_CHARS = 200;

function shownPath(path: string): string {
  return path.length > SHOWN_PATH_CHARS ? `${path.slice(0, SHOWN_PATH_CHARS)}...` : path;
}

/** No route at this path, for any method: OpenAI's words ("Invalid URL (GET /v1/x)"). */
export class RouteNotFoundError extends GatewayError {
  constructor(method: string, path: string) {
    super(404, 'invalid_request_error', 'unknown_url', `Invalid URL (${method} ${shownPath(path)})`);
  }
}

/** The path exists, not with this method; `allow` lists the methods it takes (RFC 9110 §15.5.6). */
export class MethodNotAllowedError extends GatewayError {
  constructor(method: string, path: string, allowed: readonly string[]) {
    super(
      405,
      'invalid_request_error',
      'method_not_allowed',
      `Invalid method for URL (${method} ${shownPath(path)}): it accepts ${allowed.join(', ')}.`,
      { headers: { allow: allowed.join(', ') } },
    );
  }
}

/** A request node:http could not take: unparseable, too slow, or headers too large. */
export class MalformedRequestError extends GatewayError {
  constructor(status: 400 | 408 | 413 | 431, message: string, code: string | null = null) {
    super(status, 'invalid_request_error', code, message);
  }
}

export class RequestTooLargeError extends GatewayError {
  constructor(limitBytes: number) {
    super(
      413,
      'invalid_request_error',
      'request_too_large',
      `Request body is larger than the gateway's limit of ${limitBytes} bytes.`,
    );
  }
}

export class UnsupportedMediaTypeError extends GatewayError {
  constructor(contentType: string | undefined, expected: string) {
    super(
      415,
      'invalid_request_error',
      'unsupported_media_type',
      `Unsupported Content-Type '${contentType ?? '(none)'}'; this endpoint expects ${expected}.`,
    );
  }
}

/** A compressed request body: the gateway reads bodies as they are sent. */
export class ContentEncodingError extends GatewayError {
  constructor(encoding: string) {
    super(
      415,
      'invalid_request_error',
      'unsupported_media_type',
      `Unsupported Content-Encoding '${encoding.slice(0, 40)}'; send the request body uncompressed.`,
    );
  }
}

export class EndpointNotSupportedError extends GatewayError {
  constructor(endpoint: string, model: string) {
    super(
      400,
      'invalid_request_error',
      'unsupported_endpoint',
      `The model '${model}' is served by a backend that does not support ${endpoint}.`,
      { param: 'model' },
    );
  }
}

/** Upstream answered with 4xx: relayed to the client with its status and body. */
export class UpstreamClientError extends GatewayError {
  readonly upstreamBody: Buffer;
  readonly upstreamContentType: string | undefined;

  constructor(
    status: number,
    body: Buffer,
    contentType: string | undefined,
    headers: Record<string, string>,
  ) {
    super(status, 'invalid_request_error', null, `Upstream rejected the request with status ${status}.`, {
      headers,
    });
    this.upstreamBody = body;
    this.upstreamContentType = contentType;
  }
}

/** Upstream 5xx or a connection failure. */
export class UpstreamError extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super(502, 'server_error', 'upstream_error', message, { cause });
  }
}

/** A JSON answer past what the gateway reads whole (a 502 like any broken upstream answer). */
export class UpstreamAnswerTooLargeError extends UpstreamError {
  constructor(limit: number) {
    super(`The upstream's answer is larger than ${limit} bytes.`);
  }
}

export class UpstreamTimeoutError extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super(504, 'server_error', 'upstream_timeout', message, { cause });
  }
}

export class ServiceUnavailableError extends GatewayError {
  constructor(message: string, retryAfterSeconds = 1) {
    super(503, 'server_error', 'service_unavailable', message, {
      headers: { 'retry-after': String(retryAfterSeconds) },
    });
  }
}

/**
 * An upstream said it is overloaded (Anthropic's 529 `overloaded_error`, a 503): retried on
 * another deployment. OpenAI's surface answers it as any 503; Anthropic's as its own 529, which
 * Claude Code counts to switch to its fallback model.
 */
export class UpstreamOverloadedError extends ServiceUnavailableError {}

/**
 * Every deployment of a model, and of its fallbacks, is out (open circuits, at their limits):
 * nothing was sent upstream. `retry-after` is when the first of them may take requests again.
 */
export class UpstreamUnavailableError extends GatewayError {
  constructor(model: string, retryAfterMs: number) {
    super(
      503,
      'server_error',
      'upstream_unavailable',
      `Every deployment of '${model}' is unavailable right now (failing upstreams or at their limits); retry later.`,
      { headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1_000))) } },
    );
  }
}

/**
 * A backend with its own bounded queue (an in-process model) is full: every slot busy and as
 * many requests waiting as it allows. Not retried by routing; the client retries after a while.
 */
export class BackendBusyError extends GatewayError {
  constructor(message: string, retryAfterSeconds = 1) {
    super(429, 'rate_limit_error', 'rate_limit_exceeded', message, {
      headers: { 'retry-after': String(retryAfterSeconds) },
    });
  }
}
