import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectModel, expectModelList } from './support/spec-validator.js';

let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  upstream = new FakeUpstream();
  upstream.on('GET', '/v1/models', async (_request, res) => {
    sendJson(res, 200, {
      object: 'list',
      data: [
        { id: 'up-1', object: 'model', created: 1, owned_by: 'someone' },
        { id: 'meta-llama/Llama-3-8B', object: 'model', created: 1, owned_by: 'vllm' },
      ],
    });
  });
  const base = await upstream.start();
  gw = await startGateway({
    backends: {
      upstream: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' },
      mock: { type: 'mock' },
    },
    models: {
      mock: { backend: 'mock' },
      'team/special-model': { backend: 'mock', ownedBy: 'platform-team' },
      'vllm/*': { backend: 'upstream' },
    },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'client-key', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('models', () => {
  it('lists configured models and, under a wildcard, what the upstream offers', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    expect(ids).toEqual(['mock', 'team/special-model', 'vllm/up-1', 'vllm/meta-llama/Llama-3-8B']);
    const raw = await (await fetch(`${gw.baseURL}/models`)).json();
    expectModelList(raw);
  });

  it('retrieves a model whose id contains a slash, raw or %2F-encoded', async () => {
    const viaSdk = await client.models.retrieve('team/special-model');
    expectModel(viaSdk);
    expect(viaSdk).toMatchObject({ id: 'team/special-model', owned_by: 'platform-team', object: 'model' });
    for (const path of ['team/special-model', 'team%2Fspecial-model']) {
      const response = await fetch(`${gw.baseURL}/models/${path}`);
      expect(response.status).toBe(200);
      expect(((await response.json()) as { id: string }).id).toBe('team/special-model');
    }
  });

  it('retrieves a wildcard model the upstream has, and 404s one it lacks', async () => {
    const found = await client.models.retrieve('vllm/meta-llama/Llama-3-8B');
    expect(found.id).toBe('vllm/meta-llama/Llama-3-8B');
    await expect(client.models.retrieve('vllm/not-there')).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    await expect(client.models.retrieve('nothing')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
