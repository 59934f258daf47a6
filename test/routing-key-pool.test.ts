import { afterEach, describe, expect, it } from 'vitest';
import type { JsonCall } from '../src/backends/backend.js';
import { KeyPool, type KeyStatus, retryAfterMs } from '../src/backends/openai-compatible/key-pool.js';
import { OpenAICompatibleBackend } from '../src/backends/openai-compatible/openai-compatible-backend.js';
import { parseConfig } from '../src/config/load-config.js';
import { ServiceUnavailableError, UpstreamClientError, UpstreamError } from '../src/errors.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { seededRandom as seeded } from './support/seeded-random.js';

const KEYS = [
  { key: 'sk-first-secret', weight: 1 },
  { key: 'sk-second-secret', weight: 3 },
  { key: 'sk-third-secret', weight: 1 },
];

function picks(pool: KeyPool, count: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const key = pool.pick()?.key ?? 'none';
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

describe('key pool (openai-compatible backend)', () => {
  it('uses the keys in proportion to their weights, within 5 points over 500 picks', () => {
    const counts = picks(new KeyPool(KEYS, { random: seeded(9) }), 500);
    expect(Math.abs((counts.get('sk-first-secret') ?? 0) / 500 - 0.2)).toBeLessThan(0.05);
    expect(Math.abs((counts.get('sk-second-secret') ?? 0) / 500 - 0.6)).toBeLessThan(0.05);
    expect(Math.abs((counts.get('sk-third-secret') ?? 0) / 500 - 0.2)).toBeLessThan(0.05);
  });

  it('takes out a key the upstream refuses (401 or 403), reports it without the key, and carries on', () => {
    const changes: KeyStatus[] = [];
    const pool = new KeyPool(KEYS, { random: seeded(1), onChange: (status) => changes.push(status) });
    pool.report(1, 401);
    pool.report(2, 403);
    expect([...picks(pool, 50).keys()]).toEqual(['sk-first-secret']);
    expect(changes).toEqual([
      { id: 'key-2', weight: 3, state: 'disabled', refusedWith: 401 },
      { id: 'key-3', weight: 1, state: 'disabled', refusedWith: 403 },
    ]);
    expect(JSON.stringify([changes, pool.status()])).not.toContain('secret');
    // A later success or 429 does not bring a refused key back.
    pool.report(1, 200);
    pool.report(1, 429, 10);
    expect(pool.status()[1]).toEqual({ id: 'key-2', weight: 3, state: 'disabled', refusedWith: 401 });
    pool.report(0, 401);
    expect(pool.pick()).toBeUndefined();
  });

  it('cools a rate-limited key for the upstream’s retry-after, then uses it again', () => {
    let now = 1_000_000;
    const pool = new KeyPool(KEYS, { random: seeded(2), now: () => now, maxCooldownMs: 30_000 });
    pool.report(1, 429, 5_000);
    expect(pool.status()[1]).toEqual({ id: 'key-2', weight: 3, state: 'cooling', cooldownLeftMs: 5_000 });
    expect([...picks(pool, 100).keys()].sort()).toEqual(['sk-first-secret', 'sk-third-secret']);
    now += 5_000;
    expect(pool.status()[1]?.state).toBe('active');
    expect(picks(pool, 100).get('sk-second-secret')).toBeGreaterThan(30);
    // No retry-after: the default rest; a huge one: the bound.
    pool.report(0, 429);
    pool.report(2, 429, 3_600_000);
    expect(pool.status().map((status) => status.cooldownLeftMs)).toEqual([1_000, undefined, 30_000]);
    // Other statuses change nothing.
    pool.report(1, 500);
    pool.report(1, 400);
    expect(pool.status()[1]?.state).toBe('active');
  });

  it('refuses an empty pool', () => {
    expect(() => new KeyPool([])).toThrow(RangeError);
  });
});

describe('retry-after as the upstream says it', () => {
  it('reads retry-after-ms, then retry-after in seconds or as a date', () => {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0);
    expect(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, now)).toBe(1_500);
    expect(retryAfterMs({ 'retry-after': '2' }, now)).toBe(2_000);
    expect(retryAfterMs({ 'retry-after': new Date(now + 5_000).toUTCString() }, now)).toBe(5_000);
    expect(retryAfterMs({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(retryAfterMs({ 'retry-after': '-3' }, now)).toBeUndefined();
    expect(retryAfterMs({}, now)).toBeUndefined();
  });
});

describe('a backend with apiKeys, against a real upstream', () => {
  const upstreams: FakeUpstream[] = [];
  const backends: OpenAICompatibleBackend[] = [];
  afterEach(async () => {
    await Promise.all([
      ...backends.splice(0).map((b) => b.close()),
      ...upstreams.splice(0).map((u) => u.stop()),
    ]);
  });

  /** An upstream that refuses sk-bad, rate-limits sk-limited for 30 s, and answers sk-good. */
  async function start(
    keys: string[],
  ): Promise<{ upstream: FakeUpstream; backend: OpenAICompatibleBackend }> {
    const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, response) => {
      const key = request.headers.authorization;
      if (key === 'Bearer sk-bad-key-000')
        return sendJson(
          response,
          401,
          openaiError('Incorrect API key provided: sk-bad-key-000', 'invalid_request_error'),
        );
      if (key === 'Bearer sk-limited-key')
        return sendJson(response, 429, openaiError('Rate limit reached', 'requests'), {
          'retry-after': '30',
        });
      sendJson(response, 200, { id: 'chatcmpl-1', object: 'chat.completion', choices: [] });
    });
    upstreams.push(upstream);
    const url = await upstream.start();
    const config = parseConfig(
      {
        backends: { pool: { type: 'openai', baseUrl: `${url}/v1`, apiKeys: keys.map((key) => ({ key })) } },
        models: { m: { backend: 'pool' } },
      },
      {},
      'test',
    );
    const backend = new OpenAICompatibleBackend(
      'pool',
      config.backends.pool as Extract<(typeof config.backends)[string], { type: 'openai' }>,
    );
    backends.push(backend);
    return { upstream, backend };
  }

  const call = (): JsonCall => ({
    kind: 'json',
    endpoint: 'chat.completions',
    model: 'gpt-4o',
    body: { model: 'gpt-4o', messages: [] },
    stream: false,
    signal: new AbortController().signal,
    requestId: 'req_pool',
  });

  /** Sends one request; the upstream's refusals come back as errors. */
  const send = async (backend: OpenAICompatibleBackend): Promise<number | Error> => {
    try {
      const response = await backend.send(call());
      for await (const _ of response.body);
      return response.status;
    } catch (error) {
      return error as Error;
    }
  };

  it('takes out a 401 key, rests a 429 key, and carries on over the good one', async () => {
    const { upstream, backend } = await start(['sk-bad-key-000', 'sk-limited-key', 'sk-good-key-00']);
    // Until both bad keys have been tried once (each request picks at random by weight).
    const seen = () => new Set(upstream.requests.map((r) => r.headers.authorization));
    for (let i = 0; i < 500 && seen().size < 3; i++) {
      const outcome = await send(backend);
      if (outcome instanceof Error) expect(outcome).toBeInstanceOf(UpstreamClientError);
    }
    expect(seen().size).toBe(3);
    const status = backend.keyPool();
    expect(status?.[0]).toEqual({ id: 'key-1', weight: 1, state: 'disabled', refusedWith: 401 });
    expect(status?.[1]).toMatchObject({ id: 'key-2', state: 'cooling' });
    expect(status?.[1]?.cooldownLeftMs).toBeGreaterThan(20_000);
    expect(status?.[1]?.cooldownLeftMs).toBeLessThanOrEqual(30_000);
    expect(status?.[2]).toEqual({ id: 'key-3', weight: 1, state: 'active' });
    expect(JSON.stringify(status)).not.toContain('sk-');
    const before = upstream.requests.length;
    for (let i = 0; i < 20; i++) expect(await send(backend)).toBe(200);
    expect(upstream.requests.slice(before).map((r) => r.headers.authorization)).toEqual(
      Array(20).fill('Bearer sk-good-key-00'),
    );
  });

  it('answers 502 once every key is refused, and 503 with retry-after while every key rests', async () => {
    const refused = await start(['sk-bad-key-000']);
    const first = await send(refused.backend);
    expect(first).toBeInstanceOf(UpstreamClientError);
    // The upstream's error body never carries the key back out.
    expect((first as UpstreamClientError).upstreamBody.toString()).not.toContain('sk-bad-key-000');
    const second = await send(refused.backend);
    expect(second).toBeInstanceOf(UpstreamError);
    expect((second as UpstreamError).status).toBe(502);
    expect(refused.upstream.requests).toHaveLength(1);

    const limited = await start(['sk-limited-key']);
    expect(await send(limited.backend)).toBeInstanceOf(UpstreamClientError);
    const resting = await send(limited.backend);
    expect(resting).toBeInstanceOf(ServiceUnavailableError);
    expect(Number((resting as ServiceUnavailableError).headers['retry-after'])).toBeGreaterThan(20);
    expect((resting as ServiceUnavailableError).status).toBe(503);
    expect(limited.upstream.requests).toHaveLength(1);
  });
});
