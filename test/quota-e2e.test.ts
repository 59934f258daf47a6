import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory-store.js';
import { RedisStore } from '../src/store/redis-store.js';
import { estimateChatPromptTokens } from '../src/usage/token-estimate.js';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests } from './support/redis.js';

/**
 * ② quota end to end: the official SDK against a gateway whose team and key carry limits, an
 * upstream that reports fixed usage, and the store read directly to check what was charged.
 */
const ADMIN = 'test-admin-key-0123456789';
const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };
let upstream: FakeUpstream | undefined;
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await upstream?.stop();
  gw = undefined;
  upstream = undefined;
});

function completion(model: string) {
  return {
    id: 'chatcmpl-q',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'ok', refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: USAGE,
  };
}

async function setup(
  team: Record<string, unknown>,
  key: Record<string, unknown>,
  options: { delayMs?: number; fail?: boolean; redisUrl?: string; clock?: () => number } = {},
) {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
    if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
    if (options.fail)
      return sendJson(res, 500, {
        error: { message: 'boom', type: 'server_error', param: null, code: null },
      });
    const body = request.json ?? {};
    if (body.stream) {
      const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm' };
      return sendSse(res, [
        {
          ...base,
          choices: [
            { index: 0, delta: { role: 'assistant', content: 'ok' }, logprobs: null, finish_reason: null },
          ],
        },
        { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] },
        { ...base, choices: [], usage: USAGE },
      ]);
    }
    sendJson(res, 200, completion(String(body.model)));
  });
  const base = await upstream.start();
  const store = options.redisUrl
    ? new RedisStore({ target: { url: options.redisUrl } })
    : await MemoryStore.open();
  gw = await startGateway(
    {
      auth: {},
      admin: { key: ADMIN },
      ...(options.redisUrl ? { redis: { url: options.redisUrl } } : {}),
      backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
      models: { 'gpt-4o-mini': { backend: 'up' }, other: { backend: 'up' } },
    },
    {},
    { store, ...(options.clock ? { clock: options.clock } : {}) },
  );
  const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  const t = (await (
    await fetch(`${gw.url}/admin/teams`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'q', ...team }),
    })
  ).json()) as { id: string };
  const k = (await (
    await fetch(`${gw.url}/admin/keys`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ team_id: t.id, ...key }),
    })
  ).json()) as { id: string; key: string };
  const current = async () => {
    const day = new Intl.DateTimeFormat('en-CA', {
      timeZone: 'UTC',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    }).format(Date.now());
    const [teamStatus] = await store.quota.status(
      t.id,
      [{ id: `team:${t.id}`, budgets: [{ period: 'day', periodKey: day, maxTokens: 1_000_000 }] }],
      Date.now(),
    );
    return teamStatus;
  };
  // Reservations are settled just after each response goes out: wait until none is outstanding.
  const status = async () => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const now = await current();
      if ((now?.budgets[0]?.reservedTokens ?? 0) === 0) return now;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return current();
  };
  return { gw, key: k.key, status };
}

const ask = { model: 'gpt-4o-mini', max_tokens: 10, messages: [{ role: 'user' as const, content: 'hi' }] };
/** The gateway's own count of ask's prompt. */
const PROMPT = estimateChatPromptTokens(ask.messages);

interface LoggedRequest {
  stream: boolean;
  estimated: boolean;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  ttft_ms: number | null;
}

/** The request log once it holds `count` entries (recording happens after each response). */
async function requestLog(gateway: TestGateway, count: number): Promise<LoggedRequest[]> {
  let data: LoggedRequest[] = [];
  for (let attempt = 0; attempt < 100 && data.length < count; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const response = await fetch(`${gateway.url}/admin/requests`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    data = ((await response.json()) as { data: LoggedRequest[] }).data;
  }
  return data;
}

function requestLines(gateway: TestGateway, status: number) {
  return gateway.logs.filter(
    (line) => line.msg === 'request' && line.route === '/v1/chat/completions' && line.status === status,
  );
}

describe('② quota on /v1', () => {
  it('charges the real usage, and a budget 429 (insufficient_quota) is not retried by the SDK', async () => {
    const { gw, key, status } = await setup({ budgets: [{ period: 'day', max_tokens: 90 }] }, {});
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key }); // default maxRetries: 2
    await client.chat.completions.create(ask);
    await status();
    await client.chat.completions.create(ask);
    expect((await status())?.budgets[0]).toMatchObject({ spentTokens: 80, reservedTokens: 0 });
    const error = await client.chat.completions.create(ask).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('insufficient_quota');
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('x-should-retry')).toBe(
      'false',
    );
    expect((error as Error).message).toContain("team's token budget (90)");
    expect(requestLines(gw, 429)).toHaveLength(1);
    expect(upstream?.requests).toHaveLength(2);
  });

  it('the admin API and the key itself can read what is spent and left', async () => {
    const { gw, key } = await setup(
      { budgets: [{ period: 'day', max_tokens: 1_000 }] },
      { limits: { max_concurrent: 4 } },
    );
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    await client.chat.completions.create(ask);
    const own = async () =>
      (await (
        await fetch(`${gw.baseURL}/tollgate/key`, { headers: { authorization: `Bearer ${key}` } })
      ).json()) as {
        id: string;
        team_id: string;
        limits: Record<string, number>;
        standing: { concurrency?: { limit: number; inUse: number } };
        team: {
          standing: {
            budgets: Array<{ spent_tokens: number; remaining_tokens: number; reserved_tokens: number }>;
          };
        };
      };
    let mine = await own();
    for (let i = 0; i < 50 && (mine.team.standing.budgets[0]?.reserved_tokens ?? 0) > 0; i++)
      mine = await own();
    expect(mine.limits).toEqual({ max_concurrent: 4 });
    expect(mine.standing.concurrency).toMatchObject({ limit: 4 });
    expect(mine.team.standing.budgets[0]).toMatchObject({ spent_tokens: 40, remaining_tokens: 960 });
    const headers = { authorization: `Bearer ${ADMIN}` };
    const team = (await (await fetch(`${gw.url}/admin/teams/${mine.team_id}`, { headers })).json()) as {
      standing: { budgets: Array<{ spent_tokens: number; period: string }> };
    };
    expect(team.standing.budgets[0]).toMatchObject({ period: 'day', spent_tokens: 40 });
    const keyObject = (await (await fetch(`${gw.url}/admin/keys/${mine.id}`, { headers })).json()) as {
      standing: { concurrency?: { limit: number } };
    };
    expect(keyObject.standing.concurrency?.limit).toBe(4);
  });

  it('a concurrency 429 carries retry-after, and the SDK retries it until a slot is free', async () => {
    const { gw, key } = await setup({}, { limits: { max_concurrent: 1 } }, { delayMs: 300 });
    const patient = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 2 });
    const impatient = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const first = patient.chat.completions.create(ask);
    while ((upstream?.requests.length ?? 0) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const refused = await impatient.chat.completions.create(ask).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect((refused as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('rate_limit_exceeded');
    expect((refused as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toBe('1');
    const second = patient.chat.completions.create(ask); // refused now, retried after 1 s
    await expect(first).resolves.toBeDefined();
    await expect(second).resolves.toBeDefined();
    expect(requestLines(gw, 429).length).toBeGreaterThanOrEqual(2);
  });

  it('a stream settles with the usage chunk the gateway asked for', async () => {
    const { gw, key, status } = await setup({ budgets: [{ period: 'day', max_tokens: 1_000 }] }, {});
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key });
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) {
      // drain
    }
    expect((await status())?.budgets[0]).toMatchObject({ spentTokens: 40, reservedTokens: 0 });
  });

  it('a client that disconnects mid-stream is charged its prompt plus what was relayed, and frees its slot', async () => {
    const { gw, key, status } = await setup(
      { budgets: [{ period: 'day', max_tokens: 100_000 }] },
      { limits: { max_concurrent: 1 } },
    );
    let written = 0;
    upstream?.on('POST', '/v1/chat/completions', async (request, res) => {
      if (!request.json?.stream) return sendJson(res, 200, completion('m'));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = {
        id: 'c',
        object: 'chat.completion.chunk',
        created: 1,
        model: 'm',
        // ' hello' is one token, so tokens relayed = chunks relayed.
        choices: [{ index: 0, delta: { content: ' hello' }, logprobs: null, finish_reason: null }],
      };
      for (let i = 0; i < 500 && !res.destroyed; i++) {
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        written++;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      res.end('data: [DONE]\n\n');
    });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const big = { ...ask, max_tokens: 5_000 };
    const stream = await client.chat.completions.create({ ...big, stream: true });
    let read = 0;
    for await (const _chunk of stream) if (++read === 5) break; // leave after five chunks
    await upstream?.waitForAbort();
    // The slot comes back once the gateway has settled; poll briefly rather than guess a delay.
    let answered = false;
    for (let attempt = 0; attempt < 50 && !answered; attempt++) {
      const again = await client.chat.completions.create(ask).catch((e: unknown) => e);
      if (again instanceof OpenAI.RateLimitError) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      expect(again).not.toBeInstanceOf(Error);
      answered = true;
    }
    expect(answered).toBe(true);
    // The follow-up answered 40 (its usage); the stream that was left: prompt + what was relayed,
    // far below its estimate of prompt + 5,000.
    const spent = ((await status())?.budgets[0]?.spentTokens ?? 0) - 40;
    expect(spent).toBeGreaterThanOrEqual(PROMPT + read);
    expect(spent).toBeLessThanOrEqual(PROMPT + written);
    const log = await requestLog(gw, 2);
    const left = log.find((entry) => entry.stream);
    expect(left).toMatchObject({ estimated: true, prompt_tokens: PROMPT, total_tokens: spent });
    expect(left?.ttft_ms).toBeGreaterThanOrEqual(0);
  });

  it('an upstream that reports no usage is counted with the tokenizer and marked estimated', async () => {
    const { gw, key, status } = await setup({ budgets: [{ period: 'day', max_tokens: 1_000 }] }, {});
    upstream?.on('POST', '/v1/chat/completions', async (request, res) => {
      const { usage: _none, ...plain } = completion('m');
      if (!request.json?.stream)
        return sendJson(res, 200, {
          ...plain,
          choices: [{ ...plain.choices[0], message: { role: 'assistant', content: ' one two three' } }],
        });
      const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm' };
      const delta = (content: string) => ({
        ...base,
        choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }],
      });
      // Like some OpenAI-compatible servers: stream_options.include_usage is ignored.
      return sendSse(res, [delta(' four'), delta(' five'), delta(' six'), delta(' seven')]);
    });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    await client.chat.completions.create(ask);
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) {
      // drain
    }
    expect((await status())?.budgets[0]).toMatchObject({
      spentTokens: 2 * PROMPT + 3 + 4,
      reservedTokens: 0,
    });
    const log = await requestLog(gw, 2);
    const json = log.find((entry) => !entry.stream);
    const streamed = log.find((entry) => entry.stream);
    expect(json).toMatchObject({
      estimated: true,
      prompt_tokens: PROMPT,
      completion_tokens: 3,
      ttft_ms: null,
    });
    expect(streamed).toMatchObject({ estimated: true, prompt_tokens: PROMPT, completion_tokens: 4 });
    expect(streamed?.ttft_ms).toBeGreaterThanOrEqual(0);
  });

  it('tokens per minute: x-ratelimit-*-tokens on answers, and a 429 that says what is left', async () => {
    // Half way through a minute, and staying there: the window cannot roll over under the test.
    const midMinute = Date.parse('2026-12-04T12:00:30Z');
    const { gw, key } = await setup(
      { limits: { tokens_per_minute: 1_000 } },
      { limits: { tokens_per_minute: 50 } },
      { clock: () => midMinute },
    );
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const estimate = PROMPT + ask.max_tokens;
    const { response } = await client.chat.completions.create(ask).withResponse();
    // The key's window is the tighter one: 50 - the estimate reserved for this request.
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('50');
    expect(response.headers.get('x-ratelimit-remaining-tokens')).toBe(String(50 - estimate));
    expect(response.headers.get('x-ratelimit-reset-tokens')).toBe('30s');
    // Settled at its real usage (40): the next estimate no longer fits in this minute.
    let refused: unknown;
    for (let i = 0; i < 50 && !(refused instanceof OpenAI.RateLimitError); i++) {
      refused = await client.chat.completions.create(ask).catch((e: unknown) => e);
      if (!(refused instanceof Error)) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const error = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(error.code).toBe('rate_limit_exceeded');
    expect(error.headers?.get('x-ratelimit-limit-tokens')).toBe('50');
    expect(Number(error.headers?.get('x-ratelimit-remaining-tokens'))).toBeLessThan(estimate);
    expect(Number(error.headers?.get('retry-after'))).toBeGreaterThan(0);
  });

  it('requests per minute admit exactly the limit, with x-ratelimit-*-requests headers for the tightest scope', async () => {
    const { gw, key } = await setup(
      { limits: { requests_per_day: 100 } },
      { limits: { requests_per_minute: 3 } },
    );
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    for (let i = 1; i <= 3; i++) {
      const { response } = await client.chat.completions.create(ask).withResponse();
      expect(response.headers.get('x-ratelimit-limit-requests')).toBe('3');
      expect(response.headers.get('x-ratelimit-remaining-requests')).toBe(String(3 - i));
      expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(ms|s)$|^\d+m\d+s$/);
    }
    const refused = await client.chat.completions.create(ask).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const error = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(error.code).toBe('rate_limit_exceeded');
    expect(error.message).toContain('3 requests per minute');
    const retryAfter = Number(error.headers?.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(upstream?.requests).toHaveLength(3);
  });

  it('an upstream 500 refunds the reservation', async () => {
    const { gw, key, status } = await setup(
      { budgets: [{ period: 'day', max_tokens: 1_000 }] },
      {},
      { fail: true },
    );
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    await expect(client.chat.completions.create(ask)).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect((await status())?.budgets[0]).toMatchObject({ spentTokens: 0, reservedTokens: 0 });
  });
});

describe("② a team's limits on one model", () => {
  it('a model budget and requests per minute bind that model only, and say which model', async () => {
    const { gw, key } = await setup(
      {
        model_limits: {
          'gpt-4o-mini': { budgets: [{ period: 'day', max_tokens: 50 }] },
          other: { limits: { requests_per_minute: 2 } },
        },
      },
      {},
    );
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    await client.chat.completions.create(ask); // 40 of the model's 50
    let refused: unknown;
    for (let i = 0; i < 50 && !(refused instanceof OpenAI.RateLimitError); i++) {
      refused = await client.chat.completions.create(ask).catch((e: unknown) => e);
      if (!(refused instanceof Error)) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const budget = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(budget.code).toBe('insufficient_quota');
    expect(budget.message).toContain("model 'gpt-4o-mini'");
    // Another model is not bound by that budget, only by its own request rate.
    const other = { ...ask, model: 'other' };
    await expect(client.chat.completions.create(other)).resolves.toBeDefined();
    await expect(client.chat.completions.create(other)).resolves.toBeDefined();
    const rate = (await client.chat.completions.create(other).catch((e: unknown) => e)) as InstanceType<
      typeof OpenAI.RateLimitError
    >;
    expect(rate).toBeInstanceOf(OpenAI.RateLimitError);
    expect(rate.code).toBe('rate_limit_exceeded');
    expect(rate.message).toContain("model 'other'");
    expect(rate.message).toContain('2 requests per minute');
  });

  it('model_limits are validated, shown on the team, replaced by PATCH and cleared by null', async () => {
    const { gw } = await setup({ model_limits: { 'gpt-4o-mini': { limits: { max_concurrent: 3 } } } }, {});
    const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const teams = (await (await fetch(`${gw.url}/admin/teams`, { headers })).json()) as {
      data: Array<{ id: string; model_limits: unknown }>;
    };
    const team = teams.data[0];
    expect(team?.model_limits).toEqual({ 'gpt-4o-mini': { limits: { max_concurrent: 3 } } });
    const patch = async (body: unknown) =>
      fetch(`${gw.url}/admin/teams/${team?.id}`, { method: 'PATCH', headers, body: JSON.stringify(body) });
    const bad = await patch({ model_limits: { other: { limits: { max_concurrent: 0 } } } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe(
      'model_limits.other.limits.max_concurrent',
    );
    const replaced = await patch({ model_limits: { other: { budgets: [{ period: 'month', max_usd: 5 }] } } });
    expect(((await replaced.json()) as { model_limits: unknown }).model_limits).toEqual({
      other: { budgets: [{ period: 'month', max_usd: 5 }] },
    });
    const cleared = await patch({ model_limits: null });
    expect(((await cleared.json()) as { model_limits: unknown }).model_limits).toEqual({});
  });
});

describe('② quota with Redis (shared by every instance)', () => {
  it('budgets and requests per minute hold through the Redis store too', async (context) => {
    const redis = await redisForTests();
    if (!redis) return context.skip('no Redis here (see the notice above)');
    try {
      const { gw, key, status } = await setup(
        { budgets: [{ period: 'day', max_tokens: 90 }] },
        { limits: { requests_per_minute: 2 } },
        { redisUrl: redis.url },
      );
      const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
      await client.chat.completions.create(ask);
      await status();
      await client.chat.completions.create(ask);
      expect((await status())?.budgets[0]).toMatchObject({ spentTokens: 80, reservedTokens: 0 });
      const refused = await client.chat.completions.create(ask).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    } finally {
      await redis.stop();
    }
  });
});

describe('reset durations', () => {
  it("are written the way OpenAI's headers write them", async () => {
    const { formatDuration } = await import('../src/pipeline/request-limits.js');
    expect(formatDuration(17)).toBe('17ms');
    expect(formatDuration(1_000)).toBe('1s');
    expect(formatDuration(360_000)).toBe('6m0s');
    expect(formatDuration(3_723_000)).toBe('1h2m3s');
  });
});
