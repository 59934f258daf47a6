import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { chatChunkFixtures } from './support/openai-fixtures.js';
import { expectChatCompletionChunk, expectErrorResponse } from './support/spec-validator.js';

let upstream: FakeUpstream | undefined;
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await upstream?.stop();
  gw = undefined;
  upstream = undefined;
});

async function setup(
  handler: Parameters<FakeUpstream['on']>[2],
  extra: Parameters<typeof upstreamConfig>[1] = {},
): Promise<{ client: OpenAI; gw: TestGateway; upstream: FakeUpstream }> {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', handler);
  const base = await upstream.start();
  gw = await startGateway(upstreamConfig(base, extra));
  return { client: new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 }), gw, upstream };
}

function postStream(url: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'x' }], ...body }),
  });
}

/** Each SSE data payload, parsed (the `[DONE]` sentinel excluded). */
function dataEvents(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n\n')
    .filter((event) => event.startsWith('data: ') && event !== 'data: [DONE]')
    .map((event) => JSON.parse(event.slice(6)) as Record<string, unknown>);
}

const slowForever: Parameters<FakeUpstream['on']>[2] = async (_request, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const chunks = chatChunkFixtures(
    'm',
    Array.from({ length: 1000 }, (_, i) => `t${i} `),
    false,
  );
  for (const chunk of chunks) {
    if (res.destroyed) return;
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  res.end();
};

describe('streaming relay', () => {
  it('a client that disconnects mid-stream aborts the upstream request', async () => {
    const { client, upstream } = await setup(slowForever);
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'long story' }],
    });
    let seen = 0;
    for await (const chunk of stream) {
      expectChatCompletionChunk(chunk);
      if (++seen === 3) break; // leaving the loop aborts the SDK's request
    }
    await upstream.waitForAbort();
    expect(upstream.requests.at(-1)?.aborted).toBe(true);
    const log = gw?.logs.find((line) => line.msg === 'request' && line.route === '/v1/chat/completions');
    expect(log?.aborted).toBe(true);
  });

  it('a client that gives up before the first byte aborts the upstream too', async () => {
    const { client, upstream } = await setup(async () => {
      // never answers
    });
    const controller = new AbortController();
    const pending = client.chat.completions.create(
      { model: 'gpt-test', messages: [{ role: 'user', content: 'slow' }] },
      { signal: controller.signal },
    );
    while (upstream.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    await upstream.waitForAbort();
    expect(upstream.requests[0]?.aborted).toBe(true);
  });

  it('sends `: ping` comments through long upstream silences, and the SDK ignores them', async () => {
    const handler: Parameters<FakeUpstream['on']>[2] = async (_request, res) => {
      const chunks = chatChunkFixtures('m', ['a', 'b'], false);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(chunks[0])}\n\n`);
      await new Promise((resolve) => setTimeout(resolve, 250));
      for (const chunk of chunks.slice(1)) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      res.end('data: [DONE]\n\n');
    };
    const { client, gw } = await setup(handler, { server: { keepAliveIntervalMs: 40 } });
    const text = await (await postStream(gw.baseURL, { model: 'gpt-test' })).text();
    expect(text).toContain(': ping\n\n');
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    let content = '';
    for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
    expect(content).toBe('ab');
  });

  it('an upstream that dies after the 200 ends the stream with an error event', async () => {
    const handler: Parameters<FakeUpstream['on']>[2] = async (_request, res) => {
      const chunks = chatChunkFixtures('m', ['a', 'b', 'c'], false);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(chunks[0])}\n\n`);
      res.write(`data: ${JSON.stringify(chunks[1])}\n\ndata: {"partial`);
      await new Promise((resolve) => setTimeout(resolve, 30));
      res.socket?.destroy();
    };
    const { client, gw } = await setup(handler);
    const response = await postStream(gw.baseURL, { model: 'gpt-test' });
    expect(response.status).toBe(200);
    const text = await response.text();
    const events = dataEvents(text);
    const last = events.at(-1) as { error?: { code?: string; type?: string } };
    expectErrorResponse(last);
    expect(last.error?.code).toBe('upstream_error');
    expect(text).not.toContain('partial');
    expect(text).not.toContain('[DONE]');
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    const read = async () => {
      for await (const _chunk of stream) {
        // drain
      }
    };
    await expect(read()).rejects.toBeInstanceOf(OpenAI.APIError);
  });

  it('an upstream that goes silent past the idle timeout ends the stream with upstream_timeout', async () => {
    const handler: Parameters<FakeUpstream['on']>[2] = async (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(chatChunkFixtures('m', ['a'], false)[0])}\n\n`);
      // then silence
    };
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', handler);
    const base = await upstream.start();
    gw = await startGateway({
      backends: { upstream: { type: 'openai', baseUrl: `${base}/v1`, timeouts: { idleMs: 150 } } },
      models: { 'gpt-test': { backend: 'upstream' } },
    });
    const text = await (await postStream(gw.baseURL, { model: 'gpt-test' })).text();
    const last = dataEvents(text).at(-1) as { error?: { code?: string } };
    expect(last.error?.code).toBe('upstream_timeout');
  });

  it('the mock backend can fail mid-stream on request, the same way', async () => {
    upstream = new FakeUpstream();
    await upstream.start();
    gw = await startGateway({
      backends: { mock: { type: 'mock', chunks: 5 } },
      models: { mock: { backend: 'mock' } },
    });
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mock',
        stream: true,
        messages: [{ role: 'user', content: 'text that goes on [[mock:fail-after:3]]' }],
      }),
    });
    const events = dataEvents(await response.text());
    expect(events).toHaveLength(4);
    expect((events[3] as { error?: { code?: string } }).error?.code).toBe('upstream_error');
  });

  it('relays events cut at any byte, several per packet, and CRLF framing, unchanged', async () => {
    // With its usage chunk: the client asked for it, and a stream without one would get the gateway's.
    const chunks = chatChunkFixtures('m', ['α', 'β', 'γ'], true);
    const wire = `${chunks.map((c, i) => (i === 1 ? `data: ${JSON.stringify(c)}\r\n\r\n` : `data: ${JSON.stringify(c)}\n\n`)).join('')}data: [DONE]\n\n`;
    const bytes = Buffer.from(wire);
    const handler: Parameters<FakeUpstream['on']>[2] = async (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Odd-sized pieces that cut events, multi-byte characters and the CRLF pair.
      for (let at = 0; at < bytes.length; at += 37) {
        res.write(bytes.subarray(at, at + 37));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      res.end();
    };
    const { gw } = await setup(handler);
    const text = await (
      await postStream(gw.baseURL, { model: 'gpt-test', stream_options: { include_usage: true } })
    ).text();
    expect(text).toBe(wire);
  });

  it('sends upstream stream chunks to the client before the upstream has finished', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler: Parameters<FakeUpstream['on']>[2] = async (_request, res) => {
      const chunks = chatChunkFixtures('m', ['first', 'second'], false);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(chunks[0])}\n\n`);
      res.write(`data: ${JSON.stringify(chunks[1])}\n\n`);
      await gate; // the rest only after the client has seen the first chunks
      for (const chunk of chunks.slice(2)) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      res.end('data: [DONE]\n\n');
    };
    const { client } = await setup(handler);
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    let content = '';
    for await (const chunk of stream) {
      content += chunk.choices[0]?.delta.content ?? '';
      if (content === 'first') release();
    }
    expect(content).toBe('firstsecond');
  });
});
