import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminHttp } from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * ② refusals that say what happened: a request that can never fit a limit ("Request too large",
 * not retried), a budget that still has some left (what was asked, what is left), and token
 * figures beyond what the gateway can account for (a 400 naming the parameter, never a 500).
 */
const ADMIN = 'test-admin-key-0123456789';
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function gateway(): Promise<TestGateway> {
  gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
    // $1,000 per 1M tokens: one token is a tenth of a cent, so small budgets bind.
    quota: { prices: { mock: { input: 1_000, output: 1_000 } } },
  });
  return gw;
}

function keyFor(team: Record<string, unknown>, key: Record<string, unknown> = {}): Promise<string> {
  return new AdminHttp(gw?.url ?? '', ADMIN).teamKey(team, key);
}

async function call(path: string, key: string, body: unknown) {
  const response = await fetch(`${gw?.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as {
    error?: { message: string; type: string; code: string; param: string | null };
  };
  return { status: response.status, headers: response.headers, error: json.error, json };
}

const chat = (maxTokens: number) => ({
  model: 'mock',
  max_tokens: maxTokens,
  messages: [{ role: 'user', content: 'hi' }],
});

function requestLines(status: number) {
  return (gw?.logs ?? []).filter((line) => line.msg === 'request' && line.status === status);
}

describe('② a request that can never fit', () => {
  it('bigger than a key’s tokens per minute: Request too large, type tokens, not retried by the SDK', async () => {
    await gateway();
    const key = await keyFor({}, { limits: { tokens_per_minute: 50 } });
    const client = new OpenAI({ baseURL: gw?.baseURL, apiKey: key }); // default maxRetries: 2
    const error = await client.chat.completions.create(chat(100) as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    const refused = error as InstanceType<typeof OpenAI.RateLimitError>;
    expect(refused.code).toBe('rate_limit_exceeded');
    expect(refused.type).toBe('tokens');
    expect(refused.message).toMatch(
      /^429 Request too large for mock on this API key's tokens per min \(TPM\): Limit 50, Requested 1\d\d\. The input or output tokens must be reduced in order to run successfully\.$/,
    );
    expect(refused.headers?.get('x-should-retry')).toBe('false');
    expect(refused.headers?.get('retry-after')).toBeNull();
    expect(requestLines(429)).toHaveLength(1);
  });

  it('bigger than a team’s whole token budget, or its whole USD budget: insufficient_quota saying both figures', async () => {
    await gateway();
    const tokens = await call(
      '/v1/chat/completions',
      await keyFor({ budgets: [{ period: 'day', max_tokens: 100 }] }),
      chat(500),
    );
    expect(tokens.status).toBe(429);
    expect(tokens.headers.get('x-should-retry')).toBe('false');
    expect(tokens.headers.get('retry-after')).toBeNull();
    expect(tokens.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
    expect(tokens.error?.message).toMatch(
      /^Request too large for mock on your team's day token budget: Limit 100, Requested 5\d\d\. /,
    );

    const usd = await call(
      '/v1/chat/completions',
      await keyFor({ budgets: [{ period: 'month', max_usd: 0.05 }] }),
      chat(100),
    );
    expect(usd.status).toBe(429);
    expect(usd.error?.code).toBe('insufficient_quota');
    expect(usd.error?.message).toMatch(
      /^Request too large for mock on your team's month USD budget: Limit \$0\.0500, Requested an estimated \$0\.1\d{3}\. /,
    );
  });

  it('a budget under a cent shows its micro-dollars, not $0.0000', async () => {
    await gateway();
    // A tenth of a cent per token: 2 tokens' worth of budget for a request that asks 100.
    const tiny = await call(
      '/v1/chat/completions',
      await keyFor({ budgets: [{ period: 'month', max_usd: 0.002 }] }),
      chat(100),
    );
    expect(tiny.status).toBe(429);
    expect(tiny.error?.message).toMatch(/Limit \$0\.002000, Requested an estimated \$0\.1\d{3}\. /);
  });

  it('a budget with some left says what the request needs and what is left, not "exhausted"', async () => {
    await gateway();
    const key = await keyFor({ budgets: [{ period: 'day', max_tokens: 200 }] });
    const first = await call('/v1/chat/completions', key, chat(20));
    expect(first.status).toBe(200);
    const spent = (first.json as { usage: { total_tokens: number } }).usage.total_tokens;
    // The first answer is settled just after it is sent: wait until its reservation is gone.
    for (;;) {
      const own = await fetch(`${gw?.url}/v1/tollgate/key`, { headers: { authorization: `Bearer ${key}` } });
      const body = (await own.json()) as {
        team: { standing: { budgets: Array<{ reserved_tokens: number }> } };
      };
      if (body.team.standing.budgets[0]?.reserved_tokens === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Fits the budget's size (200), not what is left of it once the first answer is charged.
    const denied = await call('/v1/chat/completions', key, chat(190));
    expect(denied?.status).toBe(429);
    expect(denied?.error?.code).toBe('insufficient_quota');
    const day = new Date().toISOString().slice(0, 10);
    expect(denied?.error?.message).toBe(
      `Your team's token budget (200) for this day (${day}) has ${200 - spent} tokens left; this request needs an estimated ${denied?.error?.message.match(/needs an estimated (\d+)/)?.[1]} tokens.`,
    );
    const needed = Number(denied?.error?.message.match(/needs an estimated (\d+) tokens/)?.[1]);
    expect(needed).toBeGreaterThan(200 - spent);
    expect(needed).toBeLessThanOrEqual(200);
  });
});

describe('② token figures beyond what the gateway can account for', () => {
  const huge = 9_007_199_254_740_991;
  it.each([
    ['/v1/completions', { model: 'mock', prompt: 'hi', max_tokens: huge }, 'max_tokens'],
    ['/v1/completions', { model: 'mock', prompt: 'hi', n: 128, max_tokens: 2 ** 46 }, 'max_tokens'],
    ['/v1/engines/mock/completions', { prompt: 'hi', max_tokens: huge }, 'max_tokens'],
    [
      '/v1/chat/completions',
      { ...chat(1), max_tokens: undefined, max_completion_tokens: huge },
      'max_completion_tokens',
    ],
    ['/v1/responses', { model: 'mock', input: 'hi', max_output_tokens: 1e20 }, 'max_output_tokens'],
  ])('%s %j: 400 naming the parameter on a limited key', async (path, body, param) => {
    await gateway();
    const key = await keyFor({
      limits: { tokens_per_minute: 1_000_000 },
      budgets: [{ period: 'day', max_usd: 10 }],
    });
    const answer = await call(path, key, body);
    expect(answer.status).toBe(400);
    expect(answer.error).toMatchObject({ type: 'invalid_request_error', param });
    expect(answer.error?.message).toContain('2147483647');
  });

  it('the largest admitted figures (x n) never make the quota arithmetic throw', async () => {
    await gateway();
    const key = await keyFor({
      limits: { tokens_per_minute: 1_000_000 },
      budgets: [{ period: 'day', max_usd: 10 }],
    });
    const answer = await call('/v1/completions', key, {
      model: 'mock',
      prompt: 'hi',
      n: 128,
      max_tokens: 2_147_483_647,
    });
    expect(answer.status).toBe(429);
    expect(answer.error?.message).toMatch(
      /^Request too large for mock on your team's day USD budget: Limit \$10\.00, /,
    );
    // A field the endpoint does not define is not read as its output cap.
    const other = await call('/v1/completions', key, {
      model: 'mock',
      prompt: 'hi',
      max_tokens: 5,
      max_completion_tokens: huge,
    });
    expect(other.status).toBe(200);
    expect(requestLines(500)).toHaveLength(0);
  });
});
