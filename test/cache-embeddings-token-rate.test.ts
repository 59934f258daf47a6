import { afterEach, describe, expect, it } from 'vitest';
import { type CacheTeamGateway, cacheTeamKey, startCacheTeamGateway } from './support/cache-team-gateway.js';

/**
 * ③ cache and ② tokens per minute: an embeddings batch the cache answers per input is reserved
 * like any request, and tells the client where its tokens per minute stand
 * (`x-ratelimit-*-tokens`) as a request the cache has no say in does.
 */
let gw: CacheTeamGateway | undefined;

afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

const TOKENS_PER_MINUTE = 100_000;

async function embed(key: string, input: unknown) {
  const response = await fetch(`${gw?.baseURL}/embeddings`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'text-embedding-3-small', input }),
  });
  const body = (await response.json()) as { data?: unknown[] };
  const header = (name: string) => response.headers.get(`x-ratelimit-${name}-tokens`);
  return {
    status: response.status,
    items: response.headers.get('x-tollgate-cache-items'),
    data: body.data?.length,
    limit: header('limit'),
    remaining: header('remaining'),
    reset: header('reset'),
  };
}

describe('③ cache: embeddings batches and tokens per minute', () => {
  it('a batch with inputs to fetch says where the tokens per minute stand', async () => {
    gw = await startCacheTeamGateway();
    const { key } = await cacheTeamKey(gw, { limits: { tokens_per_minute: TOKENS_PER_MINUTE } });
    const single = await embed(key, 'alone');
    expect(single.limit).toBe(String(TOKENS_PER_MINUTE));
    const batch = await embed(key, ['one', 'two', 'alone']);
    expect(batch).toMatchObject({ status: 200, items: '1/3', data: 3, limit: String(TOKENS_PER_MINUTE) });
    expect(Number(batch.remaining)).toBeLessThan(TOKENS_PER_MINUTE);
    expect(batch.reset).toMatch(/^\d/);
  });

  it('with cache.hitsSpendBudget, a hit (reserved like an answer) says so too', async () => {
    gw = await startCacheTeamGateway({ cache: { enabled: true, hitsSpendBudget: true } });
    const { key } = await cacheTeamKey(gw, { limits: { tokens_per_minute: TOKENS_PER_MINUTE } });
    await embed(key, ['one', 'two']);
    const hit = await embed(key, ['one', 'two']);
    expect(hit).toMatchObject({ status: 200, items: '2/2', limit: String(TOKENS_PER_MINUTE) });
  });
});
