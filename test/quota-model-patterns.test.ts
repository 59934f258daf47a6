import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory-store.js';
import { RedisStore } from '../src/store/redis-store.js';
import type { Store } from '../src/store/store.js';
import { estimateChatPromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { Gate } from './support/gate.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { gatewayStores } from './support/gateway-stores.js';
import { type QuotaWatch, watchQuota } from './support/quota-watch.js';

/**
 * A team's `model_limits` entry keyed by a pattern (`*`, `prefix/*`) caps every model it covers
 * together, as one shared limit; a request counts against every entry covering its model (its
 * exact name's and each pattern's), each its own scope. Through a real gateway, on the embedded
 * store and on Redis, with a real upstream reporting fixed usage.
 */
const stores = gatewayStores();

/** What the upstream reports for every answer. */
const USAGE = { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 };
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];
const MAX_TOKENS = 10;
/** What ② quota reserves for each request: the prompt as the gateway counts it, plus max_tokens. */
const ESTIMATE = estimateChatPromptTokens(MESSAGES) + MAX_TOKENS;
/** Half way through a minute, and staying there: no minute window rolls over under a test. */
const NOW = Date.parse('2026-12-04T12:00:30Z');
const DAY = '2026-12-04';

type ApiError = InstanceType<typeof OpenAI.APIError>;

interface BudgetStanding {
  max_tokens: number;
  spent_tokens: number;
  reserved_tokens: number;
  remaining_tokens: number;
}
interface EntryStanding {
  budgets: BudgetStanding[];
  tokens_per_minute?: { limit: number; used: number; remaining: number };
  concurrency?: { limit: number; inUse: number; remaining: number };
}
interface TeamWithStanding {
  standing: { budgets: BudgetStanding[]; model_limits?: Record<string, EntryStanding> };
}

describe.each(stores)('model_limits keyed by a pattern ($name)', (subject) => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let admin: AdminHttp;
  let watch: QuotaWatch;
  /** While set, requests wait at it upstream; `arrived` resolves when one is there. */
  let hold: { gate: Gate; arrived: () => void } | undefined;

  beforeAll(async () => {
    if (!subject.available()) return;
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
      const held = hold;
      if (held) {
        held.arrived();
        await held.gate.opened;
      }
      sendJson(res, 200, {
        id: 'chatcmpl-p',
        object: 'chat.completion',
        created: 1,
        model: String(request.json?.model),
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'ok', refusal: null },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage: USAGE,
      });
    });
    const base = await upstream.start();
    const redisUrl = subject.url();
    const store: Store = redisUrl ? new RedisStore({ target: { url: redisUrl } }) : await MemoryStore.open();
    watch = watchQuota(store.quota);
    gw = await startGateway(
      {
        auth: {},
        admin: { key: TEST_ADMIN_KEY },
        ...(redisUrl ? { redis: { url: redisUrl } } : {}),
        backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
        models: { 'up/*': { backend: 'up' }, solo: { backend: 'up' } },
      },
      {},
      { store, clock: () => NOW },
    );
    admin = new AdminHttp(gw.url);
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  /** A client for a new key of a new team with `team`'s fields. */
  async function teamClient(team: Record<string, unknown>): Promise<{ client: OpenAI; teamId: string }> {
    const created = await admin.createTeam({ name: `p-${crypto.randomUUID().slice(0, 8)}`, ...team });
    const key = await admin.createKey({ team_id: created.id });
    return {
      client: new OpenAI({ baseURL: gw.baseURL, apiKey: key.key, maxRetries: 0 }),
      teamId: created.id,
    };
  }

  /** One chat request for `model`, answered and charged (its reservation settled) when it resolves. */
  async function chat(client: OpenAI, model: string) {
    const answer = await client.chat.completions
      .create({ model, max_tokens: MAX_TOKENS, messages: MESSAGES })
      .withResponse();
    await watch.allEnded();
    return answer;
  }

  async function refused(client: OpenAI, model: string): Promise<ApiError> {
    const error = await client.chat.completions
      .create({ model, max_tokens: MAX_TOKENS, messages: MESSAGES })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    await watch.allEnded();
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    return error as ApiError;
  }

  /** OpenAI's 429 envelope, exactly: these fields and no others. */
  function expect429(error: ApiError, type: string, code: string, message: string): void {
    expect(error.status).toBe(429);
    expect(error.error).toEqual({ message, type, param: null, code });
  }

  async function standing(teamId: string): Promise<TeamWithStanding['standing']> {
    return (await admin.ok<TeamWithStanding>('GET', `/teams/${teamId}`)).standing;
  }

  it("a '*' budget caps all models together: granted while the estimate fits, refused one token short", async (context) => {
    if (!subject.available()) context.skip('no Redis here');
    // Two requests (30 tokens each, on two models) leave exactly one estimate: the third fits.
    const fits = 2 * USAGE.total_tokens + ESTIMATE;
    const wide = await teamClient({
      model_limits: { '*': { budgets: [{ period: 'day', max_tokens: fits }] } },
    });
    // One token less: the third is refused, whichever model it asks for.
    const short = await teamClient({
      model_limits: { '*': { budgets: [{ period: 'day', max_tokens: fits - 1 }] } },
    });
    for (const { client } of [wide, short]) {
      await chat(client, 'up/a');
      await chat(client, 'solo');
    }
    await chat(wide.client, 'up/b');
    const error = await refused(short.client, 'up/b');
    expect429(
      error,
      'insufficient_quota',
      'insufficient_quota',
      `Your team's (models matching '*') token budget (${fits - 1}) for this day (${DAY}) has ${ESTIMATE - 1} tokens left; this request needs an estimated ${ESTIMATE} tokens.`,
    );
    expect(error.headers?.get('x-should-retry')).toBe('false');
    // The wide team is now over (the answer used more than its estimate): refused too.
    expect((await refused(wide.client, 'solo')).code).toBe('insufficient_quota');

    // Standing shows the entry's shared spend; each team's is its own.
    expect((await standing(short.teamId)).model_limits).toEqual({
      '*': {
        budgets: [
          {
            period: 'day',
            period_key: DAY,
            max_tokens: fits - 1,
            spent_tokens: 2 * USAGE.total_tokens,
            spent_usd: 0,
            reserved_tokens: 0,
            reserved_usd: 0,
            remaining_tokens: ESTIMATE - 1,
          },
        ],
      },
    });
    expect((await standing(wide.teamId)).model_limits?.['*']?.budgets[0]).toMatchObject({
      spent_tokens: 3 * USAGE.total_tokens,
      reserved_tokens: 0,
      remaining_tokens: 0,
    });
  });

  it("an 'up/*' request rate is shared by every model under up/, and binds no other", async (context) => {
    if (!subject.available()) context.skip('no Redis here');
    const { client, teamId } = await teamClient({
      models: ['up/*', 'solo'],
      model_limits: {
        'up/*': { limits: { requests_per_minute: 2 } },
        solo: { limits: { requests_per_minute: 1 } },
      },
    });
    const first = await chat(client, 'up/a');
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    await chat(client, 'up/b');
    const error = await refused(client, 'up/c');
    expect429(
      error,
      'rate_limit_error',
      'rate_limit_exceeded',
      "Your team's (models matching 'up/*') limit of 2 requests per minute is reached; retry in 1m0s.",
    );
    expect(error.headers?.get('retry-after')).toBe('60');
    // The exact entry keeps its own count, untouched by up/*'s.
    await chat(client, 'solo');
    expect429(
      await refused(client, 'solo'),
      'rate_limit_error',
      'rate_limit_exceeded',
      "Your team's (model 'solo') limit of 1 requests per minute is reached; retry in 1m0s.",
    );
    // Request rates have no standing of their own; the entries are listed.
    expect(Object.keys((await standing(teamId)).model_limits ?? {}).sort()).toEqual(['solo', 'up/*']);
  });

  it('a request counts against every entry covering its model, each its own scope', async (context) => {
    if (!subject.available()) context.skip('no Redis here');
    const day = (max: number) => [{ period: 'day', max_tokens: max }];
    const { client, teamId } = await teamClient({
      model_limits: {
        '*': { limits: { requests_per_minute: 3 }, budgets: day(1_000) },
        'up/*': { limits: { requests_per_minute: 2 }, budgets: day(1_000) },
        'up/a': { limits: { requests_per_minute: 1 }, budgets: day(1_000) },
      },
    });
    await chat(client, 'up/a'); // counts in up/a, up/* and *
    expect((await refused(client, 'up/a')).message).toContain(
      "Your team's (model 'up/a') limit of 1 requests",
    );
    await chat(client, 'up/b'); // up/* and *
    expect((await refused(client, 'up/c')).message).toContain(
      "Your team's (models matching 'up/*') limit of 2 requests",
    );
    await chat(client, 'solo'); // * only
    expect((await refused(client, 'solo')).message).toContain(
      "Your team's (models matching '*') limit of 3 requests",
    );
    const spent = Object.fromEntries(
      Object.entries((await standing(teamId)).model_limits ?? {}).map(([entry, own]) => [
        entry,
        own.budgets[0]?.spent_tokens,
      ]),
    );
    expect(spent).toEqual({ 'up/a': 30, 'up/*': 60, '*': 90 });
  });

  it("an 'up/*' tokens-per-minute limit is one window for all its models", async (context) => {
    if (!subject.available()) context.skip('no Redis here');
    const tpm = USAGE.total_tokens + ESTIMATE - 1;
    const { client, teamId } = await teamClient({
      model_limits: { 'up/*': { limits: { tokens_per_minute: tpm } } },
    });
    const first = await chat(client, 'up/a');
    expect(first.response.headers.get('x-ratelimit-limit-tokens')).toBe(String(tpm));
    const error = await refused(client, 'up/b');
    expect429(
      error,
      'rate_limit_error',
      'rate_limit_exceeded',
      `Your team's (models matching 'up/*') limit of ${tpm} tokens per minute is reached: this request needs an estimated ${ESTIMATE} tokens and ${ESTIMATE - 1} are left this minute.`,
    );
    expect(error.headers?.get('x-ratelimit-remaining-tokens')).toBe(String(ESTIMATE - 1));
    await chat(client, 'solo'); // not under up/
    expect((await standing(teamId)).model_limits?.['up/*']?.tokens_per_minute).toMatchObject({
      limit: tpm,
      used: USAGE.total_tokens,
    });
  });

  it("an 'up/*' concurrency limit holds one slot for all its models", async (context) => {
    if (!subject.available()) context.skip('no Redis here');
    const { client, teamId } = await teamClient({
      model_limits: { 'up/*': { limits: { max_concurrent: 1 } } },
    });
    const gate = new Gate();
    const arrived = new Promise<void>((resolve) => {
      hold = { gate, arrived: resolve };
    });
    const pending = client.chat.completions.create({
      model: 'up/a',
      max_tokens: MAX_TOKENS,
      messages: MESSAGES,
    });
    await arrived;
    hold = undefined;
    try {
      expect((await standing(teamId)).model_limits?.['up/*']?.concurrency).toEqual({
        limit: 1,
        inUse: 1,
        remaining: 0,
      });
      const error = await client.chat.completions
        .create({ model: 'up/b', max_tokens: MAX_TOKENS, messages: MESSAGES })
        .catch((e: unknown) => e as ApiError);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect429(
        error as ApiError,
        'rate_limit_error',
        'rate_limit_exceeded',
        "Your team's (models matching 'up/*') limit of 1 concurrent requests is reached.",
      );
      // Not under up/ (its charge is waited for with the held one's, below).
      await client.chat.completions.create({ model: 'solo', max_tokens: MAX_TOKENS, messages: MESSAGES });
    } finally {
      gate.open();
    }
    await pending;
    await watch.allEnded();
    await chat(client, 'up/b'); // the slot is free again
  });
});

describe('model_limits keys are validated as the models list is', () => {
  let gw: TestGateway;
  let admin: AdminHttp;
  beforeAll(async () => {
    gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    admin = new AdminHttp(gw.url);
  });
  afterAll(() => gw.close());

  const limit = { limits: { max_concurrent: 2 } };

  it("a '*' that is neither '*' nor a final '/*' is refused, as in models", async () => {
    const response = await admin.call('POST', '/teams', { name: 'g', model_limits: { 'gpt-4*': limit } });
    expect(response.status).toBe(400);
    expect(response.body).toEqual({
      error: {
        message:
          "Invalid key 'gpt-4*' in 'model_limits': expected a model name, '*' or 'prefix/*' ('*' works only there).",
        type: 'invalid_request_error',
        param: 'model_limits',
        code: null,
      },
    });
  });

  it('a pattern is kept when it covers some model the team may use, refused when it covers none', async () => {
    await admin.ok('POST', '/teams', {
      name: 'a',
      models: ['up/*'],
      model_limits: { '*': limit, 'up/*': limit },
    });
    await admin.ok('POST', '/teams', { name: 'b', models: ['up/a'], model_limits: { 'up/*': limit } });
    await admin.ok('POST', '/teams', { name: 'c', models: ['up/*'], model_limits: { 'up/x/*': limit } });
    const outside = await admin.call('POST', '/teams', {
      name: 'd',
      models: ['up/*'],
      model_limits: { 'down/*': limit },
    });
    expect(outside.status).toBe(400);
    expect(outside.body).toMatchObject({ error: { code: 'model_not_allowed', param: 'model_limits' } });
  });
});
