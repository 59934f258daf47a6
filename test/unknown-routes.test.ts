import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope, expectNoInternals, type RawResponse, rawRequest } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * Requests no route takes. A path the gateway does not serve gets OpenAI's answer for an
 * unknown URL (404, `unknown_url`, "Invalid URL (GET /v1/x)"), never "model not found"; a path
 * it serves, with another method, gets 405 and `allow` naming the methods it takes.
 */

let gw: TestGateway;
let keyed: TestGateway;

beforeAll(async () => {
  const models = { backends: { mock: { type: 'mock' as const } }, models: { mock: { backend: 'mock' } } };
  gw = await startGateway(models);
  keyed = await startGateway({ ...models, auth: {}, admin: { key: 'tg-admin-test-key-0123456789abcdef' } });
});

afterAll(async () => {
  await gw?.close();
  await keyed?.close();
});

function send(gateway: TestGateway, method: string, path: string, body?: string): Promise<RawResponse> {
  return rawRequest(`${gateway.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
  });
}

function expectAnswer(response: RawResponse, status: number, code: string, message: string): void {
  expect(response.status, response.text).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expect(response.headers['x-request-id']).toMatch(/^req_[0-9a-f]{32}$/);
  expectNoInternals(response.text);
  const error = expectEnvelope(response.json, { type: 'invalid_request_error', code, param: null });
  expect(error.message).toBe(message);
}

describe('unknown URLs -> 404 unknown_url', () => {
  const cases: Array<[string, string]> = [
    ['GET', '/v1/nope'],
    ['POST', '/v1/chat/completion'],
    ['POST', '/chat/completions'],
    ['GET', '/models'],
    ['GET', '/'],
    ['DELETE', '/v2/models'],
    ['GET', '/v1/models-list'],
  ];
  for (const [method, path] of cases) {
    it(`${method} ${path}`, async () => {
      const response = await send(gw, method, path, method === 'POST' ? '{"model":"mock"}' : undefined);
      expectAnswer(response, 404, 'unknown_url', `Invalid URL (${method} ${path})`);
    });
  }

  it('the query string is not repeated in the message', async () => {
    const response = await send(gw, 'GET', '/v1/nope?api-key=secret-value');
    expectAnswer(response, 404, 'unknown_url', 'Invalid URL (GET /v1/nope)');
    expect(response.text).not.toContain('secret-value');
  });

  it('a very long path is cut short in the message', async () => {
    const path = `/v1/${'x'.repeat(5_000)}`;
    const response = await send(gw, 'GET', path);
    expect(response.status).toBe(404);
    const message = (response.json as { error: { message: string } }).error.message;
    expect(message.length).toBeLessThan(300);
    expect(message.startsWith('Invalid URL (GET /v1/xxx')).toBe(true);
  });

  it('behind key auth: an unknown URL is still 404 unknown_url, not 401 or model_not_found', async () => {
    const response = await send(keyed, 'GET', '/v1/nope');
    expectAnswer(response, 404, 'unknown_url', 'Invalid URL (GET /v1/nope)');
  });

  it('the SDK sees NotFoundError with code unknown_url', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v2`, apiKey: 'sk-anything', maxRetries: 0 });
    const error = await client.models.list().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error).toMatchObject({ status: 404, code: 'unknown_url', type: 'invalid_request_error' });
  });
});

describe('a known path with another method -> 405 with allow', () => {
  const cases: Array<[string, string, string]> = [
    ['GET', '/v1/chat/completions', 'POST, OPTIONS'],
    ['PUT', '/v1/embeddings', 'POST, OPTIONS'],
    ['POST', '/v1/models', 'GET, HEAD, OPTIONS'],
    ['DELETE', '/v1/models/mock', 'GET, HEAD, OPTIONS'],
    ['POST', '/healthz', 'GET, HEAD, OPTIONS'],
    ['GET', '/v1/audio/transcriptions', 'POST, OPTIONS'],
    ['GET', '/v1/engines/mock/completions', 'POST, OPTIONS'],
    ['PUT', '/admin/teams/team_1', 'GET, HEAD, PATCH, DELETE, OPTIONS'],
    ['GET', '/admin/keys/key_1/rotate', 'POST, OPTIONS'],
    ['GET', '/v1/chat/completions/', 'POST, OPTIONS'],
  ];
  for (const [method, path, allow] of cases) {
    it(`${method} ${path} -> allow: ${allow}`, async () => {
      const response = await send(gw, method, path);
      expect(response.headers.allow?.split(', ').sort()).toEqual(allow.split(', ').sort());
      expectAnswer(
        response,
        405,
        'method_not_allowed',
        `Invalid method for URL (${method} ${path}): it accepts ${response.headers.allow}.`,
      );
    });
  }

  it('HEAD on a POST-only path -> 405 with allow and no body', async () => {
    const response = await send(gw, 'HEAD', '/v1/chat/completions');
    expect(response.status).toBe(405);
    expect(response.headers.allow).toBe('POST, OPTIONS');
    expect(response.text).toBe('');
  });

  it('the SDK sees a 405 APIError, not a "model not found"', async () => {
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-anything', maxRetries: 0 });
    const error = await client.get('/chat/completions').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ status: 405, code: 'method_not_allowed' });
  });
});
