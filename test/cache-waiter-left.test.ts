import { afterEach, describe, expect, it } from 'vitest';
import { CACHEABLE_ASK, chatWithCache } from './support/cache-fixtures.js';
import {
  type CacheTeamGateway,
  cacheTeamKey,
  requestRecords,
  spentTokens,
  startCacheTeamGateway,
} from './support/cache-team-gateway.js';
import { Gate } from './support/gate.js';
import { FIXTURE_USAGE } from './support/openai-fixtures.js';
import { responseClosed } from './support/response-closed.js';

/**
 * ③ cache, coalescing: a request that waits on an identical one in flight on its instance, and
 * whose client leaves while it waits, never went upstream. It costs nothing, takes no reservation
 * (so no limit can refuse it), and is recorded as any client that left before an answer.
 */
let gw: CacheTeamGateway | undefined;

afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

/**
 * The first request is upstream with its answer held back; a second, identical one joins it and
 * its client leaves. Resolves once the joiner's usage record is written (the first's cannot be:
 * its answer is still held back), with the first request still in flight.
 */
async function joinerLeaves(
  gateway: CacheTeamGateway,
  client: Awaited<ReturnType<typeof cacheTeamKey>>['client'],
) {
  const hold = new Gate();
  gateway.control.hold = hold;
  const first = gateway.track(chatWithCache(client));
  await gateway.control.received.reached(1);
  const left = responseClosed(gateway.app.server, 'cache-joiner');
  const controller = new AbortController();
  const joiner = gateway.track(
    client.chat.completions
      .create(CACHEABLE_ASK, { signal: controller.signal, headers: { 'x-request-id': 'cache-joiner' } })
      .catch((error: unknown) => error),
  );
  // It looked the answer up, found none and joined the first's flight (no I/O in between).
  await gateway.cache.misses.reached(2);
  controller.abort();
  await joiner;
  await left; // the gateway has seen the joiner's client go
  await gateway.usage.recorded.reached(1);
  const [record] = await requestRecords(gateway);
  return { first, hold, record };
}

describe('③ cache: a coalesced request whose client left while it waited', () => {
  it('costs nothing and is recorded as a client that left before an answer', async () => {
    gw = await startCacheTeamGateway();
    const { client, teamId } = await cacheTeamKey(gw, { budgets: [{ period: 'day', max_tokens: 100_000 }] });
    const { first, hold, record } = await joinerLeaves(gw, client);
    expect(record).toMatchObject({
      request_id: 'cache-joiner',
      outcome: 'failed',
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
      cost_usd: 0,
      estimated: false,
    });
    hold.open();
    expect((await first).cache).toBe('MISS');
    // Every reservation is charged or refunded: only the first request's answer was charged.
    await gw.quota.allEnded();
    expect(await spentTokens(gw, teamId)).toBe(FIXTURE_USAGE.total_tokens);
    expect(gw.upstream.requests.filter((r) => r.url === '/v1/chat/completions')).toHaveLength(1);
  });

  it('is not refused by a concurrency limit the first request holds', async () => {
    gw = await startCacheTeamGateway();
    const { client } = await cacheTeamKey(gw, { limits: { max_concurrent: 1 } });
    const { first, hold, record } = await joinerLeaves(gw, client);
    // Not a 429 `rejected`: it asked for no slot, it only waited.
    expect(record).toMatchObject({ request_id: 'cache-joiner', outcome: 'failed', total_tokens: 0 });
    expect(record?.status).not.toBe(429);
    hold.open();
    expect((await first).cache).toBe('MISS');
    // The first's answer was stored whole for later requests, the joiner's leaving changed nothing.
    expect((await chatWithCache(client)).cache).toBe('HIT');
  });
});
