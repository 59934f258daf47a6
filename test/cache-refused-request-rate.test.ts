import { afterEach, describe, expect, it } from 'vitest';
import { CACHEABLE_ASK } from './support/cache-fixtures.js';
import {
  type CacheTeamGateway,
  cacheTeamKey,
  requestRecords,
  startCacheTeamGateway,
} from './support/cache-team-gateway.js';

/**
 * ③ cache and ② request rates: a request its request rate refuses is refused before the cache is
 * consulted. It was neither a hit nor a miss: no `x-tollgate-cache` on its 429, and not counted
 * among the misses (usage records, `/admin/usage`, `tollgate_cache_requests_total`).
 */
let gw: CacheTeamGateway | undefined;

afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

async function post(key: string, path: string, body: Record<string, unknown>, headers = {}) {
  const response = await fetch(`${gw?.baseURL}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return { status: response.status, cache: response.headers.get('x-tollgate-cache') };
}

/** `tollgate_cache_requests_total` for `teamId`, by result. */
async function cacheMetrics(teamId: string): Promise<Record<string, number>> {
  const response = await fetch(`${gw?.url}/admin/metrics`, {
    headers: { authorization: 'Bearer test-admin-key-0123456789' },
  });
  const counts: Record<string, number> = {};
  for (const line of (await response.text()).split('\n')) {
    const match = /^tollgate_cache_requests_total\{(.*)\} (\d+)$/.exec(line);
    if (!match?.[1]?.includes(`team_id="${teamId}"`)) continue;
    const result = /result="([A-Z]+)"/.exec(match[1])?.[1];
    if (result) counts[result] = Number(match[2]);
  }
  return counts;
}

describe('③ cache: requests refused by their request rate', () => {
  it('carry no x-tollgate-cache and are not counted as misses', async () => {
    gw = await startCacheTeamGateway();
    const { key, teamId } = await cacheTeamKey(gw, { limits: { requests_per_minute: 1 } });
    const embedBatch = { model: 'text-embedding-3-small', input: ['one', 'two'] };
    expect(await post(key, '/chat/completions', CACHEABLE_ASK)).toEqual({ status: 200, cache: 'MISS' });
    // Refused before any lookup: a plain request, a refresh, and an embeddings batch (cached per input).
    const refused = [
      await post(key, '/chat/completions', CACHEABLE_ASK),
      await post(key, '/chat/completions', CACHEABLE_ASK, { 'x-tollgate-cache': 'refresh' }),
      await post(key, '/embeddings', embedBatch),
    ];
    expect(refused).toEqual([
      { status: 429, cache: null },
      { status: 429, cache: null },
      { status: 429, cache: null },
    ]);
    await gw.usage.recorded.reached(4);
    const records = await requestRecords(gw);
    expect(records.map((r) => [r.outcome, r.cache]).sort()).toEqual([
      ['rejected', null],
      ['rejected', null],
      ['rejected', null],
      ['served', 'miss'],
    ]);
    const usage = await gw.admin.ok<{ data: Array<Record<string, unknown>> }>(
      'GET',
      `/usage?group_by=team&team_id=${teamId}`,
    );
    expect(usage.data[0]).toMatchObject({ requests: 1, rejected: 3, cache_hits: 0, cache_misses: 1 });
    expect(await cacheMetrics(teamId)).toEqual({ MISS: 1 });
  });
});
