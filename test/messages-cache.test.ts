import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeAnthropic } from './support/fake-anthropic.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * ③ the response cache on Anthropic's Messages API: answers stored whole (a stream assembled from
 * its events), replayed as JSON or as Anthropic's events, keyed with the client's betas.
 */

let fake: FakeAnthropic;
let gw: TestGateway;
let client: Anthropic;

const ask = (text: string) => ({
  model: 'claude',
  max_tokens: 50,
  temperature: 0,
  messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text }] }],
});

/** `x-tollgate-cache` of one request made with the SDK (so with its own `anthropic-version`). */
async function cacheOf(
  text: string,
  stream: boolean,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): Promise<string | null> {
  if (stream) {
    const { data, response } = await client.messages
      .create({ ...ask(text), ...extra, stream: true }, { headers })
      .withResponse();
    for await (const _event of data) {
      // read to the end
    }
    return response.headers.get('x-tollgate-cache');
  }
  const { response } = await client.messages.create({ ...ask(text), ...extra }, { headers }).withResponse();
  return response.headers.get('x-tollgate-cache');
}

beforeAll(async () => {
  fake = new FakeAnthropic();
  const url = await fake.start();
  gw = await startGateway({
    cache: { enabled: true, scope: 'global' },
    backends: { anthropic: { type: 'anthropic', baseUrl: url, apiKey: 'sk-ant-test-123456' } },
    models: { claude: { backend: 'anthropic', model: 'claude-sonnet-4-5' } },
  });
  client = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await fake?.stop();
});

beforeEach(() => {
  fake.requests.length = 0;
});

describe('③ cache on /v1/messages', () => {
  it('a JSON answer is stored and served again without the upstream', async () => {
    const first = await client.messages.create(ask('json once'));
    const again = await client.messages.create(ask('json once')).withResponse();
    expect(again.response.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(again.data).toEqual(first);
    expect(fake.requests).toHaveLength(1);
  });

  it('a stream is assembled, stored, and replayed as events the SDK reads to the same message', async () => {
    const streamed = await client.messages.stream(ask('stream once')).finalMessage();
    expect(await cacheOf('stream once', true)).toBe('HIT');
    const replayed = await client.messages.stream(ask('stream once')).finalMessage();
    expect(replayed.content).toEqual(streamed.content);
    expect(replayed.usage.input_tokens).toBe(streamed.usage.input_tokens);
    expect(replayed.usage.output_tokens).toBe(streamed.usage.output_tokens);
    // And as JSON, the message a non-streamed request would have had.
    const asJson = await client.messages.create(ask('stream once'));
    expect(asJson.content).toEqual(streamed.content);
    expect(asJson.stop_reason).toBe(streamed.stop_reason);
    expect(fake.requests).toHaveLength(1);
  });

  it('other betas or another API version are another key; metadata is not', async () => {
    expect(await cacheOf('betas', false)).toBe('MISS');
    expect(await cacheOf('betas', false)).toBe('HIT');
    expect(await cacheOf('betas', false, { 'anthropic-beta': 'some-beta-2025-01-01' })).toBe('MISS');
    expect(await cacheOf('betas', false, { 'anthropic-version': '2023-06-01' })).toBe('MISS');
    expect(await cacheOf('betas', false, {}, { metadata: { user_id: 'session-42' } })).toBe('HIT');
    expect(fake.requests).toHaveLength(3);
  });

  it('a sampled request (temperature 1, the default) is not cached', async () => {
    const body = { ...ask('sampled'), temperature: 1 };
    await client.messages.create(body);
    const again = await client.messages.create(body).withResponse();
    expect(again.response.headers.get('x-tollgate-cache')).toBe('BYPASS');
    expect(fake.requests).toHaveLength(2);
  });
});
