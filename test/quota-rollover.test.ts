import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory-store.js';
import { RedisStore } from '../src/store/redis-store.js';
import type { Store } from '../src/store/store.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests } from './support/redis.js';

/**
 * Periods roll over, end to end: the app is given a clock the test moves (no test sleeps for a
 * minute or a day). Budgets are calendar-aligned in the configured time zone, here New York, so
 * a New York day ends five hours after a UTC one.
 */
const ADMIN = 'test-admin-key-0123456789';
const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };
const ask = { model: 'm', max_tokens: 5, messages: [{ role: 'user' as const, content: 'hi' }] };

let upstream: FakeUpstream | undefined;
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await upstream?.stop();
  gw = undefined;
  upstream = undefined;
});

async function setup(store: Store, clock: () => number, team: Record<string, unknown>, redisUrl?: string) {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) =>
    sendJson(res, 200, {
      id: 'c',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      usage: USAGE,
    }),
  );
  const base = await upstream.start();
  gw = await startGateway(
    {
      auth: {},
      admin: { key: ADMIN },
      quota: { timeZone: 'America/New_York' },
      ...(redisUrl ? { redis: { url: redisUrl } } : {}),
      backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
      models: { m: { backend: 'up' } },
    },
    {},
    { store, clock },
  );
  const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  const post = async (path: string, body: unknown) =>
    (await (
      await fetch(`${gw?.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
    ).json()) as { id: string; key: string };
  const t = await post('/admin/teams', { name: 'rollover', ...team });
  const k = await post('/admin/keys', { team_id: t.id });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: k.key, maxRetries: 0 });
  const standing = async () =>
    (
      (await (
        await fetch(`${gw?.url}/admin/teams/${t.id}`, { headers: { authorization: `Bearer ${ADMIN}` } })
      ).json()) as { standing: { budgets: Array<{ period_key: string; spent_tokens: number }> } }
    ).standing;
  // Settles run just after each answer is sent: wait until the spend shows.
  const spentNow = async (expected: number) => {
    for (let i = 0; i < 1_500; i++) {
      const s = await standing();
      if (s.budgets.every((b) => b.spent_tokens === expected)) return s;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return standing();
  };
  const attempt = async () =>
    client.chat.completions.create(ask).then(
      () => 200,
      (error: unknown) =>
        error instanceof OpenAI.APIError ? `${error.status} ${error.code}` : String(error),
    );
  return { attempt, standing, spentNow };
}

/** Runs the same scenarios on the embedded store and on Redis. */
const stores: Array<[string, () => Promise<{ store: Store; url?: string } | undefined>]> = [
  ['MemoryStore', async () => ({ store: await MemoryStore.open() })],
  [
    'RedisStore',
    async () => {
      const redis = await redisForTests();
      return redis ? { store: new RedisStore({ target: { url: redis.url } }), url: redis.url } : undefined;
    },
  ],
];

describe.each(stores)('periods roll over with an injected clock (%s)', (_name, open) => {
  it('a day budget starts fresh at midnight in the configured time zone, not UTC', async (context) => {
    const opened = await open();
    if (!opened) return context.skip('no Redis here (see the notice above)');
    // 30 November, 22:00 in New York (1 December, 03:00 UTC).
    let now = Date.parse('2026-11-30T22:00:00-05:00');
    const { attempt, spentNow } = await setup(
      opened.store,
      () => now,
      { budgets: [{ period: 'day', max_tokens: 50 }] },
      opened.url,
    );
    expect(await attempt()).toBe(200);
    expect((await spentNow(40)).budgets[0]).toMatchObject({ period_key: '2026-11-30', spent_tokens: 40 });
    expect(await attempt()).toBe('429 insufficient_quota');
    now = Date.parse('2026-11-30T23:59:59-05:00'); // long past midnight UTC, still the 30th here
    expect(await attempt()).toBe('429 insufficient_quota');
    now = Date.parse('2026-12-01T00:00:01-05:00');
    expect(await attempt()).toBe(200);
    expect((await spentNow(40)).budgets[0]).toMatchObject({ period_key: '2026-12-01', spent_tokens: 40 });
  });

  it('a month budget starts fresh on the 1st; a lifetime budget never does', async (context) => {
    const opened = await open();
    if (!opened) return context.skip('no Redis here (see the notice above)');
    let now = Date.parse('2026-11-30T12:00:00-05:00');
    const { attempt, standing, spentNow } = await setup(
      opened.store,
      () => now,
      {
        budgets: [
          { period: 'month', max_tokens: 50 },
          { period: 'lifetime', max_tokens: 120 },
        ],
      },
      opened.url,
    );
    expect(await attempt()).toBe(200);
    // Until the first settles, only its estimate (smaller than the 40 it used) is held: a second
    // request sent before that would still fit.
    await spentNow(40);
    expect(await attempt()).toBe('429 insufficient_quota');
    now = Date.parse('2026-12-01T00:00:01-05:00');
    expect(await attempt()).toBe(200);
    now = Date.parse('2027-01-01T00:00:01-05:00');
    expect(await attempt()).toBe(200);
    now = Date.parse('2027-02-01T00:00:01-05:00');
    // Three months' worth of 40 = 120: the lifetime budget is spent even though February is new.
    let lifetime = (await standing()).budgets.find((b) => b.period_key === 'all');
    for (let i = 0; i < 1_500 && lifetime?.spent_tokens !== 120; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      lifetime = (await standing()).budgets.find((b) => b.period_key === 'all');
    }
    expect(lifetime?.spent_tokens).toBe(120);
    expect(await attempt()).toBe('429 insufficient_quota');
  });

  it('tokens per minute refill at the next minute window', async (context) => {
    const opened = await open();
    if (!opened) return context.skip('no Redis here (see the notice above)');
    let now = Date.parse('2026-11-22T10:00:10Z');
    const { attempt } = await setup(
      opened.store,
      () => now,
      { limits: { tokens_per_minute: 50 } },
      opened.url,
    );
    expect(await attempt()).toBe(200);
    // The first settled at 40; the next estimate (prompt + 5) no longer fits in this minute.
    let second = await attempt();
    for (let i = 0; i < 50 && second === 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      second = await attempt();
    }
    expect(second).toBe('429 rate_limit_exceeded');
    now = Date.parse('2026-11-22T10:00:59.999Z');
    expect(await attempt()).toBe('429 rate_limit_exceeded');
    now = Date.parse('2026-11-22T10:01:00Z');
    expect(await attempt()).toBe(200);
  });
});
