import { once } from 'node:events';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';

const EVENT = `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'x'.repeat(64 * 1024) }, finish_reason: null }] })}\n\n`;
const TOTAL_EVENTS = 1024; // 64 MiB in all
let written = 0;
let upstream: FakeUpstream;
let gw: TestGateway;

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (_request, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < TOTAL_EVENTS; i++) {
      if (res.destroyed) return;
      written += EVENT.length;
      // Waits whenever the gateway stops reading: that is the backpressure under test.
      if (!res.write(EVENT)) await once(res, 'drain');
    }
    res.end('data: [DONE]\n\n');
  });
  gw = await startGateway(upstreamConfig(await upstream.start()));
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('stream backpressure', () => {
  it('a slow client slows the upstream instead of filling the gateway’s memory', async () => {
    const response = await request(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test', stream: true, messages: [{ role: 'user', content: 'big' }] }),
    });
    const body = response.body;
    const iterator = body[Symbol.asyncIterator]();
    let received = (await iterator.next()).value?.length ?? 0;
    // The client now reads nothing; wait until the upstream cannot write any more.
    let last = -1;
    while (written !== last) {
      last = written;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const stalledAt = written;
    expect(stalledAt).toBeLessThan(24 * 1024 * 1024);
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      received += next.value.length;
    }
    expect(written).toBe(TOTAL_EVENTS * EVENT.length);
    expect(received).toBe(written + 'data: [DONE]\n\n'.length);
  });
});
