import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * ③ cache: a request body over `cache.maxRequestBytes` is neither looked up nor stored, so its key
 * (a canonical form and a hash, linear in the body) is never computed on the event loop.
 */
let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({
    auth: 'none',
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
    cache: { enabled: true, scope: 'global', maxRequestBytes: '2kb' },
  });
});

afterAll(async () => {
  await gw?.close();
});

async function ask(content: string): Promise<string | null> {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock', temperature: 0, messages: [{ role: 'user', content }] }),
  });
  expect(response.status).toBe(200);
  return response.headers.get('x-tollgate-cache');
}

describe('③ cache and large request bodies', () => {
  it('a body within cache.maxRequestBytes is cached: MISS, then HIT', async () => {
    const small = `small ${'x'.repeat(1_000)}`;
    expect(await ask(small)).toBe('MISS');
    // Stored after the answer went out: wait for the entry rather than for time.
    let second = await ask(small);
    while (second !== 'HIT') {
      expect(second).toBe('MISS');
      second = await ask(small);
    }
  });

  it('a body over it is never looked up nor stored: BYPASS every time', async () => {
    const large = `large ${'y'.repeat(4_000)}`;
    expect(await ask(large)).toBe('BYPASS');
    expect(await ask(large)).toBe('BYPASS');
  });
});
