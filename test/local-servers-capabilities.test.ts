import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalServerBackend } from '../src/backends/local-servers/local-server-backend.js';
import { parseConfig } from '../src/config/load-config.js';
import { LOCAL_SERVER_TYPES, type LocalServerConfig } from '../src/config/local-server-schema.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type FakeLocalServer, startFakeLocalServer } from './support/fake-local-servers.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { FIXTURE_USAGE } from './support/openai-fixtures.js';
import { pollUntil } from './support/poll.js';
import { expectChatCompletionChunk, expectErrorResponse } from './support/spec-validator.js';

/**
 * What the presets hide: per-server capability defaults (overridable in config) and what the
 * gateway does when one is off: a clear 400 for tools, the unsupported-endpoint 400 for
 * embeddings, `supports('responses')` false (the Responses translation takes over), and streamed
 * usage counted by the gateway and marked estimated when the server sends none.
 */

let gw: TestGateway | undefined;
const servers: FakeLocalServer[] = [];
const backends: LocalServerBackend[] = [];

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await Promise.all(backends.splice(0).map((backend) => backend.close()));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function fake(...args: Parameters<typeof startFakeLocalServer>) {
  const server = await startFakeLocalServer(...args);
  servers.push(server);
  return server;
}

function backendFor(config: Record<string, unknown>): LocalServerBackend {
  const parsed = parseConfig({ backends: { x: config }, models: { m: { backend: 'x' } } }, {}, 'test');
  const backend = new LocalServerBackend('x', parsed.backends.x as LocalServerConfig);
  backends.push(backend);
  return backend;
}

describe('capability defaults', () => {
  it('each preset says which of responses and embeddings it serves; config overrides it', async () => {
    const server = await fake('vllm', { models: ['m'] });
    const supports = (type: string, capabilities: Record<string, boolean> = {}) => {
      const backend = backendFor({ type, baseUrl: server.baseUrl, capabilities });
      return {
        responses: backend.supports('responses'),
        embeddings: backend.supports('embeddings'),
        chat: backend.supports('chat.completions'),
        capabilities: backend.capabilities,
      };
    };
    expect(Object.fromEntries(LOCAL_SERVER_TYPES.map((type) => [type, supports(type)]))).toEqual({
      ollama: {
        responses: false,
        embeddings: true,
        chat: true,
        capabilities: { responses: false, embeddings: true, tools: true, streamUsage: true },
      },
      vllm: {
        responses: true,
        embeddings: true,
        chat: true,
        capabilities: { responses: true, embeddings: true, tools: true, streamUsage: true },
      },
      'llamacpp-server': {
        responses: false,
        embeddings: true,
        chat: true,
        capabilities: { responses: false, embeddings: true, tools: true, streamUsage: true },
      },
      lmstudio: {
        responses: true,
        embeddings: true,
        chat: true,
        capabilities: { responses: true, embeddings: true, tools: true, streamUsage: false },
      },
    });
    expect(supports('ollama', { responses: true, embeddings: false })).toMatchObject({
      responses: true,
      embeddings: false,
      capabilities: { responses: true, embeddings: false, tools: true, streamUsage: true },
    });
  });
});

describe('a capability turned off', () => {
  async function llamaServer(capabilities: Record<string, boolean>) {
    const server = await fake('llamacpp-server', { models: ['qwen'] });
    gw = await startGateway({
      backends: { llama: { type: 'llamacpp-server', baseUrl: server.baseUrl, capabilities } },
      models: { qwen: { backend: 'llama' } },
    });
    return { server, client: new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 }) };
  }

  const tools = [
    {
      type: 'function' as const,
      function: { name: 'get_weather', parameters: { type: 'object', properties: {} } },
    },
  ];

  it('tools: false -> a 400 naming the parameter, and nothing is sent', async () => {
    const { server, client } = await llamaServer({ tools: false, embeddings: false });
    const failure = await client.chat.completions
      .create({ model: 'qwen', tools, messages: [{ role: 'user', content: 'weather?' }] })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OpenAI.BadRequestError);
    const error = failure as InstanceType<typeof OpenAI.BadRequestError>;
    expectErrorResponse({ error: error.error });
    expect(error.code).toBe('unsupported_parameter');
    expect(error.param).toBe('tools');
    expect(error.message).toContain(
      "The model 'qwen' on backend 'llama' (llama.cpp server) is configured without tool calls (capabilities.tools: false)",
    );
    expect(server.seen('/v1/chat/completions')).toEqual([]);
    // Without tools the same model answers.
    const plain = await client.chat.completions.create({
      model: 'qwen',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(plain.choices[0]?.message.content).toContain('hello from llamacpp-server');
  });

  it('embeddings: false -> the unsupported-endpoint 400, and nothing is sent', async () => {
    const { server, client } = await llamaServer({ embeddings: false });
    const failure = await client.embeddings
      .create({ model: 'qwen', input: 'text' })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OpenAI.BadRequestError);
    const error = failure as InstanceType<typeof OpenAI.BadRequestError>;
    expect(error.code).toBe('unsupported_endpoint');
    expect((error.error as { message?: string }).message).toBe(
      "The model 'qwen' is served by a backend that does not support embeddings.",
    );
    expect(server.seen('/v1/embeddings')).toEqual([]);
  });

  it('with the defaults, tools and embeddings go through to the server', async () => {
    const { server, client } = await llamaServer({});
    await client.chat.completions.create({
      model: 'qwen',
      tools,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(server.seen('/v1/chat/completions')[0]?.json?.tools).toEqual(tools);
    const embedded = await client.embeddings.create({ model: 'qwen', input: 'text' });
    expect(embedded.data[0]?.embedding).toHaveLength(3);
  });
});

interface LoggedRequest {
  stream: boolean;
  estimated: boolean;
  prompt_tokens: number;
  completion_tokens: number;
}

describe('streamed usage', () => {
  async function streamThrough(type: 'lmstudio' | 'vllm') {
    const server = await fake(type, { models: ['m'], streamUsage: type !== 'lmstudio' });
    gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: { srv: { type, baseUrl: server.baseUrl } },
      models: { 'local/*': { backend: 'srv' } },
    });
    const admin = new AdminHttp(gw.url);
    const key = await admin.teamKey();
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'local/m',
      stream: true,
      messages: [{ role: 'user', content: 'count to three' }],
    });
    let text = '';
    for await (const chunk of stream) {
      expectChatCompletionChunk(chunk);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('one two three');
    // The request is recorded just after the stream ends.
    const logged = await pollUntil(
      async () => (await admin.ok<{ data: LoggedRequest[] }>('GET', '/requests', undefined, 200)).data,
      (found) => found.length > 0,
    );
    return { server, logged };
  }

  it('a server that sends none (LM Studio): not asked for it, counted by the gateway, marked estimated', async () => {
    const { server, logged } = await streamThrough('lmstudio');
    const sent = server.seen('/v1/chat/completions')[0]?.json;
    expect(sent?.stream).toBe(true);
    expect(sent).not.toHaveProperty('stream_options');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ stream: true, estimated: true });
    expect(logged[0]?.prompt_tokens).toBeGreaterThan(0);
    expect(logged[0]?.completion_tokens).toBeGreaterThanOrEqual(3);
  });

  it('a server that sends none, and a client that asked for the usage chunk: the gateway sends its count, before [DONE]', async () => {
    const server = await fake('lmstudio', { models: ['m'], streamUsage: false });
    gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: { srv: { type: 'lmstudio', baseUrl: server.baseUrl } },
      models: { 'local/*': { backend: 'srv' } },
    });
    const admin = new AdminHttp(gw.url);
    const key = await admin.teamKey();
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'local/m',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'count to three' }],
      }),
    });
    const events = (await response.text()).split('\n\n').filter((event) => event !== '');
    // The server sent neither the option nor a usage chunk; the client still gets one, last.
    expect(server.seen('/v1/chat/completions')[0]?.json).not.toHaveProperty('stream_options');
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event.slice('data: '.length)));
    for (const chunk of chunks) expectChatCompletionChunk(chunk);
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.id).toBe(chunks[0].id);
    expect(last.model).toBe(chunks[0].model);
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === undefined || chunk.usage === null)).toBe(
      true,
    );
    const logged = await pollUntil(
      async () => (await admin.ok<{ data: LoggedRequest[] }>('GET', '/requests', undefined, 200)).data,
      (found) => found.length > 0,
    );
    // What the client was told is what was recorded (and charged).
    expect(logged[0]).toMatchObject({
      stream: true,
      estimated: true,
      prompt_tokens: last.usage.prompt_tokens,
      completion_tokens: last.usage.completion_tokens,
    });
    expect(last.usage.completion_tokens).toBeGreaterThanOrEqual(3);
    expect(last.usage.total_tokens).toBe(last.usage.prompt_tokens + last.usage.completion_tokens);

    // The official SDK reads it as it reads OpenAI's own.
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'local/m',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'count to three' }],
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) usage = chunk.usage ?? usage;
    expect(usage).toEqual(last.usage);
  });

  it('a server that reports it (vLLM): asked for it, and its numbers are used', async () => {
    const { server, logged } = await streamThrough('vllm');
    expect(server.seen('/v1/chat/completions')[0]?.json?.stream_options).toEqual({ include_usage: true });
    expect(logged[0]).toMatchObject({
      stream: true,
      estimated: false,
      prompt_tokens: FIXTURE_USAGE.prompt_tokens,
      completion_tokens: FIXTURE_USAGE.completion_tokens,
    });
  });
});
