import type { ServerResponse } from 'node:http';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { expectEnvelope } from './support/error-envelope.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { chatChunkFixtures } from './support/openai-fixtures.js';
import { expectChatCompletionChunk } from './support/spec-validator.js';

/*
 * ⑥ read-ahead: the gateway reads a stream up to its first event before it commits the status,
 * so an upstream that answers 200 and then fails (or stalls) before that event is an ordinary
 * error response, and a stream that has started is still relayed as it arrives.
 */

let upstream: FakeUpstream | undefined;
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await upstream?.stop();
  gw = undefined;
  upstream = undefined;
});

type Handler = Parameters<FakeUpstream['on']>[2];

async function setup(handler: Handler, extra: Parameters<typeof upstreamConfig>[1] = {}) {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', handler);
  const base = await upstream.start();
  gw = await startGateway(upstreamConfig(base, extra));
  return { client: new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 }), gw, upstream };
}

function streamHeaders(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.flushHeaders();
}

function createStream(client: OpenAI) {
  return client.chat.completions.create({
    model: 'gpt-test',
    stream: true,
    messages: [{ role: 'user', content: 'x' }],
  });
}

async function postStream(url: string): Promise<Response> {
  return fetch(`${url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-test', stream: true, messages: [{ role: 'user', content: 'x' }] }),
  });
}

/** A promise with its resolve, for a fake upstream that waits on what the client has seen. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

async function expect502(client: OpenAI, code = 'upstream_error'): Promise<void> {
  // The SDK's create() itself rejects: an HTTP error answer, not a stream that fails later.
  const error = await createStream(client).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(OpenAI.APIError);
  expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(
    code === 'upstream_timeout' ? 504 : 502,
  );
  expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe(code);
}

describe('read-ahead to the first upstream event', () => {
  it('an upstream that sends 200 and its headers, then ends without an event, is a 502 JSON answer', async () => {
    const { client, gw } = await setup((_request, res) => {
      streamHeaders(res);
      res.end();
    });
    await expect502(client);
    const response = await postStream(gw.baseURL);
    expect(response.status).toBe(502);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expectEnvelope(await response.json(), { type: 'server_error', code: 'upstream_error', param: null });
  });

  it('an upstream that sends 200 and a comment, then drops the connection before any event, is a 502 JSON answer', async () => {
    const { client, gw } = await setup((_request, res) => {
      streamHeaders(res);
      // A comment is no event: the gateway is still reading ahead when the connection goes.
      res.write(': processing\n\n', () => res.socket?.destroy());
    });
    await expect502(client);
    const response = await postStream(gw.baseURL);
    expect(response.status).toBe(502);
    expectEnvelope(await response.json(), { type: 'server_error', code: 'upstream_error', param: null });
  });

  it('an upstream that fails half-way through its first event is a 502, and none of the half event reaches the client', async () => {
    const { client, gw } = await setup(async (_request, res) => {
      streamHeaders(res);
      // Destroyed once the bytes are out, so the gateway has them before the failure.
      res.write('data: {"partial', () => res.socket?.destroy());
    });
    await expect502(client);
    const response = await postStream(gw.baseURL);
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(text).not.toContain('partial');
    expectEnvelope(JSON.parse(text), { type: 'server_error', code: 'upstream_error', param: null });
    const line = gw.logs.filter((l) => l.msg === 'request' && l.route === '/v1/chat/completions').at(-1);
    expect(line?.status).toBe(502);
    expect(line?.stream_error).toBeUndefined();
  });

  it('an upstream that stalls past its idle timeout before the first event is a 504 JSON answer', async () => {
    // The idle timeout (150 ms) is far below the keep-alive interval (the default, 15 s), so the
    // gateway is still reading ahead when it fires.
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) => {
      streamHeaders(res); // then silence
    });
    const base = await upstream.start();
    gw = await startGateway({
      backends: { upstream: { type: 'openai', baseUrl: `${base}/v1`, timeouts: { idleMs: 150 } } },
      models: { 'gpt-test': { backend: 'upstream' } },
    });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
    await expect502(client, 'upstream_timeout');
  });

  it('the mock backend failing before its first chunk is a 502 JSON answer too', async () => {
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
        messages: [{ role: 'user', content: 'no chunk at all [[mock:fail-after:0]]' }],
      }),
    });
    expect(response.status).toBe(502);
    expectEnvelope(await response.json(), { type: 'server_error', code: 'upstream_error', param: null });
  });

  it('relays the first event before the upstream sends the next, and each later event as it arrives', async () => {
    const chunks = chatChunkFixtures('m', ['a', 'b'], false);
    const seen = chunks.map(() => signal());
    const { client } = await setup(
      async (_request, res) => {
        streamHeaders(res);
        // Each event is written only once the client has the one before: a gateway that held
        // anything back past the first event would never let this stream finish.
        for (const [i, chunk] of chunks.entries()) {
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          await seen[i]?.promise;
        }
        res.end('data: [DONE]\n\n');
      },
      // No keep-alive within the test's life: it cannot be what lets the stream through.
      { server: { keepAliveIntervalMs: 3_600_000 } },
    );
    const stream = await createStream(client);
    let received = 0;
    let content = '';
    for await (const chunk of stream) {
      expectChatCompletionChunk(chunk);
      content += chunk.choices[0]?.delta.content ?? '';
      seen[received++]?.fire();
    }
    expect(received).toBe(chunks.length);
    expect(content).toBe('ab');
  });

  it('an upstream still silent after the keep-alive interval gets the 200 and `: ping`s while it thinks', async () => {
    const pinged = signal();
    const { gw } = await setup(
      async (_request, res) => {
        streamHeaders(res);
        // The first event comes only once the client has seen a ping: without the committed
        // 200 and pings during the read-ahead, this stream would never start.
        await pinged.promise;
        for (const chunk of chatChunkFixtures('m', ['late'], false))
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        res.end('data: [DONE]\n\n');
      },
      { server: { keepAliveIntervalMs: 40 } },
    );
    const response = await postStream(gw.baseURL);
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (text.includes(': ping\n\n')) pinged.fire();
    }
    expect(text.startsWith(': ping\n\n')).toBe(true);
    expect(text).toContain('"content":"late"');
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });
});
