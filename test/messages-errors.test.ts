import type { ServerResponse } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';

/**
 * Errors on the Messages API surface, as the Anthropic SDK (and Claude Code) must see them:
 * Anthropic's envelope `{"type":"error","error":{"type","message"},"request_id"}` with the status
 * Anthropic uses, so the SDK raises its own error classes and retries exactly what Anthropic's
 * API would have it retry. The backend is an OpenAI-compatible upstream (a real HTTP server on
 * 127.0.0.1), so every upstream failure passes through the translation to chat completions.
 * Gateway-side routing retries and circuits are off unless a test needs them, so each SDK
 * attempt is exactly one upstream hit.
 */

type Json = Record<string, unknown>;

const VERSION = { 'anthropic-version': '2023-06-01' };
const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };
const ONE_ATTEMPT = { retry: { attempts: 1 }, circuit: { enabled: false } };

let upstream: FakeUpstream;
let gw: TestGateway;
let admin: AdminHttp;
/** A key of a team with no limits. */
let key: string;

/** A one-word answer, whole or streamed, with usage. */
function answer(res: ServerResponse, body: Json): void {
  const base = { id: 'chatcmpl-e', created: 1, model: String(body.model) };
  if (body.stream !== true) {
    sendJson(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [
        { index: 0, message: { role: 'assistant', content: 'ok' }, logprobs: null, finish_reason: 'stop' },
      ],
      usage: USAGE,
    });
    return;
  }
  const chunk = (delta: Json, finish: string | null) =>
    `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(chunk({ role: 'assistant', content: 'ok' }, null));
  res.write(chunk({}, 'stop'));
  res.write(
    `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage: USAGE })}\n\n`,
  );
  res.end('data: [DONE]\n\n');
}

/** A few chunks of a stream, then the connection is lost. */
function cutStream(res: ServerResponse): void {
  const chunk = (content: string) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-cut', object: 'chat.completion.chunk', created: 1, model: 'cut-stream', choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }] })}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(chunk('Half'));
  res.write(chunk(' an'));
  res.write(chunk(' answer'), () => res.destroy());
}

/** Upstream models that fail, with the status and OpenAI error body they fail with. */
const FAILURES: Record<string, [number, Json, Record<string, string>?]> = {
  'rate-429': [
    429,
    openaiError('Rate limit reached for requests per min.', 'requests', 'rate_limit_exceeded'),
    { 'retry-after': '7', 'x-ratelimit-remaining-requests': '0' },
  ],
  'fail-500': [500, openaiError('The server had an error.', 'server_error')],
  'fail-503': [503, openaiError('The engine is currently overloaded.', 'server_error')],
  breaker: [500, openaiError('Down for maintenance.', 'server_error')],
  'bad-400': [
    400,
    openaiError(
      "Invalid 'temperature': decimal above maximum value.",
      'invalid_request_error',
      'decimal_above_max_value',
      'temperature',
    ),
  ],
};

/** A 200 whose body is an error (some proxies answer so), JSON or as a stream's first event. */
function inBandError(res: ServerResponse, body: Json): void {
  const error = { error: { message: 'Engine failed mid-request.', type: 'server_error', code: null } };
  if (body.stream !== true) {
    sendJson(res, 200, error);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.end(`data: ${JSON.stringify(error)}\n\n`);
}

/** The upstream answers by model name: each failure has its own, so hits can be counted apart. */
function respond(body: Json, res: ServerResponse): void {
  const model = String(body.model);
  const failure = FAILURES[model];
  if (failure) sendJson(res, failure[0], failure[1], failure[2]);
  else if (model === 'cut-stream') cutStream(res);
  else if (model === 'in-band') inBandError(res, body);
  else answer(res, body);
}

function hits(model: string): number {
  return upstream.requests.filter((r) => r.json?.model === model).length;
}

const ask = (model: string) => ({
  model,
  max_tokens: 10,
  messages: [{ role: 'user' as const, content: 'hi' }],
});

/** An SDK client that counts its own HTTP attempts (each retry is one more) and keeps the last response. */
function countingClient(apiKey: string | null, options: { maxRetries?: number; authToken?: string } = {}) {
  const attempts: Response[] = [];
  const client = new Anthropic({
    baseURL: gw.url,
    apiKey,
    authToken: options.authToken ?? null,
    maxRetries: options.maxRetries ?? 2,
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      attempts.push(response);
      return response;
    },
  });
  return { client, attempts };
}

/**
 * A client whose retry decisions are observed: when the SDK logs that it is retrying, the
 * request is aborted instead of waiting out a retry-after of up to a minute.
 */
function retryWatchingClient(apiKey: string) {
  const controller = new AbortController();
  const retrying: string[] = [];
  const attempts: Response[] = [];
  const ignore = () => undefined;
  const client = new Anthropic({
    baseURL: gw.url,
    apiKey,
    maxRetries: 2,
    logLevel: 'info',
    logger: {
      debug: ignore,
      warn: ignore,
      error: ignore,
      info: (message: string) => {
        if (!message.includes('retrying')) return;
        retrying.push(message);
        controller.abort();
      },
    },
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      attempts.push(response);
      return response;
    },
  });
  return { client, attempts, retrying, signal: controller.signal };
}

async function rawCall(path: string, init: RequestInit & { headers?: Record<string, string> } = {}) {
  const response = await fetch(`${gw.url}${path}`, init);
  const text = await response.text();
  const json = response.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : undefined;
  return { response, text, json: json as Json | undefined };
}

/** Anthropic's error envelope, exactly: its three fields, the request id matching the header. */
function expectEnvelope(
  call: { response: Response; json: Json | undefined },
  status: number,
  type: string,
): { type: string; message: string } {
  expect(call.response.status, JSON.stringify(call.json)).toBe(status);
  expect(call.response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = call.json as { type: string; error: { type: string; message: string }; request_id: string };
  expect(Object.keys(body).sort()).toEqual(['error', 'request_id', 'type']);
  expect(body.type).toBe('error');
  expect(Object.keys(body.error).sort()).toEqual(['message', 'type']);
  expect(body.error.type).toBe(type);
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.request_id).toMatch(/^req_/);
  expect(call.response.headers.get('request-id')).toBe(body.request_id);
  return body.error;
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  rawCall(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key, ...VERSION, ...headers },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, res) =>
    respond(request.json ?? {}, res),
  );
  const base = await upstream.start();
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream' } },
    models: {
      'chat-model': { backend: 'up', model: 'upstream-chat', ...ONE_ATTEMPT },
      'other-model': { backend: 'up', model: 'upstream-other', ...ONE_ATTEMPT },
      'fail-500': { backend: 'up', ...ONE_ATTEMPT },
      'fail-503': { backend: 'up', ...ONE_ATTEMPT },
      'bad-400': { backend: 'up', ...ONE_ATTEMPT },
      'rate-429': { backend: 'up', ...ONE_ATTEMPT },
      'cut-stream': { backend: 'up', ...ONE_ATTEMPT },
      'in-band': { backend: 'up', ...ONE_ATTEMPT },
      // One failure opens its circuit for a minute: every deployment of it is then out.
      breaker: { backend: 'up', retry: { attempts: 1 }, circuit: { failures: 1, cooldownMs: 60_000 } },
    },
  });
  admin = new AdminHttp(gw.url);
  key = await admin.teamKey();
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('invalid requests', () => {
  it('a missing max_tokens is a 400 invalid_request_error naming it', async () => {
    const { client, attempts } = countingClient(key);
    const { max_tokens: _omitted, ...noMax } = ask('chat-model');
    const error = await client.messages
      .create(noMax as Anthropic.MessageCreateParamsNonStreaming)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    const failure = error as InstanceType<typeof Anthropic.BadRequestError>;
    expect(failure.status).toBe(400);
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(failure.message).toContain('max_tokens');
    expect(failure.requestID).toMatch(/^req_/);
    expect(attempts).toHaveLength(1);
    expect(hits('upstream-chat')).toBe(0);

    const raw = await post('/v1/messages', noMax);
    expect(expectEnvelope(raw, 400, 'invalid_request_error').message).toContain('max_tokens');
  });

  it('an unknown role is a 400 whose message says "Unexpected role"', async () => {
    const { client } = countingClient(key);
    const error = await client.messages
      .create({
        ...ask('chat-model'),
        messages: [{ role: 'tool' as 'user', content: 'hi' }],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    const failure = error as InstanceType<typeof Anthropic.BadRequestError>;
    expect(failure.error).toMatchObject({ error: { type: 'invalid_request_error' } });
    expect(failure.message).toContain('Unexpected role');

    const raw = await post('/v1/messages', {
      ...ask('chat-model'),
      messages: [{ role: 'tool', content: 'x' }],
    });
    expect(expectEnvelope(raw, 400, 'invalid_request_error').message).toContain('Unexpected role');
  });

  it('count_tokens refuses an invalid body the same way', async () => {
    const raw = await post('/v1/messages/count_tokens', { model: 'chat-model', messages: [] });
    expectEnvelope(raw, 400, 'invalid_request_error');
  });
});

describe('models and keys', () => {
  it('an unknown model is a 404 not_found_error', async () => {
    const { client, attempts } = countingClient(key);
    const error = await client.messages.create(ask('no-such-model')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.NotFoundError);
    const failure = error as InstanceType<typeof Anthropic.NotFoundError>;
    expect(failure.status).toBe(404);
    expect(failure.error).toMatchObject({ error: { type: 'not_found_error' } });
    expect(failure.message).toContain('no-such-model');
    expect(attempts).toHaveLength(1);
    expectEnvelope(await post('/v1/messages', ask('no-such-model')), 404, 'not_found_error');
  });

  it('a missing or wrong key is a 401 authentication_error the SDK does not retry', async () => {
    const { client, attempts } = countingClient('tg-this-key-does-not-exist-0000000000');
    const error = await client.messages.create(ask('chat-model')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
    const failure = error as InstanceType<typeof Anthropic.AuthenticationError>;
    expect(failure.status).toBe(401);
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    expect(failure.headers?.get('x-should-retry')).toBe('false');
    expect(attempts).toHaveLength(1);
    // The SDK refuses to send without a key, so no key at all is sent raw.
    const refused: Array<Record<string, string>> = [
      {},
      { 'x-api-key': 'tg-wrong-000000000000' },
      { authorization: 'Bearer tg-wrong-1' },
    ];
    for (const auth of refused) {
      const raw = await rawCall('/v1/messages', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...VERSION, ...auth },
        body: JSON.stringify(ask('chat-model')),
      });
      expectEnvelope(raw, 401, 'authentication_error');
      expect(raw.response.headers.get('x-should-retry'), JSON.stringify(auth)).toBe('false');
    }
    expect(hits('upstream-chat')).toBe(0);
  });

  it('takes the key as x-api-key and as Authorization: Bearer', async () => {
    const viaApiKey = countingClient(key);
    const viaBearer = countingClient(null, { authToken: key });
    const first = await viaApiKey.client.messages.create(ask('chat-model'));
    const second = await viaBearer.client.messages.create(ask('chat-model'));
    expect(first.content).toEqual([{ type: 'text', text: 'ok' }]);
    expect(second.content).toEqual([{ type: 'text', text: 'ok' }]);
    // Raw, to be sure which header carried it.
    const headers = { 'content-type': 'application/json', ...VERSION };
    for (const auth of [{ 'x-api-key': key }, { authorization: `Bearer ${key}` }]) {
      const response = await fetch(`${gw.url}/v1/messages`, {
        method: 'POST',
        headers: { ...headers, ...auth },
        body: JSON.stringify(ask('chat-model')),
      });
      expect(response.status, Object.keys(auth)[0]).toBe(200);
      await response.body?.cancel();
    }
  });

  it("a model outside the key's allowlist does not exist for it: 404 not_found_error", async () => {
    const narrow = await admin.teamKey({}, { models: ['chat-model'] });
    const { client, attempts } = countingClient(narrow);
    const before = hits('upstream-other');
    const error = await client.messages.create(ask('other-model')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.NotFoundError);
    expect((error as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({
      error: { type: 'not_found_error' },
    });
    expect(attempts).toHaveLength(1);
    expect(hits('upstream-other')).toBe(before);
    const counted = await client.messages
      .countTokens({ model: 'other-model', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(counted).toBeInstanceOf(Anthropic.NotFoundError);
    // The allowed model still works for it.
    await expect(client.messages.create(ask('chat-model'))).resolves.toMatchObject({ type: 'message' });
  });
});

describe('upstream failures', () => {
  it("rewrites an upstream 400 (OpenAI's envelope) into Anthropic's, keeping status and message", async () => {
    const { client, attempts } = countingClient(key);
    const error = await client.messages.create(ask('bad-400')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    const failure = error as InstanceType<typeof Anthropic.BadRequestError>;
    expect(failure.error).toEqual({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        message: "Invalid 'temperature': decimal above maximum value.",
      },
      request_id: failure.requestID,
    });
    expect(attempts).toHaveLength(1);
    const raw = await post('/v1/messages', ask('bad-400'));
    expect(expectEnvelope(raw, 400, 'invalid_request_error').message).toBe(
      "Invalid 'temperature': decimal above maximum value.",
    );
    expect(raw.text).not.toContain('decimal_above_max_value');
  });

  it('relays an upstream 429 as 429 rate_limit_error, keeping its message and retry-after', async () => {
    const { client, attempts } = countingClient(key, { maxRetries: 0 });
    const error = await client.messages.create(ask('rate-429')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const failure = error as InstanceType<typeof Anthropic.RateLimitError>;
    expect(failure.error).toMatchObject({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'Rate limit reached for requests per min.' },
    });
    expect(failure.headers?.get('retry-after')).toBe('7');
    expect(attempts).toHaveLength(1);
    expectEnvelope(await post('/v1/messages', ask('rate-429')), 429, 'rate_limit_error');
  });

  it('a streamed request that fails before its first event gets a JSON error, not a stream', async () => {
    const { client, attempts } = countingClient(key, { maxRetries: 0 });
    const error = await client.messages
      .stream(ask('fail-500'))
      .finalMessage()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.InternalServerError);
    const failure = error as InstanceType<typeof Anthropic.InternalServerError>;
    expect(failure.status).toBe(502);
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(attempts).toHaveLength(1);
    const raw = await post('/v1/messages', { ...ask('fail-500'), stream: true });
    expectEnvelope(raw, 502, 'api_error');
  });

  it('a 200 whose body is an error is a 5xx error, JSON as on a stream, never an empty Message', async () => {
    const { client } = countingClient(key, { maxRetries: 0 });
    const streamed = await client.messages
      .stream(ask('in-band'))
      .finalMessage()
      .catch((e: unknown) => e);
    expect(streamed).toBeInstanceOf(Anthropic.InternalServerError);
    expect((streamed as InstanceType<typeof Anthropic.APIError>).message).toContain(
      'Engine failed mid-request.',
    );

    const json = await client.messages.create(ask('in-band')).catch((e: unknown) => e);
    expect(
      json,
      `a 200 {"error":{...}} chat answer became a successful Message: ${JSON.stringify(json)}`,
    ).toBeInstanceOf(Anthropic.InternalServerError);
    const failure = json as InstanceType<typeof Anthropic.InternalServerError>;
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(failure.message).toContain('Engine failed mid-request.');
  });

  it('an upstream 500 or 503 is a 5xx api_error the SDK retries (3 upstream hits with maxRetries 2)', async () => {
    const results = await Promise.all(
      ['fail-500', 'fail-503'].map(async (model) => {
        const before = hits(model);
        const { client, attempts } = countingClient(key, { maxRetries: 2 });
        const error = await client.messages.create(ask(model)).catch((e: unknown) => e);
        return { model, error, attempts: attempts.length, upstreamHits: hits(model) - before };
      }),
    );
    for (const { model, error, attempts, upstreamHits } of results) {
      expect(error, model).toBeInstanceOf(Anthropic.InternalServerError);
      const failure = error as InstanceType<typeof Anthropic.InternalServerError>;
      const { type } = (failure.error as { error: { type: string } }).error;
      // An upstream 503 may be told as Anthropic's overloaded (529); either way a retried 5xx.
      const allowed =
        model === 'fail-500'
          ? [[502, 'api_error']]
          : [
              [502, 'api_error'],
              [503, 'api_error'],
              [529, 'overloaded_error'],
            ];
      expect(allowed, `${model}: ${failure.status} ${type}`).toContainEqual([failure.status, type]);
      expect(attempts, model).toBe(3);
      expect(upstreamHits, model).toBe(3);
    }
    const raw = await post('/v1/messages', ask('fail-500'));
    expectEnvelope(raw, 502, 'api_error');
    expect(raw.response.headers.get('x-should-retry')).not.toBe('false');
  });

  it('every deployment out (open circuit) is 529 overloaded_error with retry-after, retried by the SDK', async () => {
    // The first failure opens the circuit.
    const opened = await post('/v1/messages', ask('breaker'));
    expectEnvelope(opened, 502, 'api_error');
    expect(hits('breaker')).toBe(1);

    const raw = await post('/v1/messages', ask('breaker'));
    expectEnvelope(raw, 529, 'overloaded_error');
    expect(Number(raw.response.headers.get('retry-after'))).toBeGreaterThan(0);

    const { client } = countingClient(key, { maxRetries: 0 });
    const overloaded = await client.messages.create(ask('breaker')).catch((e: unknown) => e);
    expect(overloaded).toBeInstanceOf(Anthropic.OverloadedError);
    expect((overloaded as InstanceType<typeof Anthropic.OverloadedError>).error).toMatchObject({
      error: { type: 'overloaded_error' },
    });

    const watched = retryWatchingClient(key);
    const error = await watched.client.messages
      .create(ask('breaker'), { signal: watched.signal })
      .catch((e: unknown) => e);
    expect(watched.retrying, 'the SDK did not decide to retry').toHaveLength(1);
    expect(watched.retrying[0]).toContain('529');
    expect(error).toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(watched.attempts.map((r) => r.status)).toEqual([529]);
    // Nothing was sent upstream while the circuit is open.
    expect(hits('breaker')).toBe(1);
  });

  it('a failure after the stream started ends it with an error event the SDK throws as an APIError', async () => {
    const { client, attempts } = countingClient(key, { maxRetries: 2 });
    const stream = client.messages.stream(ask('cut-stream'));
    const texts: string[] = [];
    const error = await (async () => {
      for await (const event of stream)
        if (event.type === 'content_block_delta' && event.delta.type === 'text_delta')
          texts.push(event.delta.text);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    const failure = error as InstanceType<typeof Anthropic.APIError>;
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(texts.join('')).toBe('Half an answer');
    // The 200 went out: the SDK does not send the request again.
    expect(attempts).toHaveLength(1);
    expect(hits('cut-stream')).toBe(1);

    const raw = await post('/v1/messages', { ...ask('cut-stream'), stream: true });
    expect(raw.response.status).toBe(200);
    const frames = raw.text.split('\n\n').filter((frame) => frame.trim() !== '');
    const last = frames.at(-1) ?? '';
    expect(last.startsWith('event: error\n'), last).toBe(true);
    const data = JSON.parse(last.slice(last.indexOf('data: ') + 6)) as Json;
    expect(data).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(data.request_id).toBe(raw.response.headers.get('request-id'));
    expect(typeof (data.error as { message?: unknown }).message).toBe('string');
    expect(frames.some((frame) => frame.startsWith('event: message_stop'))).toBe(false);
  });
});

describe("the gateway's own limits", () => {
  it('a request-rate limit is 429 rate_limit_error with retry-after, which the SDK retries', async () => {
    const limited = await admin.teamKey({}, { limits: { requests_per_minute: 1 } });
    const { client } = countingClient(limited, { maxRetries: 0 });
    await client.messages.create(ask('chat-model'));

    const raw = await post('/v1/messages', ask('chat-model'), { 'x-api-key': limited });
    expect(expectEnvelope(raw, 429, 'rate_limit_error').message).toContain('requests per minute');
    expect(Number(raw.response.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(raw.response.headers.get('x-should-retry')).toBeNull();

    const impatient = await countingClient(limited, { maxRetries: 0 })
      .client.messages.create(ask('chat-model'))
      .catch((e: unknown) => e);
    expect(impatient).toBeInstanceOf(Anthropic.RateLimitError);
    expect((impatient as InstanceType<typeof Anthropic.RateLimitError>).error).toMatchObject({
      error: { type: 'rate_limit_error' },
    });

    const watched = retryWatchingClient(limited);
    const error = await watched.client.messages
      .create(ask('chat-model'), { signal: watched.signal })
      .catch((e: unknown) => e);
    expect(watched.retrying, 'the SDK did not decide to retry').toHaveLength(1);
    expect(watched.retrying[0]).toContain('429');
    expect(error).toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(watched.attempts.map((r) => r.status)).toEqual([429]);
    expect(Number(watched.attempts[0]?.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('a request larger than a whole tokens-per-minute window is 429 with x-should-retry: false, not retried', async () => {
    const small = await admin.teamKey({}, { limits: { tokens_per_minute: 50 } });
    const { client, attempts } = countingClient(small, { maxRetries: 2 });
    const error = await client.messages
      .create({ ...ask('chat-model'), max_tokens: 500 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const failure = error as InstanceType<typeof Anthropic.RateLimitError>;
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    expect(failure.message).toContain('Request too large');
    expect(failure.headers?.get('x-should-retry')).toBe('false');
    expect(attempts).toHaveLength(1);
  });

  it('an exhausted budget is 402 billing_error with x-should-retry: false, and the SDK does not retry', async () => {
    const upstreamBefore = hits('upstream-chat');
    const budgeted = await admin.teamKey({ budgets: [{ period: 'day', max_tokens: 40 }] });
    const { client, attempts } = countingClient(budgeted, { maxRetries: 2 });
    await client.messages.create(ask('chat-model')); // spends the 40 tokens the upstream reports
    const standing = async () =>
      (
        (await (
          await fetch(`${gw.baseURL}/tollgate/key`, { headers: { 'x-api-key': budgeted } })
        ).json()) as {
          team: { standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> } };
        }
      ).team.standing.budgets[0];
    const spent = await pollUntil(standing, (b) => b?.spent_tokens === 40 && b.reserved_tokens === 0);
    expect(spent).toMatchObject({ spent_tokens: 40, reserved_tokens: 0 });

    const error = await client.messages.create(ask('chat-model')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.PaymentRequiredError);
    const failure = error as InstanceType<typeof Anthropic.PaymentRequiredError>;
    expect(failure.status).toBe(402);
    expect(failure.error).toMatchObject({ type: 'error', error: { type: 'billing_error' } });
    expect(failure.message).toContain('exhausted');
    expect(failure.headers?.get('x-should-retry')).toBe('false');
    // One attempt for the answer, one for the refusal: no retry.
    expect(attempts.map((r) => r.status)).toEqual([200, 402]);
    expect(hits('upstream-chat')).toBe(upstreamBefore + 1);

    const raw = await post('/v1/messages', ask('chat-model'), { 'x-api-key': budgeted });
    expectEnvelope(raw, 402, 'billing_error');
    expect(raw.response.headers.get('x-should-retry')).toBe('false');
    const streamed = await post(
      '/v1/messages',
      { ...ask('chat-model'), stream: true },
      { 'x-api-key': budgeted },
    );
    expectEnvelope(streamed, 402, 'billing_error');
    expect(hits('upstream-chat')).toBe(upstreamBefore + 1);

    // Counting generates nothing and reserves nothing: an exhausted budget does not refuse it.
    const counted = await client.messages.countTokens({
      model: 'chat-model',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(counted.input_tokens).toBeGreaterThan(0);
  });
});

describe('paths', () => {
  it("an unknown path under /v1/messages/ is 404 not_found_error in Anthropic's shape", async () => {
    for (const [method, path] of [
      ['POST', '/v1/messages/batches'],
      ['GET', '/v1/messages/batches/msgbatch_1'],
      ['POST', '/v1/messages/count_tokens/extra'],
    ] as const) {
      // Without anthropic-version too: the path alone picks Anthropic's shape.
      for (const version of [VERSION, {}]) {
        const raw = await rawCall(path, {
          method,
          headers: {
            'x-api-key': key,
            ...version,
            ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
          },
          ...(method === 'POST' ? { body: JSON.stringify(ask('chat-model')) } : {}),
        });
        expectEnvelope(raw, 404, 'not_found_error');
      }
    }
  });

  it("GET /v1/models without a key is 401 in Anthropic's shape when anthropic-version is sent", async () => {
    const raw = await rawCall('/v1/models', { headers: VERSION });
    expectEnvelope(raw, 401, 'authentication_error');
    const openai = await rawCall('/v1/models');
    expect(openai.response.status).toBe(401);
    expect(openai.json).toMatchObject({ error: { code: 'invalid_api_key' } });
    expect(openai.json?.type).toBeUndefined();
  });

  it("GET /v1/messages is 405 in Anthropic's shape", async () => {
    for (const version of [VERSION, {}]) {
      const raw = await rawCall('/v1/messages', { headers: { 'x-api-key': key, ...version } });
      expectEnvelope(raw, 405, 'invalid_request_error');
      expect(raw.response.headers.get('allow')).toContain('POST');
    }
  });
});
