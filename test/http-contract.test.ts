import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { type RawResponse, rawRequest } from './support/error-envelope.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { REFUSED_PORT } from './support/refused-port.js';
import { expectErrorResponse } from './support/spec-validator.js';

/**
 * The HTTP contract around every answer (DESIGN.md §3): request ids, processing time, backend
 * name, CORS, one request log line per request with no secrets in the logs, health and readiness.
 */

const UPSTREAM_KEY = 'sk-upstream-secret-123';
const CLIENT_KEY = 'sk-client-secret-xyz';
const AZURE_STYLE_KEY = 'azure-client-secret-abc';
const X_API_KEY = 'x-api-client-secret-def';
const GENERATED_ID = /^req_[0-9a-f]{32}$/;

let upstream: FakeUpstream;
let upstreamUrl: string;
let gw: TestGateway;

const chatCompletion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'upstream-gpt',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'hello', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
};

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (req, res) => {
    const content = JSON.stringify(req.json?.messages ?? '');
    if (content.includes('upstream-401')) {
      return sendJson(
        res,
        401,
        openaiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'),
      );
    }
    if (content.includes('upstream-500'))
      return sendJson(res, 500, openaiError('The server had an error.', 'server_error'));
    sendJson(res, 200, chatCompletion);
  });
  upstreamUrl = await upstream.start();
  // trace: the most verbose level must still log no secrets.
  gw = await startGateway({ ...upstreamConfig(upstreamUrl), log: { level: 'trace' } });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

const chat = (model = 'mock', content = 'hi', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content }],
  ...extra,
});

function post(
  gateway: TestGateway,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return rawRequest(`${gateway.url}${path}`, {
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

function get(gateway: TestGateway, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(`${gateway.url}${path}`, { method: 'GET', headers });
}

function requestLines(gateway: TestGateway, requestId: string): Array<Record<string, unknown>> {
  return gateway.logs.filter((line) => line.msg === 'request' && line.request_id === requestId);
}

/** The request line is written when the response closes, which may be just after the client has it. */
async function requestLine(gateway: TestGateway, requestId: string): Promise<Record<string, unknown>> {
  await vi.waitFor(() => expect(requestLines(gateway, requestId).length).toBeGreaterThan(0));
  const lines = requestLines(gateway, requestId);
  expect(lines, `exactly one request line for ${requestId}`).toHaveLength(1);
  return lines[0] as Record<string, unknown>;
}

describe('x-request-id', () => {
  it('is on every kind of response', async () => {
    const responses: Array<[string, RawResponse]> = [
      ['chat 200', await post(gw, '/v1/chat/completions', chat())],
      ['upstream 200', await post(gw, '/v1/chat/completions', chat('gpt-test'))],
      ['400', await post(gw, '/v1/chat/completions', { model: 'mock' })],
      ['404 model', await post(gw, '/v1/chat/completions', chat('nope'))],
      ['404 route', await get(gw, '/v1/nope')],
      ['405 method', await get(gw, '/v1/chat/completions')],
      ['options without origin', await rawRequest(`${gw.url}/v1/chat/completions`, { method: 'OPTIONS' })],
      [
        '415',
        await rawRequest(`${gw.url}/v1/chat/completions`, {
          headers: { 'content-type': 'application/xml' },
          body: '<a/>',
        }),
      ],
      ['502', await post(gw, '/v1/chat/completions', chat('gpt-test', 'upstream-500'))],
      ['models', await get(gw, '/v1/models')],
      ['healthz', await get(gw, '/healthz')],
      ['readyz', await get(gw, '/readyz')],
      [
        'preflight',
        await rawRequest(`${gw.url}/v1/chat/completions`, {
          method: 'OPTIONS',
          headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
        }),
      ],
    ];
    for (const [name, response] of responses) {
      expect(response.headers['x-request-id'], name).toMatch(GENERATED_ID);
      if (response.status >= 400 && name !== 'readyz') expectErrorResponse(response.json);
    }
    expect(responses.filter(([, response]) => response.status >= 400).map(([name]) => name)).toEqual([
      '400',
      '404 model',
      '404 route',
      '405 method',
      '415',
      '502',
    ]);
    const ids = responses.map(([, response]) => response.headers['x-request-id']);
    expect(new Set(ids).size, 'ids are unique').toBe(ids.length);
  });

  it('is on streamed responses', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'stream-trace-1' },
      body: JSON.stringify(chat('mock', 'hi', { stream: true })),
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('x-request-id')).toBe('stream-trace-1');
    expect(await response.text()).toContain('data: [DONE]');
  });

  it.each(['abc-123', 'trace_01J9ZK.span:7', 'a'.repeat(128)])(
    'a sane incoming id (%s) is honoured',
    async (id) => {
      const response = await post(gw, '/v1/chat/completions', chat(), { 'x-request-id': id });
      expect(response.headers['x-request-id']).toBe(id);
      expect((await requestLine(gw, id)).request_id).toBe(id);
    },
  );

  it('a sane incoming id is honoured on errors too', async () => {
    const response = await post(gw, '/v1/chat/completions', chat('nope'), { 'x-request-id': 'err-trace-1' });
    expect(response.status).toBe(404);
    expect(response.headers['x-request-id']).toBe('err-trace-1');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'has spaces in it'],
    ['with a quote and angle brackets', '"><script>'],
    ['with a slash', 'a/b'],
    ['empty', ''],
  ])('an insane incoming id (%s) is replaced', async (_name, id) => {
    const response = await post(gw, '/v1/chat/completions', chat(), { 'x-request-id': id });
    expect(response.status).toBe(200);
    expect(response.headers['x-request-id']).toMatch(GENERATED_ID);
    expect(response.headers['x-request-id']).not.toBe(id);
  });
});

describe('openai-processing-ms and x-tollgate-backend', () => {
  it('openai-processing-ms is on JSON responses (success and error)', async () => {
    for (const response of [
      await post(gw, '/v1/chat/completions', chat()),
      await post(gw, '/v1/chat/completions', chat('gpt-test')),
      await post(gw, '/v1/chat/completions', { model: 'mock' }),
      await post(gw, '/v1/chat/completions', chat('gpt-test', 'upstream-401')),
    ]) {
      expect(response.headers['openai-processing-ms']).toMatch(/^\d+$/);
    }
  });

  it('openai-processing-ms is on streamed responses', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat('mock', 'hi', { stream: true })),
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('openai-processing-ms')).toMatch(/^\d+$/);
    await response.text();
  });

  it('x-tollgate-backend is the backend name, never a URL or credential', async () => {
    const viaMock = await post(gw, '/v1/chat/completions', chat());
    expect(viaMock.headers['x-tollgate-backend']).toBe('mock');
    const viaUpstream = await post(gw, '/v1/chat/completions', chat('org/model-a'));
    expect(viaUpstream.status).toBe(200);
    expect(viaUpstream.headers['x-tollgate-backend']).toBe('upstream');
    const failed = await post(gw, '/v1/chat/completions', chat('gpt-test', 'upstream-500'));
    expect(failed.status).toBe(502);
    for (const response of [viaMock, viaUpstream, failed]) {
      const headers = JSON.stringify(response.headers);
      expect(headers).not.toContain('://');
      expect(headers).not.toContain(`127.0.0.1:${upstream.port}`);
      expect(headers).not.toContain(UPSTREAM_KEY);
    }
  });
});

describe('CORS', () => {
  const requestHeaders = 'authorization, content-type, x-stainless-os, x-stainless-retry-count';

  it('a preflight for /v1/chat/completions is allowed and echoes the requested headers', async () => {
    const response = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': requestHeaders,
      },
    });
    expect(response.status).toBeGreaterThanOrEqual(200);
    expect(response.status).toBeLessThan(300);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    expect(response.headers['access-control-allow-methods']).toMatch(/\bPOST\b/);
    const allowed = String(response.headers['access-control-allow-headers'])
      .split(',')
      .map((header) => header.trim().toLowerCase());
    expect(allowed).toEqual(expect.arrayContaining(requestHeaders.split(', ')));
    // A preflight is not a request for the pipeline: no model, no backend.
    expect(response.headers['x-tollgate-backend']).toBeUndefined();
  });

  it('actual responses expose x-request-id and the x-ratelimit-* headers', async () => {
    for (const response of [
      await post(gw, '/v1/chat/completions', chat(), { origin: 'https://app.example' }),
      await post(gw, '/v1/chat/completions', chat('nope'), { origin: 'https://app.example' }),
    ]) {
      expect(response.headers['access-control-allow-origin']).toBe('*');
      const exposed = String(response.headers['access-control-expose-headers'])
        .split(',')
        .map((header) => header.trim().toLowerCase());
      expect(exposed).toEqual(
        expect.arrayContaining([
          'x-request-id',
          'openai-processing-ms',
          'x-tollgate-backend',
          'x-tollgate-cache',
          'x-tollgate-cache-items',
          'x-tollgate-token-count',
          'retry-after',
          'x-ratelimit-limit-requests',
          'x-ratelimit-remaining-requests',
          'x-ratelimit-reset-requests',
          'x-ratelimit-limit-tokens',
          'x-ratelimit-remaining-tokens',
          'x-ratelimit-reset-tokens',
        ]),
      );
    }
  });

  it('a request without Origin (an SDK, curl, another server) gets no CORS headers', async () => {
    for (const response of [
      await post(gw, '/v1/chat/completions', chat()),
      await post(gw, '/v1/chat/completions', chat('nope')),
    ]) {
      const cors = Object.keys(response.headers).filter((name) => name.startsWith('access-control-'));
      expect(cors).toEqual([]);
      expect(response.headers.vary).toBeUndefined();
    }
  });

  it('a preflight for any path is answered, with how long it may be reused', async () => {
    const response = await rawRequest(`${gw.url}/v1/no-such-endpoint`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    expect(response.status).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    expect(response.headers['access-control-max-age']).toBe('600');
    expect(response.headers['access-control-allow-headers']).toBeUndefined();
  });

  describe('with server.cors.origins restricted', () => {
    let restricted: TestGateway;

    beforeAll(async () => {
      restricted = await startGateway({
        server: { cors: { origins: ['https://app.example'] } },
        backends: { mock: { type: 'mock' } },
        models: { mock: { backend: 'mock' } },
      });
    });

    afterAll(async () => {
      await restricted?.close();
    });

    it('the listed origin is allowed', async () => {
      const response = await post(restricted, '/v1/chat/completions', chat(), {
        origin: 'https://app.example',
      });
      expect(response.status).toBe(200);
      expect(response.headers['access-control-allow-origin']).toBe('https://app.example');
      expect(String(response.headers.vary)).toMatch(/origin/i);
    });

    it('answers vary by Origin, also to requests without one (a cache must not hand them to a page)', async () => {
      const without = await post(restricted, '/v1/chat/completions', chat());
      expect(without.status).toBe(200);
      expect(String(without.headers.vary)).toMatch(/\borigin\b/i);
      expect(without.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('another origin gets no allow-origin, on the preflight or the request', async () => {
      const preflight = await rawRequest(`${restricted.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://evil.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': requestHeaders,
        },
      });
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      const response = await post(restricted, '/v1/chat/completions', chat(), {
        origin: 'https://evil.example',
      });
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});

describe('request logging', () => {
  it('writes one request line per request with method, route, model, status, duration_ms, request_id', async () => {
    await post(gw, '/v1/chat/completions', chat(), { 'x-request-id': 'log-ok-1' });
    const ok = await requestLine(gw, 'log-ok-1');
    expect(ok).toMatchObject({
      method: 'POST',
      route: '/v1/chat/completions',
      model: 'mock',
      backend: 'mock',
      status: 200,
      request_id: 'log-ok-1',
    });
    expect(typeof ok.duration_ms).toBe('number');
    expect(ok.duration_ms as number).toBeGreaterThanOrEqual(0);

    await post(gw, '/v1/chat/completions', chat('gpt-test'), { 'x-request-id': 'log-upstream-1' });
    expect(await requestLine(gw, 'log-upstream-1')).toMatchObject({
      model: 'gpt-test',
      backend: 'upstream',
      status: 200,
    });

    await post(gw, '/v1/chat/completions', { model: 'mock' }, { 'x-request-id': 'log-400-1' });
    expect(await requestLine(gw, 'log-400-1')).toMatchObject({
      method: 'POST',
      route: '/v1/chat/completions',
      status: 400,
    });

    await post(gw, '/v1/chat/completions', chat('gpt-test', 'upstream-500'), { 'x-request-id': 'log-502-1' });
    expect(await requestLine(gw, 'log-502-1')).toMatchObject({ model: 'gpt-test', status: 502 });

    await get(gw, '/v1/nope', { 'x-request-id': 'log-404-1' });
    expect(await requestLine(gw, 'log-404-1')).toMatchObject({ method: 'GET', status: 404 });

    const streamed = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'log-stream-1' },
      body: JSON.stringify(chat('mock', 'hi', { stream: true })),
    });
    await streamed.text();
    expect(await requestLine(gw, 'log-stream-1')).toMatchObject({ model: 'mock', stream: true, status: 200 });
  });

  it('the request line carries the token usage of streamed and JSON answers', async () => {
    const streamed = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'usage-stream-1' },
      body: JSON.stringify(chat('mock', 'hi', { stream: true })),
    });
    await streamed.text();
    const streamLine = await requestLine(gw, 'usage-stream-1');
    expect(typeof streamLine.prompt_tokens).toBe('number');
    expect(typeof streamLine.completion_tokens).toBe('number');

    // Currently fails: app.ts reads usage only from SSE; a buffered JSON answer never sets
    // request.gateway.usage, so the line has no token counts.
    await post(gw, '/v1/chat/completions', chat('gpt-test'), { 'x-request-id': 'usage-json-1' });
    expect(await requestLine(gw, 'usage-json-1')).toMatchObject({ prompt_tokens: 3, completion_tokens: 1 });
  });

  it('never logs client keys or the upstream key, for requests that succeed and that fail', async () => {
    const credentials: Array<Record<string, string>> = [
      { authorization: `Bearer ${CLIENT_KEY}` },
      { 'api-key': AZURE_STYLE_KEY },
      { 'x-api-key': X_API_KEY },
      { authorization: `Bearer ${CLIENT_KEY}`, 'api-key': AZURE_STYLE_KEY, 'x-api-key': X_API_KEY },
    ];
    const bodies: unknown[] = [
      chat(),
      chat('gpt-test'),
      chat('gpt-test', 'upstream-401'),
      chat('gpt-test', 'upstream-500'),
      chat('nope'),
      { model: 'mock' },
    ];
    let n = 0;
    for (const headers of credentials) {
      for (const body of bodies) {
        const id = `secret-check-${n++}`;
        await post(gw, '/v1/chat/completions', body, { ...headers, 'x-request-id': id });
        await requestLine(gw, id);
      }
      const id = `secret-check-${n++}`;
      await rawRequest(`${gw.url}/v1/chat/completions`, {
        headers: { ...headers, 'content-type': 'application/json', 'x-request-id': id },
        body: '{not json',
      });
      await requestLine(gw, id);
    }
    // The upstream did get its key (so the check below would have something to find).
    expect(upstream.requests.some((r) => r.headers.authorization === `Bearer ${UPSTREAM_KEY}`)).toBe(true);
    const logs = gw.rawLogs();
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of [CLIENT_KEY, AZURE_STYLE_KEY, X_API_KEY, UPSTREAM_KEY]) {
      expect(logs).not.toContain(secret);
    }
  });

  it('does not log the upstream key when an upstream 5xx echoes it', async () => {
    const echo = new FakeUpstream().on('POST', '/v1/chat/completions', (_req, res) =>
      sendJson(res, 500, openaiError(`Upstream auth proxy failed for key ${UPSTREAM_KEY}`, 'server_error')),
    );
    const echoUrl = await echo.start();
    const echoGw = await startGateway(upstreamConfig(echoUrl));
    try {
      const response = await post(echoGw, '/v1/chat/completions', chat('gpt-test'), {
        'x-request-id': 'echo-1',
      });
      expect(response.status).toBe(502);
      await requestLine(echoGw, 'echo-1');
      expect(echoGw.rawLogs()).not.toContain(UPSTREAM_KEY);
    } finally {
      await echoGw.close();
      await echo.stop();
    }
  });
});

describe('health and readiness', () => {
  it('/healthz is 200 {status: ok}', async () => {
    const response = await get(gw, '/healthz');
    expect(response.status).toBe(200);
    expect(response.json).toEqual({ status: 'ok' });
  });

  it('/readyz is 200 with the store and every backend ok', async () => {
    const response = await get(gw, '/readyz');
    expect(response.status).toBe(200);
    expect(response.json).toMatchObject({
      ready: true,
      store: { ok: true },
      backends: { upstream: { ok: true }, mock: { ok: true } },
    });
  });

  async function readyz(config: ConfigInput): Promise<RawResponse> {
    const gateway = await startGateway(config);
    try {
      return await get(gateway, '/readyz');
    } finally {
      await gateway.close();
    }
  }

  function downBackend(port: number) {
    return { type: 'openai' as const, baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: UPSTREAM_KEY };
  }

  it('/readyz is 503 when the only backend is unreachable', async () => {
    const response = await readyz({
      backends: { down: downBackend(REFUSED_PORT) },
      models: { 'gpt-test': { backend: 'down' } },
    });
    expect(response.status).toBe(503);
    expect(response.json).toMatchObject({
      ready: false,
      store: { ok: true },
      backends: { down: { ok: false } },
    });
    expect(response.text).not.toContain('127.0.0.1');
    expect(response.text).not.toContain(UPSTREAM_KEY);
  });

  it('/readyz is 503 with requireAllBackends: true while one of two backends is down', async () => {
    const response = await readyz({
      readiness: { requireAllBackends: true },
      backends: { down: downBackend(REFUSED_PORT), mock: { type: 'mock' } },
      models: { 'gpt-test': { backend: 'down' }, mock: { backend: 'mock' } },
    });
    expect(response.status).toBe(503);
    expect(response.json).toMatchObject({
      ready: false,
      backends: { down: { ok: false }, mock: { ok: true } },
    });
  });

  it('/readyz is 200 with requireAllBackends: false while one of two backends is up', async () => {
    const response = await readyz({
      readiness: { requireAllBackends: false },
      backends: { down: downBackend(REFUSED_PORT), mock: { type: 'mock' } },
      models: { 'gpt-test': { backend: 'down' }, mock: { backend: 'mock' } },
    });
    expect(response.status).toBe(200);
    expect(response.json).toMatchObject({
      ready: true,
      backends: { down: { ok: false }, mock: { ok: true } },
    });
  });
});
