import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../src/http/json-depth.js';
import { expectEnvelope, type RawResponse, rawRequest } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A body nested past MAX_JSON_DEPTH is refused before it is parsed (a few megabytes of `[` took
 * seconds to parse, only to be refused afterwards), with the 400 the gateway gave after parsing.
 */

const TOO_DEEP = 'The request body is nested too deeply.';

describe('nestsDeeperThan', () => {
  it.each([
    ['flat', '{"a":1}', 1, false],
    ['exactly the limit', '[[[1]]]', 3, false],
    ['one past the limit', '[[[[1]]]]', 3, true],
    ['objects and arrays count alike', '{"a":[{"b":[1]}]}', 3, true],
    ['siblings do not add up', '[[1],[2],[3],[4],[5]]', 2, false],
    ['brackets inside strings do not count', '["[[[[{{{{"]', 2, false],
    ['an escaped quote does not end a string', '["\\"[[[[[["]', 2, false],
    ['an escaped backslash before a quote does', '["\\\\",[[[1]]]]', 3, true],
    ['a long string with escapes, then depth', `["${'ab\\"'.repeat(50)}",[[[1]]]]`, 3, true],
    ['a long string hiding brackets', `["${'x'.repeat(100)}[[[[[[\\\\"]`, 2, false],
    ['an unterminated string', '["[[[[[[', 2, false],
  ])('%s', (_name, text, limit, deeper) => {
    expect(nestsDeeperThan(text, limit)).toBe(deeper);
  });
});

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } });
});

afterAll(async () => {
  await gw?.close();
});

function post(path: string, body: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(`${gw.url}${path}`, {
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

/** A chat request whose whole body nests `depth` deep (the body object is the first level). */
function chatNested(depth: number, tail = ''): string {
  const arrays = depth - 1;
  return `{"model":"mock","messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(arrays)}${']'.repeat(arrays)}${tail}}`;
}

describe('over HTTP', () => {
  it('a body at the limit is served, one level more is a 400 in OpenAI shape', async () => {
    const atLimit = await post('/v1/chat/completions', chatNested(MAX_JSON_DEPTH));
    expect(atLimit.status, atLimit.text).toBe(200);
    const past = await post('/v1/chat/completions', chatNested(MAX_JSON_DEPTH + 1));
    expect(past.status).toBe(400);
    const error = expectEnvelope(past.json, { type: 'invalid_request_error', code: null, param: null });
    expect(error.message).toBe(TOO_DEEP);
  });

  it('is refused before parsing: too deep and broken at the end still gets the depth error', async () => {
    // Well-formed JSON gets the same answer after a parse; broken JSON would get the parse error.
    const depth = 1_000_000;
    const text = `{"model":"mock","messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(depth)} oops`;
    const response = await post('/v1/chat/completions', text);
    expect(response.status).toBe(400);
    const error = expectEnvelope(response.json, { type: 'invalid_request_error', code: null, param: null });
    expect(error.message).toBe(TOO_DEEP);
  });

  it('6 MB of `{"a":` nesting is refused with the same message', async () => {
    const depth = 1_000_000;
    const text = `{"model":"mock","input":"hi","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    const response = await post('/v1/embeddings', text);
    expect(response.status).toBe(400);
    expect((response.json as { error: { message: string } }).error.message).toBe(TOO_DEEP);
  });

  it('a body sent as text/plain (read as JSON) is checked too', async () => {
    const response = await post('/v1/chat/completions', `${chatNested(MAX_JSON_DEPTH + 1)} oops`, {
      'content-type': 'text/plain',
    });
    expect(response.status).toBe(400);
    expect((response.json as { error: { message: string } }).error.message).toBe(TOO_DEEP);
  });

  it('the Messages API answers in its own error shape', async () => {
    const depth = MAX_JSON_DEPTH + 1;
    const text = `{"model":"mock","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(depth)} oops`;
    const response = await post('/v1/messages', text, { 'anthropic-version': '2023-06-01' });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: TOO_DEEP },
    });
  });

  it('brackets inside strings are not nesting', async () => {
    const content = '['.repeat(MAX_JSON_DEPTH * 10);
    const response = await post(
      '/v1/chat/completions',
      JSON.stringify({ model: 'mock', messages: [{ role: 'user', content }] }),
    );
    expect(response.status, response.text).toBe(200);
  });
});
