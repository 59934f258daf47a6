import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis-store.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { startRedisServer, type TestRedis } from './support/redis.js';

/**
 * What one request costs Redis on the path teams deploy: a key with request and token limits,
 * its team with limits and two budgets, all on Redis. Counted, not timed: Redis's own
 * INFO commandstats over a run of requests (scripts' inner commands included), and the commands
 * the gateway's connection sent before the upstream saw the request (MONITOR).
 */

const REQUESTS = 40;
/** At most this many Redis commands per request, scripts' inner commands included (issue 13). */
const MAX_COMMANDS_PER_REQUEST = 12;
let redis: TestRedis;
let key: string;
/** Scripts Redis had run when the upstream saw each request. */
const scriptsAtUpstream: number[] = [];
let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;
let probe: Redis;

function commandstats(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match) counts.set(match[1] as string, Number(match[2]));
  }
  return counts;
}

async function scriptCalls(): Promise<number> {
  const stats = commandstats(await probe.info('commandstats'));
  return (stats.get('evalsha') ?? 0) + (stats.get('eval') ?? 0);
}

/** Reserved tokens of the key's team's day budget: 0 once every request has settled. */
async function reservedNow(): Promise<number> {
  const response = await fetch(`${gw.baseURL}/tollgate/key`, { headers: { authorization: `Bearer ${key}` } });
  const body = (await response.json()) as {
    team: { standing: { budgets: Array<{ reserved_tokens: number }> } };
  };
  return body.team.standing.budgets.reduce((sum, budget) => sum + budget.reserved_tokens, 0);
}

/** Usage records in the request log: each request's is written a moment after its answer. */
async function recordsWritten(): Promise<number> {
  return probe.xlen('tg:{usage-log}:requests');
}

beforeAll(async () => {
  redis = await startRedisServer();
  probe = new Redis(redis.url);
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (_request, res) => {
    scriptsAtUpstream.push(await scriptCalls());
    sendJson(res, 200, {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'ok', refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 },
    });
  });
  const base = await upstream.start();
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    redis: { url: redis.url },
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
    models: { m: { backend: 'up' } },
  });
  const admin = new AdminHttp(gw.url);
  key = await admin.teamKey(
    {
      limits: { requests_per_minute: 100_000, tokens_per_minute: 10_000_000, max_concurrent: 100 },
      budgets: [
        { period: 'day', max_tokens: 10_000_000 },
        { period: 'month', max_usd: 1_000 },
      ],
    },
    { limits: { requests_per_minute: 100_000, tokens_per_minute: 10_000_000 } },
  );
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
  // Warm: the key is looked up and cached, scripts are loaded.
  await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
});

afterAll(async () => {
  probe?.disconnect();
  await gw?.close();
  await upstream?.stop();
  await redis?.stop();
});

describe('Redis commands per request (key + team limits + two budgets)', () => {
  it('one script before the upstream: request rates and the reservation in one round trip', async () => {
    for (let i = 0; i < 5; i++) {
      // The previous request's settle and its usage record (written by a timer after its answer)
      // have run: only this request's scripts can count.
      expect(await pollUntil(reservedNow, (reserved) => reserved === 0)).toBe(0);
      const answered = i + 1; // the warm-up's and this loop's
      expect(await pollUntil(recordsWritten, (written) => written >= answered)).toBe(answered);
      const before = await scriptCalls();
      scriptsAtUpstream.length = 0;
      await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
      expect(scriptsAtUpstream.map((at) => at - before)).toEqual([1]);
    }
  });

  it(`at most ${MAX_COMMANDS_PER_REQUEST} commands in all (INFO commandstats, scripts included)`, async () => {
    await pollUntil(reservedNow, (reserved) => reserved === 0);
    const before = commandstats(await probe.info('commandstats'));
    for (let i = 0; i < REQUESTS; i++)
      await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    // Settles and usage writes happen after the answers: closing waits for all of them.
    await gw.close();
    const after = commandstats(await probe.info('commandstats'));
    let total = 0;
    const perCommand: Record<string, number> = {};
    for (const [name, calls] of after) {
      const delta = calls - (before.get(name) ?? 0);
      // INFO is this test's own reading; QUIT is the gateway closing.
      if (delta <= 0 || name === 'info' || name === 'quit') continue;
      perCommand[name] = delta / REQUESTS;
      total += delta;
    }
    expect(total / REQUESTS, JSON.stringify(perCommand)).toBeLessThanOrEqual(MAX_COMMANDS_PER_REQUEST);
    // Not vacuous: every request was admitted and settled in Redis.
    expect(perCommand.evalsha ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('settles asked for in one turn reach Redis as one script call per team', async () => {
    const store = new RedisStore({ target: { url: redis.url } });
    try {
      const nowMs = Date.now();
      const scopes = [
        {
          id: 'key:batch',
          maxConcurrent: 100,
          budgets: [{ period: 'day' as const, periodKey: 'd1', maxTokens: 1e9 }],
        },
      ];
      const reserve = (teamId: string, i: number) =>
        store.quota.reserve({
          reservationId: `${teamId}-${i}`,
          teamId,
          scopes,
          tokens: 50,
          usdMicros: 0,
          nowMs,
          ttlMs: 60_000,
        });
      for (let i = 0; i < 10; i++) await reserve('team_batch_a', i);
      for (let i = 0; i < 5; i++) await reserve('team_batch_b', i);
      // One settle first, so that this Redis has the script cached whatever ran before (a first
      // call would count twice: EVALSHA refused, then EVAL).
      await reserve('team_batch_c', 0);
      await store.quota.release('team_batch_c', 'team_batch_c-0', nowMs);
      const before = await scriptCalls();
      const outcomes = await Promise.all([
        ...Array.from({ length: 10 }, (_, i) =>
          store.quota.settle('team_batch_a', `team_batch_a-${i}`, { tokens: 20, usdMicros: 0 }, nowMs + 1),
        ),
        ...Array.from({ length: 5 }, (_, i) =>
          store.quota.release('team_batch_b', `team_batch_b-${i}`, nowMs + 1),
        ),
      ]);
      expect(outcomes).toEqual([...Array<string>(10).fill('settled'), ...Array<string>(5).fill('released')]);
      expect((await scriptCalls()) - before).toBe(2);
      const [standing] = await store.quota.status('team_batch_a', scopes, nowMs + 1);
      expect(standing?.budgets[0]).toMatchObject({ spentTokens: 200, reservedTokens: 0 });
    } finally {
      await store.close();
    }
  });
});
