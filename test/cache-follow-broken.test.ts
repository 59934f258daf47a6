import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis-store.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatChunkFixtures } from './support/openai-fixtures.js';
import { redisForTests, type TestRedis } from './support/redis.js';

/**
 * ③ A stream that follows an identical request's stream live from another instance, when that
 * request's upstream call breaks off part way, ends with an error event that says so, in OpenAI's
 * shape, rather than "unexpected error". (The leader's own client leaving no longer breaks it: the
 * leader reads on for followers elsewhere, cache-remote-followers.test.ts.) Each step waits for
 * the event it needs: the upstream holds the rest of its answer until the test breaks it off.
 */

let redis: TestRedis | undefined;
const upstream = new FakeUpstream();
/** Resolved when the upstream's client (the leading instance) goes away. */
let upstreamClosed!: Promise<void>;
/** Cuts the upstream's answer off part way. */
let breakUpstream!: () => void;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  redis = await redisForTests();
  upstream.on('POST', '/v1/chat/completions', (_request, res) => {
    upstreamClosed = new Promise((resolve) => res.on('close', () => resolve()));
    breakUpstream = () => res.destroy();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // The role and the first piece only: the rest never comes, the answer is cut off meanwhile.
    const [role, first] = chatChunkFixtures('gpt-4o-mini', ['Hel', 'lo'], false);
    res.write(`data: ${JSON.stringify(role)}\n\ndata: ${JSON.stringify(first)}\n\n`);
  });
  await upstream.start();
  for (let i = 0; i < 2; i++) {
    if (!redis) break;
    gateways.push(
      await startGateway(
        {
          redis: { url: redis.url },
          backends: { up: { type: 'openai', baseUrl: `http://127.0.0.1:${upstream.port}/v1`, apiKey: 'k' } },
          models: { 'gpt-4o-mini': { backend: 'up' } },
          cache: { enabled: true, scope: 'global' },
        },
        {},
        { store: new RedisStore({ target: { url: redis.url } }) },
      ),
    );
  }
});

afterAll(async () => {
  // The upstream first: it holds its streams open, which closing a gateway would wait for.
  await upstream.stop();
  await Promise.all(gateways.map((gw) => gw.close()));
  await redis?.stop();
});

const body = JSON.stringify({
  model: 'gpt-4o-mini',
  temperature: 0,
  stream: true,
  messages: [{ role: 'user', content: `follow me ${Date.now()}` }],
});

/** Reads a streamed response until `until` holds for the text so far (or the stream ends). */
async function readUntil(response: Response, until: (text: string) => boolean): Promise<string> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!until(text)) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text;
}

describe('③ following a stream on another instance', () => {
  it("the leader's upstream breaking off ends the follower's stream with an error event saying why", async (context) => {
    if (!redis) context.skip();
    const [a, b] = gateways as [TestGateway, TestGateway];
    const post = (gw: TestGateway) =>
      fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    const led = await post(a);
    expect(led.headers.get('x-tollgate-cache')).toBe('MISS');
    await readUntil(led, (text) => text.includes('Hel'));

    const followed = await post(b);
    expect(followed.headers.get('x-tollgate-cache')).toBe('HIT');
    const seen = await readUntil(followed, (text) => text.includes('Hel'));

    breakUpstream();
    await upstreamClosed;
    const rest = seen + (await readUntil(followed, () => false));
    const events = rest
      .split('\n\n')
      .filter((event) => event.startsWith('data: '))
      .map((event) => event.slice(6));
    const last = JSON.parse(events.at(-1) ?? '{}') as {
      error?: { message: string; type: string; code: string };
    };
    expect(last.error).toMatchObject({ type: 'server_error', code: 'upstream_error' });
    expect(last.error?.message).toContain('another gateway instance stopped before its end');
    expect(rest).not.toContain('[DONE]');
  });
});
