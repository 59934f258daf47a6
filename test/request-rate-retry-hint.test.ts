import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import type { TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';

/**
 * A request-rate 429 says when to retry (`retry-after`). The OpenAI SDK only waits for a
 * `retry-after` up to 60 s: past it (a requests_per_day window) it retries at once, twice by
 * default, each refused again, and the Anthropic SDK would sleep the whole wait. So a refusal
 * more than a minute from its window's end also says `x-should-retry: false`, and the SDKs hand
 * it to their caller after one request; a per-minute refusal stays one they retry after the wait.
 */

let gw: TestGateway;
let admin: AdminHttp;

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway());
});
afterAll(() => gw.close());

const chatBody = { model: 'mock', messages: [{ role: 'user' as const, content: 'hi' }] };

/** Request lines the gateway wrote with `status` (written as each response closes). */
const requestLines = (status: number) =>
  gw.logs.filter((line) => line.msg === 'request' && line.status === status).length;

async function waitForRequestLines(status: number, count: number): Promise<void> {
  await pollUntil(
    async () => requestLines(status),
    (lines) => lines >= count,
  );
}

async function rawChat(key: string): Promise<Response> {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(chatBody),
  });
  await response.arrayBuffer();
  return response;
}

describe('a requests_per_day refusal', () => {
  it('says x-should-retry: false, so the OpenAI SDK (default retries) sends it once', async () => {
    const key = await admin.teamKey({}, { limits: { requests_per_day: 1 } });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key });
    await client.chat.completions.create(chatBody);

    const before = requestLines(429);
    const error = await client.chat.completions.create(chatBody).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    const refused = error as InstanceType<typeof OpenAI.RateLimitError>;
    expect(refused.headers?.get('x-should-retry')).toBe('false');
    expect(Number(refused.headers?.get('retry-after'))).toBeGreaterThan(60);
    expect(refused.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });
    expect(refused.message).toContain('limit of 1 requests per day is reached');

    await waitForRequestLines(429, before + 1);
    // One more request would have come in by now if the SDK retried: it retries at once.
    await rawChat(key);
    await waitForRequestLines(429, before + 2);
    expect(requestLines(429) - before).toBe(2);
  });

  it('on the Anthropic surface: the Anthropic SDK hands it over at once instead of sleeping a day', async () => {
    const key = await admin.teamKey({}, { limits: { requests_per_day: 1 } });
    const client = new Anthropic({ baseURL: gw.url, apiKey: key });
    const params = { model: 'mock', max_tokens: 16, messages: [{ role: 'user' as const, content: 'hi' }] };
    await client.messages.create(params);
    const error = await client.messages.create(params).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const refused = error as InstanceType<typeof Anthropic.RateLimitError>;
    expect(refused.headers?.get('x-should-retry')).toBe('false');
    expect(refused.error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
  });
});

describe('a requests_per_minute refusal', () => {
  it('is one the SDKs retry after the wait: retry-after within a minute, no x-should-retry', async () => {
    const key = await admin.teamKey({}, { limits: { requests_per_minute: 1 } });
    expect((await rawChat(key)).status).toBe(200);
    const refused = await rawChat(key);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after-ms'))).toBeLessThanOrEqual(60_000);
    expect(refused.headers.get('x-should-retry')).toBeNull();
  });
});
