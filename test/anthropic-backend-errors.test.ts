import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope, expectNoInternals } from './support/error-envelope.js';
import { DEFAULT_USAGE, echoScript, FakeAnthropic, messageEvents } from './support/fake-anthropic.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectChatCompletion } from './support/spec-validator.js';

/**
 * Anthropic failures as OpenAI clients see them: statuses, the SDK's error classes, retry-after,
 * 529 failing over to another deployment, errors inside streams, and the gateway's Anthropic key
 * never shown.
 */

const KEY_A = 'sk-ant-primary-secret-1';
const KEY_B = 'sk-ant-secondary-secret-2';
const POOL_KEY = 'sk-ant-pool-secret-3';
let primary: FakeAnthropic;
let secondary: FakeAnthropic;
let pooled: FakeAnthropic;
let gw: TestGateway;
let client: OpenAI;
/** Everything a client saw in this file, checked for the keys at the end. */
const seen: string[] = [];

beforeAll(async () => {
  primary = new FakeAnthropic();
  secondary = new FakeAnthropic();
  pooled = new FakeAnthropic();
  const [a, b, p] = await Promise.all([primary.start(), secondary.start(), pooled.start()]);
  gw = await startGateway({
    backends: {
      'claude-a': { type: 'anthropic', baseUrl: a, apiKey: KEY_A },
      'claude-b': { type: 'anthropic', baseUrl: `${b}/v1`, apiKey: KEY_B },
      'claude-pool': { type: 'anthropic', baseUrl: p, apiKeys: [{ key: POOL_KEY }] },
    },
    models: {
      claude: { backend: 'claude-a', model: 'claude-sonnet-4-5' },
      pooled: { backend: 'claude-pool', model: 'claude-haiku-4-5' },
      'anthropic/*': { backend: 'claude-a' },
      failover: {
        strategy: 'priority',
        deployments: [
          { backend: 'claude-a', model: 'claude-sonnet-4-5', priority: 0 },
          { backend: 'claude-b', model: 'claude-sonnet-4-5', priority: 1 },
        ],
        retry: { attempts: 2, backoffMs: 0 },
      },
    },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'client-key', maxRetries: 0 });
});

afterAll(async () => {
  for (const text of [...seen, gw.rawLogs()]) {
    for (const key of [KEY_A, KEY_B, POOL_KEY]) expect(text).not.toContain(key);
  }
  await gw?.close();
  await Promise.all([primary?.stop(), secondary?.stop(), pooled?.stop()]);
});

afterEach(() => {
  for (const fake of [primary, secondary, pooled]) {
    fake.script = echoScript;
    fake.requests.length = 0;
  }
});

function failWith(
  fake: FakeAnthropic,
  status: number,
  type: string,
  message: string,
  headers?: Record<string, string>,
) {
  fake.script = () => ({ kind: 'error', status, type, message, ...(headers ? { headers } : {}) });
}

async function sdkError(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the call should have failed').toBeInstanceOf(OpenAI.APIError);
  const apiError = error as InstanceType<typeof OpenAI.APIError>;
  seen.push(apiError.message, JSON.stringify(apiError.error ?? null));
  return apiError;
}

async function raw(body: Record<string, unknown>) {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer client-key' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  seen.push(text);
  expectNoInternals(text);
  return { status: response.status, headers: response.headers, text };
}

const chat = (model = 'claude') => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('Anthropic error types -> OpenAI statuses and envelopes', () => {
  it.each([
    [
      400,
      'invalid_request_error',
      'messages: roles must alternate',
      OpenAI.BadRequestError,
      { type: 'invalid_request_error', code: null, param: null },
    ],
    [
      400,
      'invalid_request_error',
      'prompt is too long: 210000 tokens > 200000 maximum',
      OpenAI.BadRequestError,
      { type: 'invalid_request_error', code: 'context_length_exceeded', param: null },
    ],
    [
      403,
      'permission_error',
      'Your API key does not have permission to use the specified resource.',
      OpenAI.PermissionDeniedError,
      { type: 'permission_error', code: null, param: null },
    ],
    [
      404,
      'not_found_error',
      'model: claude-nope',
      OpenAI.NotFoundError,
      { type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
    ],
    [
      413,
      'request_too_large',
      'Request exceeds the maximum allowed number of bytes.',
      OpenAI.APIError,
      { type: 'invalid_request_error', code: 'request_too_large', param: null },
    ],
    [
      429,
      'rate_limit_error',
      'Number of request tokens has exceeded your per-minute rate limit',
      OpenAI.RateLimitError,
      { type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null },
    ],
  ] as const)('%i %s', async (status, type, message, ErrorClass, expected) => {
    failWith(primary, status, type, message, status === 429 ? { 'retry-after': '30' } : undefined);
    const error = await sdkError(client.chat.completions.create(chat()));
    expect(error).toBeInstanceOf(ErrorClass);
    expect(error.status).toBe(status);
    expect(error.message).toContain(message);
    const response = await raw(chat());
    expect(response.status).toBe(status);
    expectEnvelope(JSON.parse(response.text), expected);
    if (status === 429) expect(response.headers.get('retry-after')).toBe('30');
  });

  it('authentication_error is the gateway’s problem: 502, the key never shown', async () => {
    failWith(primary, 401, 'authentication_error', `invalid x-api-key ${KEY_A}`);
    const error = await sdkError(client.chat.completions.create(chat()));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(502);
    expect(error.code).toBe('upstream_error');
    expect(error.message).toMatch(/credentials/);
  });

  it('an upstream message that echoes the key is scrubbed', async () => {
    failWith(primary, 400, 'invalid_request_error', `bad header for key ${KEY_A}`);
    const response = await raw(chat());
    expect(response.status).toBe(400);
    expect(response.text).toContain('[redacted]');
  });

  it('api_error (500) -> 502 upstream_error', async () => {
    failWith(primary, 500, 'api_error', 'Internal server error');
    const error = await sdkError(client.chat.completions.create(chat()));
    expect(error.status).toBe(502);
    expect(error.code).toBe('upstream_error');
  });

  it('overloaded_error (529) -> 503 with the upstream retry-after', async () => {
    failWith(primary, 529, 'overloaded_error', 'Overloaded', { 'retry-after': '7' });
    const error = await sdkError(client.chat.completions.create(chat()));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(503);
    expect(error.headers?.get('retry-after')).toBe('7');
    const response = await raw(chat());
    expectEnvelope(JSON.parse(response.text), {
      type: 'server_error',
      code: 'service_unavailable',
      param: null,
    });
  });
});

describe('failover', () => {
  it('529 on the first deployment: the second serves (JSON)', async () => {
    failWith(primary, 529, 'overloaded_error', 'Overloaded');
    const response = await raw(chat('failover'));
    expect(response.status).toBe(200);
    expectChatCompletion(JSON.parse(response.text));
    expect(response.headers.get('x-tollgate-backend')).toBe('claude-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(primary.messageBodies()).toHaveLength(1);
    expect(secondary.messageBodies()).toHaveLength(1);
    // `baseUrl` with a trailing /v1 reaches the same path.
    expect(secondary.requests.at(-1)?.url).toBe('/v1/messages');
    expect(secondary.requests.at(-1)?.headers['x-api-key']).toBe(KEY_B);
  });

  it('an overloaded_error event before any content: the second serves the stream', async () => {
    primary.script = (request) => ({
      kind: 'events',
      events: [
        messageEvents(request, { content: [], stop_reason: 'end_turn', usage: DEFAULT_USAGE })[0] as Record<
          string,
          unknown
        >,
        { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
      ],
    });
    const stream = await client.chat.completions.create({ ...chat('failover'), stream: true }).withResponse();
    expect(stream.response.headers.get('x-tollgate-backend')).toBe('claude-b');
    let text = '';
    for await (const chunk of stream.data) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('echo: hi');
    expect(primary.messageBodies()).toHaveLength(1);
  });

  it('the same with one deployment: the client gets a 503 before the stream starts', async () => {
    primary.script = () => ({
      kind: 'events',
      events: [{ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }],
    });
    const error = await sdkError(client.chat.completions.create({ ...chat(), stream: true }));
    expect(error.status).toBe(503);
  });
});

describe('errors after the stream started', () => {
  it('an error event mid-stream ends the stream with an OpenAI error event', async () => {
    primary.script = (request) => {
      const events = messageEvents(request, {
        content: [{ type: 'text', text: 'partial answer' }],
        stop_reason: 'end_turn',
        usage: DEFAULT_USAGE,
      });
      const cut = events.findIndex((event) => event.type === 'content_block_stop');
      return {
        kind: 'events',
        events: [
          ...events.slice(0, cut),
          { type: 'error', error: { type: 'api_error', message: 'Internal error mid-way' } },
        ],
      };
    };
    const response = await raw({ ...chat(), stream: true });
    expect(response.status).toBe(200);
    expect(response.text).toContain('"content":"part"');
    const last = response.text.trim().split('\n\n').at(-1) ?? '';
    const error = JSON.parse(last.replace(/^data: /, '')) as unknown;
    expectEnvelope(error, { type: 'server_error', code: 'upstream_error', param: null });
    expect(last).toContain('Internal error mid-way');
    expect(response.text).not.toContain('[DONE]');
  });

  it('a stream that ends without message_stop is an error, not a complete answer', async () => {
    primary.script = (request) => ({
      kind: 'events',
      events: messageEvents(request, {
        content: [{ type: 'text', text: 'cut short' }],
        stop_reason: 'end_turn',
        usage: DEFAULT_USAGE,
      }).slice(0, -2),
    });
    const response = await raw({ ...chat(), stream: true });
    expect(response.text).toContain('message_stop');
    expect(response.text).not.toContain('[DONE]');
  });

  it('a complete stream ends with data: [DONE]', async () => {
    const response = await raw({ ...chat(), stream: true });
    expect(response.text.endsWith('data: [DONE]\n\n')).toBe(true);
  });
});

describe('key pool', () => {
  it('sends the pool key; a key the upstream refuses is taken out', async () => {
    const ok = await client.chat.completions.create(chat('pooled'));
    expectChatCompletion(ok);
    expect(pooled.requests.at(-1)?.headers['x-api-key']).toBe(POOL_KEY);
    failWith(pooled, 401, 'authentication_error', 'invalid x-api-key');
    expect((await sdkError(client.chat.completions.create(chat('pooled')))).status).toBe(502);
    pooled.requests.length = 0;
    const error = await sdkError(client.chat.completions.create(chat('pooled')));
    expect(error.status).toBe(502);
    expect(error.message).toMatch(/refused every configured API key/);
    expect(pooled.requests).toHaveLength(0);
  });
});

describe('models', () => {
  it('a wildcard route knows the models the Anthropic upstream lists', async () => {
    const found = await client.models.retrieve('anthropic/claude-sonnet-4-5');
    expect(found.id).toBe('anthropic/claude-sonnet-4-5');
    const listing = primary.requests.find((request) => request.url.startsWith('/v1/models'));
    expect(listing?.headers['x-api-key']).toBe(KEY_A);
    expect(listing?.headers['anthropic-version']).toBe('2023-06-01');
    const error = await sdkError(client.models.retrieve('anthropic/claude-nope'));
    expect(error.status).toBe(404);
  });
});
