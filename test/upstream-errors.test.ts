import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { expectEnvelope, expectNoInternals } from './support/error-envelope.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { REFUSED_ORIGIN } from './support/refused-port.js';

/**
 * What a client sees when the upstream fails, through the official SDK: 4xx relayed with the
 * upstream's status and body, 5xx and transport failures as 502, timeouts as 504, always
 * an OpenAI envelope, never the upstream's URL or key.
 */

const UPSTREAM_KEY = 'sk-upstream-secret-123';
const CHAT_PATH = '/v1/chat/completions';

let upstream: FakeUpstream;
let upstreamUrl: string;
let gw: TestGateway;
/** Every error text a client saw in this file, checked for leaks at the end. */
const clientTexts: string[] = [];

beforeAll(async () => {
  upstream = new FakeUpstream();
  upstreamUrl = await upstream.start();
  gw = await startGateway(upstreamConfig(upstreamUrl));
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

afterEach(() => {
  upstream.requests.length = 0;
});

function client(gateway: TestGateway = gw, maxRetries = 0): OpenAI {
  return new OpenAI({ baseURL: gateway.baseURL, apiKey: 'client-key', maxRetries });
}

const chatParams = { model: 'gpt-test', messages: [{ role: 'user' as const, content: 'hi' }] };

/** Runs the call, expects it to throw an SDK APIError, records what the client saw. */
async function apiError(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the call should have failed').toBeInstanceOf(OpenAI.APIError);
  const apiError = error as InstanceType<typeof OpenAI.APIError>;
  clientTexts.push(apiError.message, JSON.stringify(apiError.error ?? null));
  return apiError;
}

/** The same request as raw HTTP, to see the exact body and headers. */
async function rawChat(gateway: TestGateway = gw, body: unknown = chatParams) {
  const response = await fetch(`${gateway.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer client-key' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  clientTexts.push(text);
  return { status: response.status, headers: response.headers, text, json: JSON.parse(text) as unknown };
}

function singleBackend(baseUrl: string, timeouts?: Record<string, number>): ConfigInput {
  return {
    backends: {
      upstream: {
        type: 'openai',
        baseUrl: `${baseUrl}/v1`,
        apiKey: UPSTREAM_KEY,
        ...(timeouts ? { timeouts } : {}),
      },
    },
    models: { 'gpt-test': { backend: 'upstream', model: 'upstream-gpt' } },
  };
}

describe('upstream 4xx are relayed with their status and body', () => {
  it.each([
    [
      400,
      OpenAI.BadRequestError,
      openaiError(
        "Invalid value for 'temperature'.",
        'invalid_request_error',
        'invalid_value',
        'temperature',
      ),
    ],
    [
      401,
      OpenAI.AuthenticationError,
      openaiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'),
    ],
    [
      404,
      OpenAI.NotFoundError,
      openaiError(
        'The model `upstream-gpt` does not exist.',
        'invalid_request_error',
        'model_not_found',
        'model',
      ),
    ],
    [
      429,
      OpenAI.RateLimitError,
      openaiError('Rate limit reached for requests.', 'requests', 'rate_limit_exceeded'),
    ],
  ])(
    'upstream %i -> the SDK throws the matching error with the upstream message/code/param',
    async (status, ErrorClass, body) => {
      upstream.on('POST', CHAT_PATH, (_req, res) => sendJson(res, status, body));
      const error = await apiError(client().chat.completions.create(chatParams));
      expect(error).toBeInstanceOf(ErrorClass);
      expect(error.status).toBe(status);
      expect(error.message).toContain(body.error.message);
      expect(error.code).toBe(body.error.code);
      expect(error.param).toBe(body.error.param);
      expect(error.type).toBe(body.error.type);
      expect(error.requestID).toMatch(/\S/);
      expect(upstream.requests).toHaveLength(1);
    },
  );

  it('the relayed body is the upstream body, unknown fields intact', async () => {
    const body = {
      error: { ...openaiError('Bad thing.', 'invalid_request_error', 'bad', 'messages').error, extra: 1 },
    };
    upstream.on('POST', CHAT_PATH, (_req, res) => sendJson(res, 400, body));
    const response = await rawChat();
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.json).toEqual(body);
    expectEnvelope(response.json, { type: 'invalid_request_error', code: 'bad', param: 'messages' });
  });

  it('429 relays retry-after (and retry-after-ms)', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, 429, openaiError('Slow down.', 'rate_limit_error', 'rate_limit_exceeded'), {
        'retry-after': '7',
        'retry-after-ms': '7000',
      }),
    );
    const error = await apiError(client().chat.completions.create(chatParams));
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(error.headers?.get('retry-after')).toBe('7');
    expect(error.headers?.get('retry-after-ms')).toBe('7000');
  });

  it('a 4xx before a stream starts is thrown by the SDK, not streamed', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, 429, openaiError('Slow down.', 'rate_limit_error', 'rate_limit_exceeded')),
    );
    const error = await apiError(client().chat.completions.create({ ...chatParams, stream: true }));
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(error.code).toBe('rate_limit_exceeded');
  });
});

describe('upstream 4xx that are not OpenAI envelopes become one', () => {
  it('plain text', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('model is required\n');
    });
    const response = await rawChat();
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const error = expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param: null });
    expect(error.message).toBe('model is required');

    const sdkError = await apiError(client().chat.completions.create(chatParams));
    expect(sdkError).toBeInstanceOf(OpenAI.BadRequestError);
    expect(sdkError.message).toContain('model is required');
  });

  it('an empty body', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) => {
      res.writeHead(403);
      res.end();
    });
    const response = await rawChat();
    expect(response.status).toBe(403);
    expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param: null });
  });

  it('Ollama-style {"error": "string"}', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, 404, { error: "model 'upstream-gpt' not found" }),
    );
    const response = await rawChat();
    expect(response.status).toBe(404);
    const error = expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param: null });
    expect(error.message).toBe("model 'upstream-gpt' not found");

    const sdkError = await apiError(client().chat.completions.create(chatParams));
    expect(sdkError).toBeInstanceOf(OpenAI.NotFoundError);
    expect(sdkError.message).toContain("model 'upstream-gpt' not found");
  });

  it('an envelope missing type/param/code gets them (as null where unknown)', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, 422, { error: { message: 'Unprocessable.', code: 42 } }),
    );
    const response = await rawChat();
    expect(response.status).toBe(422);
    const error = expectEnvelope(response.json, { type: 'invalid_request_error', code: '42', param: null });
    expect(error.message).toBe('Unprocessable.');
  });
});

describe('upstream 5xx and transport failures -> 502 upstream_error', () => {
  it.each([500, 503])('upstream %i -> 502 upstream_error', async (status) => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, status, openaiError('The server had an error.', 'server_error')),
    );
    const error = await apiError(client().chat.completions.create(chatParams));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(502);
    expect(error.code).toBe('upstream_error');
    expect(error.type).toBe('server_error');

    const response = await rawChat();
    expect(response.status).toBe(502);
    expectEnvelope(response.json, { type: 'server_error', code: 'upstream_error', param: null });
  });

  it('an upstream that drops the connection -> 502', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) => {
      res.socket?.destroy();
    });
    const response = await rawChat();
    expect(response.status).toBe(502);
    expectEnvelope(response.json, { type: 'server_error', code: 'upstream_error', param: null });
  });

  it('connection refused -> 502 upstream_error', async () => {
    const down = await startGateway(singleBackend(REFUSED_ORIGIN));
    try {
      const error = await apiError(client(down).chat.completions.create(chatParams));
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(error.status).toBe(502);
      expect(error.code).toBe('upstream_error');
      const response = await rawChat(down);
      expect(response.status).toBe(502);
      expectEnvelope(response.json, { type: 'server_error', code: 'upstream_error', param: null });
      expect(response.text).not.toContain('127.0.0.1');
    } finally {
      await down.close();
    }
  });
});

describe('timeouts -> 504 upstream_timeout', () => {
  it('no response headers within timeouts.firstByteMs', async () => {
    const silent = new FakeUpstream().on('POST', CHAT_PATH, () => {
      // never answers
    });
    const url = await silent.start();
    const timed = await startGateway(singleBackend(url, { firstByteMs: 300 }));
    try {
      const error = await apiError(client(timed).chat.completions.create(chatParams));
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(error.status).toBe(504);
      expect(error.code).toBe('upstream_timeout');
      expect(error.type).toBe('server_error');
      const response = await rawChat(timed);
      expect(response.status).toBe(504);
      expectEnvelope(response.json, { type: 'server_error', code: 'upstream_timeout', param: null });
    } finally {
      await timed.close();
      await silent.stop();
    }
  });

  it('an answer that never finishes within timeouts.totalMs', async () => {
    const stalling = new FakeUpstream().on('POST', CHAT_PATH, (_req, res) => {
      // Headers and half a body, then nothing: only the total timeout can end this.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id":"chatcmpl-1","object":"chat.completion",');
    });
    const url = await stalling.start();
    const timed = await startGateway(singleBackend(url, { totalMs: 300 }));
    try {
      const error = await apiError(client(timed).chat.completions.create(chatParams));
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(error.status).toBe(504);
      expect(error.code).toBe('upstream_timeout');
    } finally {
      await timed.close();
      await stalling.stop();
    }
  });

  it('no answer at all within timeouts.totalMs', async () => {
    const silent = new FakeUpstream().on('POST', CHAT_PATH, () => {
      // never answers
    });
    const url = await silent.start();
    const timed = await startGateway(singleBackend(url, { totalMs: 300 }));
    try {
      const response = await rawChat(timed);
      expect(response.status).toBe(504);
      expectEnvelope(response.json, { type: 'server_error', code: 'upstream_timeout', param: null });
      // The gateway gave up on the upstream request too.
      await silent.waitForAbort();
      expect(silent.requests[0]?.aborted).toBe(true);
    } finally {
      await timed.close();
      await silent.stop();
    }
  });
});

describe('SDK retries follow the gateway status', () => {
  it('with the default maxRetries (2) a 502 is retried: the upstream sees 3 requests', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) => sendJson(res, 500, openaiError('boom', 'server_error')));
    const error = await apiError(client(gw, 2).chat.completions.create(chatParams));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(502);
    expect(upstream.requests).toHaveLength(3);
  });

  it('a relayed 400 is not retried: the upstream sees 1 request', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, 400, openaiError('bad', 'invalid_request_error')),
    );
    const error = await apiError(client(gw, 2).chat.completions.create(chatParams));
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(upstream.requests).toHaveLength(1);
  });
});

describe('nothing about the upstream leaks to clients', () => {
  it('the upstream got the gateway key, never the client key', async () => {
    upstream.on('POST', CHAT_PATH, (_req, res) =>
      sendJson(res, 400, openaiError('bad', 'invalid_request_error')),
    );
    await apiError(client().chat.completions.create(chatParams));
    expect(upstream.requests[0]?.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(JSON.stringify(upstream.requests[0]?.headers)).not.toContain('client-key');
  });

  it.each([
    [401, 401, 'invalid_request_error', 'invalid_api_key'],
    [500, 502, 'server_error', 'upstream_error'],
  ])(
    'an upstream %i that echoes the gateway key back does not hand it to the client (%i)',
    async (status, expected, type, code) => {
      // Some OpenAI-compatible servers (and proxies in front of them) echo the presented key.
      upstream.on('POST', CHAT_PATH, (_req, res) =>
        sendJson(res, status, openaiError(`Incorrect API key provided: ${UPSTREAM_KEY}.`, type, code)),
      );
      const response = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chatParams),
      });
      const text = await response.text();
      expect(response.status).toBe(expected);
      expectEnvelope(JSON.parse(text), { type, code, param: null });
      expect(text).not.toContain(UPSTREAM_KEY);
    },
  );

  it('no error message or body in this file contains the upstream URL or key, or internals', () => {
    expect(clientTexts.length).toBeGreaterThan(20);
    const all = clientTexts.join('\n');
    expect(all).not.toContain(UPSTREAM_KEY);
    expect(all).not.toContain(`127.0.0.1:${upstream.port}`);
    expect(all).not.toMatch(/127\.0\.0\.1:\d+/);
    expect(all).not.toContain(upstreamUrl);
    expectNoInternals(all);
  });
});
