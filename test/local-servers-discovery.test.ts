import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import { LOCAL_SERVER_TYPES, type LocalServerType } from '../src/config/local-server-schema.js';
import { AdminHttp, type ErrorBody, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type FakeLocalServer, startFakeLocalServer } from './support/fake-local-servers.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectChatCompletion, expectErrorResponse, expectModelList } from './support/spec-validator.js';

/**
 * The local-server presets (`type: ollama | vllm | llamacpp-server | lmstudio`): model discovery
 * from each server's own endpoints, `local/*` listing and routing what is there, refresh on
 * demand through the admin API. Periodic refreshes are set far apart: every refresh here is asked.
 */

let gw: TestGateway | undefined;
const servers: FakeLocalServer[] = [];

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function fake(kind: LocalServerType, models: string[], extra: { v1ModelsStatus?: number } = {}) {
  const server = await startFakeLocalServer(kind, { models, ...extra });
  servers.push(server);
  return server;
}

async function gatewayFor(kind: LocalServerType, server: FakeLocalServer) {
  gw = await startGateway({
    admin: { key: TEST_ADMIN_KEY },
    backends: {
      srv: { type: kind, baseUrl: server.baseUrl, discovery: { refreshMs: 3_600_000, retryMs: 3_600_000 } },
    },
    models: { 'local/*': { backend: 'srv' } },
  });
  return {
    gw,
    client: new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 }),
    admin: new AdminHttp(gw.url),
  };
}

describe('local-server presets: defaults', () => {
  it('each type has its server’s default base URL, needs no key, and takes the openai timeouts', () => {
    const config = parseConfig(
      {
        backends: {
          o: { type: 'ollama' },
          v: { type: 'vllm', apiKey: '' },
          l: { type: 'llamacpp-server', timeouts: { firstByteMs: 1_000 } },
          s: { type: 'lmstudio', baseUrl: 'http://10.0.0.5:4321/v1', capabilities: { tools: false } },
        },
        models: { m: { backend: 'o' } },
      },
      {},
      'test',
    );
    const { o, v, l, s } = config.backends;
    expect(o).toMatchObject({ type: 'ollama', baseUrl: 'http://127.0.0.1:11434/v1' });
    expect(v).toMatchObject({ type: 'vllm', baseUrl: 'http://127.0.0.1:8000/v1' });
    expect([o?.type === 'ollama' && o.apiKey, v?.type === 'vllm' && v.apiKey]).toEqual([
      undefined,
      undefined,
    ]);
    expect(l).toMatchObject({ baseUrl: 'http://127.0.0.1:8080/v1', timeouts: { firstByteMs: 1_000 } });
    expect(s).toMatchObject({ baseUrl: 'http://10.0.0.5:4321/v1', capabilities: { tools: false } });
    expect(o).toMatchObject({ discovery: { refreshMs: 30_000, retryMs: 5_000, timeoutMs: 5_000 } });
  });

  it('an unknown capability or discovery option is listed at boot in our words', () => {
    const parse = () =>
      parseConfig(
        {
          backends: { o: { type: 'ollama', capabilities: { vision: true }, discovery: { refreshMs: 0 } } },
          models: { m: { backend: 'o' } },
        },
        {},
        'test',
      );
    expect(parse).toThrow(
      "backends.o.capabilities: unknown option 'vision' (the options here: responses, embeddings, tools, streamUsage)",
    );
    expect(parse).toThrow('backends.o.discovery.refreshMs: must be greater than 0');
  });
});

describe('local-server presets: discovery', () => {
  it.each(LOCAL_SERVER_TYPES)(
    '%s: local/* lists the models the server has, and routes to them',
    async (kind) => {
      const server = await fake(kind, ['small-model', 'other:latest']);
      const { client } = await gatewayFor(kind, server);
      const list = await client.models.list();
      expectModelList({ object: 'list', data: list.data });
      const ids = list.data.map((model) => model.id);
      expect(ids).toEqual(expect.arrayContaining(['local/small-model', 'local/other:latest']));
      expect(list.data.find((model) => model.id === 'local/small-model')?.owned_by).toBe(kind);

      const answer = await client.chat.completions.create({
        model: 'local/other:latest',
        messages: [{ role: 'user', content: 'hi' }],
      });
      expectChatCompletion(answer);
      expect(answer.choices[0]?.message.content).toContain(`hello from ${kind}`);
      const [sent] = server.seen('/v1/chat/completions');
      expect(sent?.json?.model).toBe('other:latest');
      // No key configured: none is sent.
      expect(sent?.headers.authorization).toBeUndefined();
    },
  );

  it('ollama: when /v1/models fails, the list comes from /api/tags', async () => {
    const server = await fake('ollama', ['llama3.2:1b', 'qwen3:0.6b'], { v1ModelsStatus: 500 });
    const { client } = await gatewayFor('ollama', server);
    const ids = (await client.models.list()).data.map((model) => model.id);
    expect(ids).toEqual(expect.arrayContaining(['local/llama3.2:1b', 'local/qwen3:0.6b']));
    expect(server.seen('/api/tags').length).toBeGreaterThan(0);
  });

  it('a refresh on demand sees a model pulled after start, and requests reach it', async () => {
    const server = await fake('ollama', ['first']);
    const { client, admin } = await gatewayFor('ollama', server);
    const before = await admin.ok<{ data: Array<{ id: string }> }>(
      'POST',
      '/backends/srv/refresh',
      undefined,
      200,
    );
    expect(before.data.map((model) => model.id)).toEqual(['first']);

    // Listed once before the pull, so a list the router kept would be the stale one.
    expect((await client.models.list()).data.map((model) => model.id)).toContain('local/first');
    server.pull('pulled-later');
    const after = await admin.ok<{
      object: string;
      backend: string;
      type: string;
      availability: { state: string; checked_at: string | null };
      data: Array<{ id: string; object: string; owned_by: string }>;
    }>('POST', '/backends/srv/refresh', undefined, 200);
    expect(after).toMatchObject({
      object: 'list',
      backend: 'srv',
      type: 'ollama',
      availability: { state: 'available', retry_after_ms: null, reason: null },
    });
    expect(after.availability.checked_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(after.data).toEqual([
      { id: 'first', object: 'model', owned_by: 'ollama' },
      { id: 'pulled-later', object: 'model', owned_by: 'ollama' },
    ]);
    // Listed at once too: the router does not keep its own copy of a discovering server's list.
    const listed = await client.models.list();
    expect(listed.data.map((model) => model.id)).toContain('local/pulled-later');
    expect((await client.models.retrieve('local/pulled-later')).id).toBe('local/pulled-later');
    const answer = await client.chat.completions.create({
      model: 'local/pulled-later',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expectChatCompletion(answer);
    expect(server.seen('/v1/chat/completions').at(-1)?.json?.model).toBe('pulled-later');
  });

  it.each(LOCAL_SERVER_TYPES)(
    '%s: a model the server does not list is still forwarded; its 404 becomes model_not_found',
    async (kind) => {
      const server = await fake(kind, ['present']);
      const { client, gw: gateway } = await gatewayFor(kind, server);
      await client.models.list();
      const failure = await client.chat.completions
        .create({ model: 'local/absent', messages: [{ role: 'user', content: 'hi' }] })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(OpenAI.NotFoundError);
      const error = failure as InstanceType<typeof OpenAI.NotFoundError>;
      expect(error.code).toBe('model_not_found');
      expect(error.param).toBe('model');
      // Named as the client sent it, and as the server knows it (the name to pull there).
      expect(error.message).toContain("The model 'local/absent' ('absent' on backend 'srv'");
      expect(error.message).toContain('is not available');
      expectErrorResponse({ error: error.error });
      // Forwarded: the server was asked, and said no.
      expect(server.seen('/v1/chat/completions').map((request) => request.json?.model)).toEqual(['absent']);
      // The same on Anthropic's API, translated to chat: named as the client sent it too.
      const messages = await fetch(`${gateway.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({
          model: 'local/absent',
          max_tokens: 5,
          messages: [{ role: 'user', content: 'hi' }],
        }),
      });
      expect(messages.status).toBe(404);
      const body = (await messages.json()) as { error: { message: string } };
      expect(body.error.message).toContain("The model 'local/absent' ('absent' on backend 'srv'");
    },
  );

  it('refresh: an unknown backend is a 404, a backend that does not discover a 400', async () => {
    const server = await fake('vllm', ['m']);
    gw = await startGateway({
      admin: { key: TEST_ADMIN_KEY },
      backends: { srv: { type: 'vllm', baseUrl: server.baseUrl }, cloud: { type: 'mock' } },
      models: { 'local/*': { backend: 'srv' }, mock: { backend: 'cloud' } },
    });
    const admin = new AdminHttp(gw.url);
    const unknown = await admin.call<ErrorBody>('POST', '/backends/nope/refresh');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'backend_not_found', param: 'name' });
    expect(unknown.body.error.message).toBe("No backend named 'nope' (declared: srv, cloud).");
    const mock = await admin.call<ErrorBody>('POST', '/backends/cloud/refresh');
    expect(mock.status).toBe(400);
    expect(mock.body.error.message).toMatch(/does not discover its models/);
    expect((await new AdminHttp(gw.url, null).call('POST', '/backends/srv/refresh')).status).toBe(401);
  });
});
