import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatChunkFixtures, chatCompletionFixture } from './support/openai-fixtures.js';

/**
 * ③ cache hits as the Vercel AI SDK sees them: a replayed stream must parse in its OpenAI chat
 * provider exactly like the upstream's own, with usage and finish reason.
 */
let upstream: FakeUpstream | undefined;
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await upstream?.stop();
  gw = undefined;
  upstream = undefined;
});

async function setup() {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, res) => {
    const body = request.json ?? {};
    const model = String(body.model);
    if (!body.stream) return sendJson(res, 200, chatCompletionFixture(model, 'Hello from JSON'));
    return sendSse(res, chatChunkFixtures(model, ['Hello', ' from', ' the', ' stream'], true));
  });
  const base = await upstream.start();
  gw = await startGateway({
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
    models: { 'gpt-4o-mini': { backend: 'up' } },
    // auth: none here, so only a global scope can share entries.
    cache: { enabled: true, scope: 'global' },
  });
  const cacheStatus: string[] = [];
  const provider = createOpenAI({
    baseURL: gw.baseURL,
    apiKey: 'unused',
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      cacheStatus.push(response.headers.get('x-tollgate-cache') ?? '');
      return response;
    },
  });
  return { model: provider.chat('gpt-4o-mini'), cacheStatus };
}

describe('③ cache with the AI SDK', () => {
  it('streamText reads a replayed stream like the original: text, finish reason, usage', async () => {
    const { model, cacheStatus } = await setup();
    const ask = { model, temperature: 0, prompt: 'Say hello' };
    const first = streamText(ask);
    const firstText = await first.text;
    const second = streamText(ask);
    expect(await second.text).toBe(firstText);
    expect(firstText).toBe('Hello from the stream');
    expect(await second.finishReason).toBe('stop');
    expect((await second.usage).totalTokens).toBe((await first.usage).totalTokens);
    expect(cacheStatus).toEqual(['MISS', 'HIT']);
    // The stored stream also answers generateText (a JSON request) without the upstream.
    const json = await generateText(ask);
    expect(json.text).toBe(firstText);
    expect(cacheStatus).toEqual(['MISS', 'HIT', 'HIT']);
    expect(upstream?.requests).toHaveLength(1);
  });

  it('a JSON answer replays to streamText', async () => {
    const { model, cacheStatus } = await setup();
    const ask = { model, temperature: 0, prompt: 'Say hello again' };
    expect((await generateText(ask)).text).toBe('Hello from JSON #0');
    const replay = streamText(ask);
    expect(await replay.text).toBe('Hello from JSON #0');
    expect(await replay.finishReason).toBe('stop');
    expect(cacheStatus).toEqual(['MISS', 'HIT']);
  });
});
