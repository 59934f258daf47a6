import Anthropic from '@anthropic-ai/sdk';
import { Stream } from '@anthropic-ai/sdk/core/streaming';
import { describe, expect, it } from 'vitest';
import {
  GatewayError,
  InvalidRequestError,
  MethodNotAllowedError,
  ModelNotFoundError,
  RequestTooLargeError,
  RouteNotFoundError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../src/errors.js';
import { anthropicErrorEvent, anthropicErrorPayload } from '../src/http/anthropic-error.js';
import { InvalidApiKeyError } from '../src/pipeline/auth.js';
import { TooManyFailedAuthError } from '../src/pipeline/failed-auth-limiter.js';
import { QuotaExceededError } from '../src/pipeline/quota.js';

const LIMIT = 1024;

const budget = () =>
  new QuotaExceededError(
    429,
    'insufficient_quota',
    'insufficient_quota',
    "Your team's token budget is exhausted.",
    {
      headers: { 'x-should-retry': 'false' },
    },
  );
const neverFits = () =>
  new QuotaExceededError(429, 'tokens', 'rate_limit_exceeded', 'Request too large for m on tokens per min.', {
    headers: { 'x-should-retry': 'false' },
  });
const rateLimited = () =>
  new QuotaExceededError(429, 'rate_limit_error', 'rate_limit_exceeded', 'Limit of 10 tokens per minute.', {
    headers: { 'retry-after': '1', 'retry-after-ms': '1' },
  });

/** The mapping documented in src/http/anthropic-error.ts, row by row. */
const TABLE: Array<[string, () => unknown, number, string, Record<string, string>]> = [
  ['bad input', () => new InvalidRequestError('Bad field.', 'x'), 400, 'invalid_request_error', {}],
  [
    'unknown key',
    () => new InvalidApiKeyError('Incorrect API key provided.'),
    401,
    'authentication_error',
    { 'x-should-retry': 'false' },
  ],
  [
    'model not allowed',
    () => new GatewayError(403, 'permission_error', 'model_not_allowed', 'No.'),
    403,
    'permission_error',
    {},
  ],
  ['unknown model', () => new ModelNotFoundError('nope'), 404, 'not_found_error', {}],
  ['unknown route', () => new RouteNotFoundError('GET', '/v1/nope'), 404, 'not_found_error', {}],
  [
    'method',
    () => new MethodNotAllowedError('GET', '/v1/messages', ['POST']),
    405,
    'invalid_request_error',
    { allow: 'POST' },
  ],
  ['body too large', () => new RequestTooLargeError(LIMIT), 413, 'request_too_large', {}],
  [
    'media type',
    () => new UnsupportedMediaTypeError('text/plain', 'application/json'),
    415,
    'invalid_request_error',
    {},
  ],
  ['budget exhausted', budget, 402, 'billing_error', { 'x-should-retry': 'false' }],
  ['larger than a TPM window', neverFits, 429, 'rate_limit_error', { 'x-should-retry': 'false' }],
  ['rate limit', rateLimited, 429, 'rate_limit_error', { 'retry-after': '1', 'retry-after-ms': '1' }],
  [
    'failed auth flood',
    () => new TooManyFailedAuthError(2000),
    429,
    'rate_limit_error',
    { 'retry-after': '2', 'retry-after-ms': '2000' },
  ],
  ['unexpected', () => new TypeError('boom at secret place'), 500, 'api_error', {}],
  ['upstream failed', () => new UpstreamError('The upstream failed.'), 502, 'api_error', {}],
  [
    'every deployment out',
    () => new UpstreamUnavailableError('m', 3000),
    529,
    'overloaded_error',
    { 'retry-after': '3' },
  ],
  [
    'store down',
    () => new ServiceUnavailableError('Store unavailable.', 2),
    503,
    'api_error',
    { 'retry-after': '2' },
  ],
  ['upstream timeout', () => new UpstreamTimeoutError('Too slow.'), 504, 'timeout_error', {}],
];

describe("Anthropic's error shape", () => {
  it.each(TABLE)('%s -> %i %s', (_name, make, status, type, headers) => {
    const error = make();
    const payload = anthropicErrorPayload(error, LIMIT, { requestId: 'req_1' });
    expect(payload.status).toBe(status);
    expect(payload.headers).toEqual(headers);
    const message = error instanceof GatewayError ? error.message : 'The gateway hit an unexpected error.';
    expect(payload.body).toEqual({ type: 'error', error: { type, message }, request_id: 'req_1' });
  });

  it("turns Fastify's body errors into Anthropic's words", () => {
    const tooLarge = Object.assign(new Error('too large'), {
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      statusCode: 413,
    });
    expect(anthropicErrorPayload(tooLarge, LIMIT)).toMatchObject({
      status: 413,
      body: { type: 'error', error: { type: 'request_too_large' } },
    });
    const payload = anthropicErrorPayload(new SyntaxError('Unexpected token'), LIMIT);
    expect(payload).toMatchObject({ status: 400, body: { error: { type: 'invalid_request_error' } } });
    expect(payload.body).not.toHaveProperty('request_id');
  });

  it("relays an Anthropic upstream's error bytes as they came, and rewrites an OpenAI upstream's", () => {
    const anthropicBody = Buffer.from(
      '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_up"}',
    );
    const relayed = anthropicErrorPayload(
      new UpstreamClientError(429, anthropicBody, 'application/json', { 'retry-after': '7' }),
      LIMIT,
    );
    expect(relayed).toEqual({ status: 429, headers: { 'retry-after': '7' }, body: anthropicBody });

    const openaiBody = Buffer.from(
      JSON.stringify({
        error: { message: 'Invalid model.', type: 'invalid_request_error', param: 'model', code: null },
      }),
    );
    expect(
      anthropicErrorPayload(new UpstreamClientError(404, openaiBody, 'application/json', {}), LIMIT),
    ).toEqual({
      status: 404,
      headers: {},
      body: { type: 'error', error: { type: 'not_found_error', message: 'Invalid model.' } },
    });
    const text = anthropicErrorPayload(
      new UpstreamClientError(400, Buffer.from('plain words'), 'text/plain', {}),
      LIMIT,
    );
    expect(text.body).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'plain words' },
    });
  });

  it("writes mid-stream failures as Anthropic's error event, which the SDK throws with its type", async () => {
    const event = anthropicErrorEvent(new UpstreamError('Lost the upstream.'), LIMIT, 'req_9');
    expect(event).toBe(
      'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Lost the upstream."},"request_id":"req_9"}\n\n',
    );
    const response = new Response(event, { headers: { 'content-type': 'text/event-stream' } });
    const stream = Stream.fromSSEResponse(response, new AbortController());
    const failure = await (async () => {
      for await (const _ of stream) {
        // No event comes before the error.
      }
    })().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Anthropic.APIError);
    expect((failure as InstanceType<typeof Anthropic.APIError>).type).toBe('api_error');
    const relayed = anthropicErrorEvent(
      new UpstreamClientError(
        400,
        Buffer.from('{"type":"error","error":{"type":"invalid_request_error","message":"x"}}\n'),
        'application/json',
        {},
      ),
      LIMIT,
    );
    expect(relayed).toBe(
      'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error","message":"x"}}\n\n',
    );
  });

  describe('what the Anthropic SDK retries', () => {
    /** A client whose every request fails with `error`, counting the requests it made. */
    function failingClient(error: () => unknown) {
      let calls = 0;
      const fetch = async () => {
        calls++;
        const payload = anthropicErrorPayload(error(), LIMIT);
        return new Response(JSON.stringify(payload.body), {
          status: payload.status,
          headers: { ...payload.headers, 'content-type': 'application/json' },
        });
      };
      const client = new Anthropic({ apiKey: 'k', baseURL: 'http://gateway.test', fetch, maxRetries: 1 });
      const attempt = client.messages
        .create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] })
        .then(
          () => undefined,
          (failure: unknown) => failure,
        );
      return { attempt, calls: () => calls };
    }

    it.each([
      ['budget exhausted', budget, Anthropic.PaymentRequiredError, 402],
      ['larger than a TPM window', neverFits, Anthropic.RateLimitError, 429],
      [
        'unknown key',
        () => new InvalidApiKeyError('Incorrect API key provided.'),
        Anthropic.AuthenticationError,
        401,
      ],
      ['bad input', () => new InvalidRequestError('Bad field.'), Anthropic.BadRequestError, 400],
    ])('does not retry: %s', async (_name, error, errorClass, status) => {
      const { attempt, calls } = failingClient(error);
      const failure = (await attempt) as InstanceType<typeof Anthropic.APIError>;
      expect(failure).toBeInstanceOf(errorClass);
      expect(failure.status).toBe(status);
      expect(calls()).toBe(1);
    });

    it.each([
      ['rate limit', rateLimited, 429],
      ['every deployment out', () => new UpstreamUnavailableError('m', 1), 529],
    ])('retries: %s', async (_name, error, status) => {
      const { attempt, calls } = failingClient(error);
      const failure = (await attempt) as InstanceType<typeof Anthropic.APIError>;
      expect(failure.status).toBe(status);
      expect(calls()).toBe(2);
    });
  });
});
