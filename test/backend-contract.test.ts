import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResponse, JsonCall } from '../src/backends/backend.js';
import { MockBackend } from '../src/backends/mock/mock-backend.js';
import { OpenAICompatibleBackend } from '../src/backends/openai-compatible/openai-compatible-backend.js';
import { ClientAbortedError } from '../src/backends/transport-failure.js';
import { parseConfig } from '../src/config/load-config.js';
import type { BackendConfig } from '../src/config/schema.js';
import { type GatewayError, UpstreamClientError, UpstreamError } from '../src/errors.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectCompletionChunk,
  expectEmbeddingResponse,
  expectResponse,
  expectResponseStreamEvent,
} from './support/spec-validator.js';

/**
 * One contract, every Backend: what the gateway relies on from an adapter. The
 * OpenAI-compatible adapter runs against a real HTTP upstream: a Tollgate serving the mock
 * model, so both adapters must produce the same, spec-valid answers.
 */
function backendConfig(input: Record<string, unknown>): BackendConfig {
  const config = parseConfig({ backends: { b: input }, models: {} }, {}, 'test');
  const backend = config.backends.b;
  if (!backend) throw new Error('no backend');
  return backend;
}

let inner: TestGateway;
const implementations: Array<{ name: string; make: () => Backend }> = [
  { name: 'mock', make: () => new MockBackend('b', backendConfig({ type: 'mock', chunks: 3 }) as never) },
  {
    name: 'openai-compatible',
    make: () =>
      new OpenAICompatibleBackend(
        'b',
        backendConfig({ type: 'openai', baseUrl: `${inner.baseURL}`, apiKey: 'k' }) as never,
      ),
  },
];

beforeAll(async () => {
  inner = await startGateway({
    backends: { m: { type: 'mock', chunks: 3 } },
    models: { 'echo-model': { backend: 'm' } },
  });
});
afterAll(async () => {
  await inner?.close();
});

function call(
  endpoint: JsonCall['endpoint'],
  body: Record<string, unknown>,
  signal = new AbortController().signal,
): JsonCall {
  return {
    kind: 'json',
    endpoint,
    model: 'echo-model',
    body: { model: 'echo-model', ...body },
    stream: body.stream === true,
    signal,
    requestId: 'req_test',
  };
}

async function text(response: BackendResponse): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of response.body) parts.push(chunk);
  return Buffer.concat(parts).toString('utf8');
}

function sseData(raw: string): unknown[] {
  return raw
    .split('\n\n')
    .map((event) =>
      event
        .split('\n')
        .find((line) => line.startsWith('data: '))
        ?.slice(6),
    )
    .filter((data): data is string => data !== undefined && data !== '[DONE]')
    .map((data) => JSON.parse(data));
}

describe.each(implementations)('Backend contract: $name', ({ make }) => {
  let backend: Backend;
  beforeAll(() => {
    backend = make();
  });
  afterAll(async () => {
    await backend.close();
  });

  it('answers chat as JSON, spec-valid', async () => {
    const response = await backend.send(
      call('chat.completions', { messages: [{ role: 'user', content: 'hello' }] }),
    );
    expect(response.status).toBe(200);
    expect(response.contentType).toMatch(/json/);
    const body = JSON.parse(await text(response));
    expectChatCompletion(body);
    expect(body.choices[0].message.content).toBe('hello');
  });

  it('streams chat as SSE ending in [DONE], usage chunk when asked', async () => {
    const response = await backend.send(
      call('chat.completions', {
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'abcdef' }],
      }),
    );
    expect(response.contentType).toMatch(/^text\/event-stream/);
    const raw = await text(response);
    expect(raw.endsWith('data: [DONE]\n\n')).toBe(true);
    const chunks = sseData(raw) as Array<{
      choices: Array<{ delta: { content?: string } }>;
      usage?: unknown;
    }>;
    for (const chunk of chunks) expectChatCompletionChunk(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('abcdef');
    expect(chunks.at(-1)?.usage).toBeTruthy();
  });

  it('answers legacy completions, JSON and streamed', async () => {
    const json = JSON.parse(await text(await backend.send(call('completions', { prompt: 'p1' }))));
    expectCompletion(json);
    const raw = await text(await backend.send(call('completions', { prompt: 'p1', stream: true })));
    for (const chunk of sseData(raw)) expectCompletionChunk(chunk);
  });

  it('answers embeddings in both encodings', async () => {
    const floats = JSON.parse(
      await text(await backend.send(call('embeddings', { input: ['a', 'b'], encoding_format: 'float' }))),
    );
    expectEmbeddingResponse(floats);
    expect(floats.data).toHaveLength(2);
    const base64 = JSON.parse(
      await text(await backend.send(call('embeddings', { input: 'a', encoding_format: 'base64' }))),
    );
    expectEmbeddingResponse(base64);
    expect(typeof base64.data[0].embedding).toBe('string');
  });

  it('answers the Responses API, JSON and named-event streams without [DONE]', async () => {
    const json = JSON.parse(await text(await backend.send(call('responses', { input: 'resp text' }))));
    expectResponse(json);
    expect(json.output[0].content[0].text).toBe('resp text');
    const raw = await text(await backend.send(call('responses', { input: 'resp text', stream: true })));
    expect(raw).not.toContain('[DONE]');
    expect(raw).toMatch(/^event: response\.created\n/);
    const events = sseData(raw) as Array<{ type: string }>;
    for (const event of events) expectResponseStreamEvent(event);
    expect(events.at(-1)?.type).toBe('response.completed');
  });

  it('throws upstream 4xx as UpstreamClientError carrying the OpenAI body', async () => {
    const failing = backend.send(
      call('chat.completions', { messages: [{ role: 'user', content: '[[mock:error:429]]' }] }),
    );
    await expect(failing).rejects.toBeInstanceOf(UpstreamClientError);
    await failing.catch((error: UpstreamClientError) => {
      expect(error.status).toBe(429);
      expect(JSON.parse(error.upstreamBody.toString()).error.code).toBe('rate_limit_exceeded');
    });
  });

  it('throws upstream 5xx as a 502 UpstreamError', async () => {
    const failing = backend.send(
      call('chat.completions', { messages: [{ role: 'user', content: '[[mock:error:503]]' }] }),
    );
    await expect(failing).rejects.toBeInstanceOf(UpstreamError);
    await failing.catch((error: GatewayError) => expect(error.status).toBe(502));
  });

  it('stops when the caller aborts', async () => {
    const controller = new AbortController();
    const pending = backend.send(
      call(
        'chat.completions',
        { messages: [{ role: 'user', content: '[[mock:delay:5000]]' }] },
        controller.signal,
      ),
    );
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toSatisfy(
      (error: unknown) => error instanceof ClientAbortedError || (error as Error).name === 'AbortError',
    );
  });

  it('reports health and says which endpoints it supports', async () => {
    await expect(backend.checkHealth(AbortSignal.timeout(2000))).resolves.toBeUndefined();
    expect(backend.supports('chat.completions')).toBe(true);
    expect(backend.supports('embeddings')).toBe(true);
  });
});
