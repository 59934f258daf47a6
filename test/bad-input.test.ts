import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope, expectNoInternals, type RawResponse, rawRequest } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * Bad input at the edge: every mistake a client can make gets the right status and a full
 * OpenAI error envelope (DESIGN.md §3), never a crash or a stack trace.
 */

const BODY_LIMIT = 1024; // server.bodyLimit: '1kb'

let gw: TestGateway;
/** The same models with server.bodyLimit: '1kb'. */
let small: TestGateway;
/** Every response body seen in this file, checked at the end for leaked internals. */
const seen: string[] = [];

beforeAll(async () => {
  const config = { backends: { mock: { type: 'mock' as const } }, models: { mock: { backend: 'mock' } } };
  gw = await startGateway(config);
  small = await startGateway({ ...config, server: { bodyLimit: '1kb' } });
});

afterAll(async () => {
  await gw?.close();
  await small?.close();
});

async function post(
  path: string,
  body: string | Buffer,
  contentType: string | null = 'application/json',
  gateway: TestGateway = gw,
): Promise<RawResponse> {
  const headers: Record<string, string> = {};
  if (contentType !== null) headers['content-type'] = contentType;
  const response = await rawRequest(`${gateway.url}${path}`, { headers, body });
  seen.push(response.text);
  return response;
}

function postJson(path: string, body: unknown): Promise<RawResponse> {
  return post(path, JSON.stringify(body));
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'mock',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

/** A 4xx from the gateway itself: JSON content type, full envelope, no internals. */
function expectClientError(
  response: RawResponse,
  status: number,
  expected: { code?: string | null; param?: string | null; type?: string } = {},
) {
  expect(response.status, response.text).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expectNoInternals(response.text);
  return expectEnvelope(response.json, {
    type: expected.type ?? 'invalid_request_error',
    code: expected.code ?? null,
    param: expected.param ?? null,
  });
}

describe('unparseable bodies', () => {
  it('malformed JSON is a 400 envelope', async () => {
    const response = await post('/v1/chat/completions', '{"model": "mock", "messages": [');
    const error = expectClientError(response, 400);
    expect(error.message).toMatch(/JSON/);
  });

  it('a JSON array body is a 400 envelope', async () => {
    const response = await post('/v1/chat/completions', JSON.stringify([chat()]));
    const error = expectClientError(response, 400);
    expect(error.message).toMatch(/object/i);
  });

  it('a JSON string body is a 400 envelope', async () => {
    const response = await post('/v1/chat/completions', JSON.stringify('hello'));
    expectClientError(response, 400);
  });

  it('a JSON null body is a 400 envelope', async () => {
    const response = await post('/v1/chat/completions', 'null');
    expectClientError(response, 400);
  });

  it('an empty body with a JSON content type is a 400 envelope', async () => {
    const response = await post('/v1/chat/completions', '');
    expectClientError(response, 400);
  });

  it.each([
    [
      '__proto__',
      '{"model":"mock","messages":[{"role":"user","content":"hi"}],"__proto__":{"polluted":true}}',
    ],
    [
      'constructor.prototype',
      '{"model":"mock","messages":[{"role":"user","content":"hi"}],"constructor":{"prototype":{"polluted":true}}}',
    ],
  ])('a %s pollution attempt is a 400 envelope and pollutes nothing', async (_name, text) => {
    const response = await post('/v1/chat/completions', text);
    expectClientError(response, 400);
    // It is valid JSON: the message says what is refused, not that the JSON is broken.
    expect(JSON.parse(response.text).error.message).toMatch(/"__proto__" key/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // The gateway is still up and serving.
    expect((await postJson('/v1/chat/completions', chat())).status).toBe(200);
  });
});

describe('compressed bodies', () => {
  it('a gzip body is a 415 that says to send it uncompressed, not a JSON parse error', async () => {
    const response = await rawRequest(`${gw.url}/v1/chat/completions`, {
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(chat())),
    });
    expectClientError(response, 415, { code: 'unsupported_media_type' });
    expect(JSON.parse(response.text).error.message).toMatch(/Content-Encoding 'gzip'.*uncompressed/);
  });

  it('a broken body with a Content-Encoding that compresses nothing is still a JSON parse error', async () => {
    const response = await rawRequest(`${gw.url}/v1/chat/completions`, {
      headers: { 'content-type': 'application/json', 'content-encoding': 'utf-8' },
      body: '{bad',
    });
    expectClientError(response, 400);
    expect(JSON.parse(response.text).error.message).toMatch(/parse the JSON body/);
  });
});

describe('hostile bodies', () => {
  it('a deeply nested body (well under the size limit) is a 400 envelope, not a 500', async () => {
    // 200 kB of nested arrays in a field the gateway does not read: JSON.parse copes, but the
    // recursive JSON.stringify the gateway does before forwarding overflows the stack.
    const depth = 100_000;
    const text = `{"model":"mock","messages":[{"role":"user","content":"hi"}],"metadata_blob":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const response = await post('/v1/chat/completions', text);
    expect(response.status, response.text).toBe(400);
    const { code, param } = (response.json as { error: { code: string | null; param: string | null } }).error;
    expectEnvelope(response.json, { type: 'invalid_request_error', code, param });
    expectNoInternals(response.text);
    // Still serving.
    expect((await postJson('/v1/chat/completions', chat())).status).toBe(200);
  });
});

describe('wrong field types and values', () => {
  it.each([
    ['messages is a string', 'messages', { messages: 'hi' }],
    ['stream is a string', 'stream', { stream: 'yes' }],
    ['n is 0', 'n', { n: 0 }],
    ['n is not an integer', 'n', { n: 1.5 }],
    ['temperature is 5', 'temperature', { temperature: 5 }],
    ['max_tokens is a string', 'max_tokens', { max_tokens: '10' }],
    [
      'stream_options.include_usage is a string',
      'stream_options.include_usage',
      { stream: true, stream_options: { include_usage: 'yes' } },
    ],
    ['messages[0].role is a number', 'messages[0].role', { messages: [{ role: 5, content: 'hi' }] }],
    [
      'messages[1].role is missing',
      'messages[1].role',
      { messages: [{ role: 'user', content: 'a' }, { content: 'b' }] },
    ],
    ['model is a number', 'model', { model: 42 }],
    ['model is empty', 'model', { model: '' }],
  ])('%s -> 400 with param %s', async (_name, param, extra) => {
    const response = await postJson('/v1/chat/completions', chat(extra));
    const error = expectClientError(response, 400, { param });
    expect(error.message).toContain(param);
  });

  it('missing model -> 400, param model, and the message names it', async () => {
    const { model: _model, ...body } = chat();
    const error = expectClientError(await postJson('/v1/chat/completions', body), 400, { param: 'model' });
    expect(error.message).toMatch(/missing/i);
    expect(error.message).toContain('model');
  });

  it('missing messages -> 400, param messages', async () => {
    const { messages: _messages, ...body } = chat();
    const error = expectClientError(await postJson('/v1/chat/completions', body), 400, { param: 'messages' });
    expect(error.message).toContain('messages');
  });

  it('an empty messages array -> 400, param messages', async () => {
    const error = expectClientError(await postJson('/v1/chat/completions', chat({ messages: [] })), 400, {
      param: 'messages',
    });
    expect(error.message).toContain('messages');
  });

  it('embeddings with an unknown encoding_format -> 400, param encoding_format', async () => {
    const response = await postJson('/v1/embeddings', {
      model: 'mock',
      input: 'hello',
      encoding_format: 'int8',
    });
    const error = expectClientError(response, 400, { param: 'encoding_format' });
    expect(error.message).toContain('encoding_format');
  });

  it('legacy completions with prompt: {} -> 400, param prompt', async () => {
    const response = await postJson('/v1/completions', { model: 'mock', prompt: {} });
    expectClientError(response, 400, { param: 'prompt' });
  });

  it('validation happens before routing: an unknown model with a bad body is a 400, not a 404', async () => {
    const response = await postJson('/v1/chat/completions', chat({ model: 'no-such-model', messages: 'hi' }));
    expectClientError(response, 400, { param: 'messages' });
  });
});

describe('unknown things', () => {
  it('an unknown model -> 404 model_not_found, param model', async () => {
    const response = await postJson('/v1/chat/completions', chat({ model: 'no-such-model' }));
    const error = expectClientError(response, 404, { code: 'model_not_found', param: 'model' });
    expect(error.message).toContain('no-such-model');
  });

  it('an unknown model on GET /v1/models/{id} -> 404 model_not_found', async () => {
    const response = await rawRequest(`${gw.url}/v1/models/no-such-model`, { method: 'GET' });
    seen.push(response.text);
    expectClientError(response, 404, { code: 'model_not_found', param: 'model' });
  });

  it("an unknown route -> 404 envelope, code unknown_url, in OpenAI's words", async () => {
    const response = await postJson('/v1/chat/completion', chat());
    const error = expectClientError(response, 404, { code: 'unknown_url', param: null });
    expect(error.message).toBe('Invalid URL (POST /v1/chat/completion)');
  });

  it('an unknown route is not reported as an unknown model', async () => {
    const response = await rawRequest(`${gw.url}/v1/nope`, { method: 'GET' });
    seen.push(response.text);
    expectClientError(response, 404, { code: 'unknown_url', param: null });
  });

  it('a GET to a POST-only route is a 405 envelope with allow', async () => {
    const response = await rawRequest(`${gw.url}/v1/chat/completions`, { method: 'GET' });
    seen.push(response.text);
    const error = expectClientError(response, 405, { code: 'method_not_allowed', param: null });
    expect(response.headers.allow).toBe('POST, OPTIONS');
    expect(error.message).toContain('GET /v1/chat/completions');
  });
});

describe('body size', () => {
  it('a body over server.bodyLimit -> 413 request_too_large', async () => {
    const big = JSON.stringify(chat({ messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT * 2) }] }));
    const response = await post('/v1/chat/completions', big, 'application/json', small);
    const error = expectClientError(response, 413, { code: 'request_too_large' });
    expect(error.message).toContain(String(BODY_LIMIT));
  });

  it('a chunked body (no Content-Length) over the limit -> 413 request_too_large', async () => {
    const piece = 'x'.repeat(400);
    const response = await rawRequest(`${small.url}/v1/chat/completions`, {
      headers: { 'content-type': 'application/json' },
      chunks: ['{"model":"mock","messages":[{"role":"user","content":"', piece, piece, piece, piece, '"}]}'],
    });
    seen.push(response.text);
    expectClientError(response, 413, { code: 'request_too_large' });
  });

  it('a body just under the limit is accepted', async () => {
    const body = JSON.stringify(
      chat({ messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT - 200) }] }),
    );
    expect(Buffer.byteLength(body)).toBeLessThan(BODY_LIMIT);
    expect((await post('/v1/chat/completions', body, 'application/json', small)).status).toBe(200);
  });
});

describe('content types', () => {
  it('Content-Type: application/xml -> 415 envelope', async () => {
    const response = await post(
      '/v1/chat/completions',
      '<chat><model>mock</model></chat>',
      'application/xml',
    );
    const error = expectClientError(response, 415, { code: 'unsupported_media_type' });
    expect(error.message).toContain('application/xml');
  });

  it('multipart/form-data sent to /v1/chat/completions -> 415 envelope', async () => {
    const boundary = 'tollgateboundary';
    const body = [
      `--${boundary}`,
      'Content-Disposition: form-data; name="model"',
      '',
      'mock',
      `--${boundary}--`,
      '',
    ].join('\r\n');
    const response = await post('/v1/chat/completions', body, `multipart/form-data; boundary=${boundary}`);
    expectClientError(response, 415, { code: 'unsupported_media_type' });
  });

  it.each([
    ['application/x-www-form-urlencoded (curl -d)', 'application/x-www-form-urlencoded'],
    ['text/plain', 'text/plain'],
    ['text/plain; charset=utf-8', 'text/plain; charset=utf-8'],
    ['application/json; charset=utf-8', 'application/json; charset=utf-8'],
  ])('a JSON body sent as %s is accepted', async (_name, contentType) => {
    const response = await post('/v1/chat/completions', JSON.stringify(chat()), contentType);
    expect(response.status, response.text).toBe(200);
    expect((response.json as { object: string }).object).toBe('chat.completion');
  });

  it('a form-urlencoded body that is not JSON is a 400 envelope, not a 415', async () => {
    const response = await post(
      '/v1/chat/completions',
      'model=mock&messages=hi',
      'application/x-www-form-urlencoded',
    );
    expectClientError(response, 400);
  });

  it('a JSON body with no Content-Type header at all is accepted (curl --data-binary with -H "Content-Type:")', async () => {
    // A curl user who strips the header still sent JSON to a JSON-only API; it should work.
    const response = await post('/v1/chat/completions', JSON.stringify(chat()), null);
    expect(response.status, response.text).toBe(200);
    expect((response.json as { object: string }).object).toBe('chat.completion');
  });
});

describe('legacy and other endpoints', () => {
  it('/v1/engines/{engine}/completions works without a model in the body', async () => {
    const response = await postJson('/v1/engines/mock/completions', { prompt: 'Say hi' });
    expect(response.status, response.text).toBe(200);
    expect((response.json as { object: string }).object).toBe('text_completion');
    expect(response.headers['x-tollgate-backend']).toBe('mock');
  });

  it('/v1/engines/{engine}/completions with an unknown engine -> 404 model_not_found', async () => {
    const response = await postJson('/v1/engines/no-such-engine/completions', { prompt: 'Say hi' });
    expectClientError(response, 404, { code: 'model_not_found', param: 'model' });
  });

  it('/v1/engines/{engine}/completions validates the body like /v1/completions', async () => {
    const response = await postJson('/v1/engines/mock/completions', { prompt: {} });
    expectClientError(response, 400, { param: 'prompt' });
  });
});

describe('no internals leak', () => {
  it('no response body in this file carried a stack trace or a source path', () => {
    expect(seen.length).toBeGreaterThan(20);
    for (const text of seen) expectNoInternals(text);
  });
});

describe('URLs the router cannot take', () => {
  it('a malformed percent-encoding gets the 400 envelope, and an id with an encoded % is looked up as such', async () => {
    const gw = await startGateway({
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    try {
      const bad = await fetch(`${gw.baseURL}/models/%E0%A4%A`);
      expect(bad.status).toBe(400);
      const body = (await bad.json()) as { error: { type: string } };
      expect(body.error.type).toBe('invalid_request_error');
      const percent = await fetch(`${gw.baseURL}/models/a%25b`);
      expect(percent.status).toBe(404);
      expect(((await percent.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    } finally {
      await gw.close();
    }
  });
});
