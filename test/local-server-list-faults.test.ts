import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { LocalServerType } from '../src/config/local-server-schema.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type FakeLocalServer, startFakeLocalServer } from './support/fake-local-servers.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectErrorResponse } from './support/spec-validator.js';

/**
 * A local server whose model list the gateway cannot use: not read yet (the first probe is still
 * waiting), not JSON, endless; and an Ollama configured at its root instead of `/v1`.
 */

let gw: TestGateway | undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await gw?.close();
  gw = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** A promise the test resolves: an event to wait for. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

type ModelsAnswer = (req: IncomingMessage, res: ServerResponse) => void;

/** A vLLM-like server: `/v1/models` as scripted, and its own (non-OpenAI) 404 for every model. */
async function vllmLike(models: ModelsAnswer): Promise<{ baseUrl: string; chats: string[] }> {
  const chats: string[] = [];
  const server: Server = createServer((req, res) => {
    if (req.url === '/v1/models') return models(req, res);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const model = String((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model?: unknown }).model);
      chats.push(model);
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          object: 'error',
          message: `The model \`${model}\` does not exist.`,
          type: 'NotFoundError',
          param: null,
          code: 404,
        }),
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { baseUrl: `http://127.0.0.1:${port}/v1`, chats };
}

async function gatewayOn(baseUrl: string, type: LocalServerType = 'vllm') {
  gw = await startGateway({
    admin: { key: TEST_ADMIN_KEY },
    readiness: { cacheMs: 0 },
    backends: {
      srv: { type, baseUrl, discovery: { refreshMs: 3_600_000, retryMs: 3_600_000, timeoutMs: 600_000 } },
    },
    models: { 'v/*': { backend: 'srv' } },
  });
  return new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
}

async function notFound(client: OpenAI, model: string) {
  const failure = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: 'hi' }] })
    .catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(OpenAI.NotFoundError);
  const error = failure as InstanceType<typeof OpenAI.NotFoundError>;
  expectErrorResponse({ error: error.error });
  return error;
}

describe("a local server's 404 while its model list is not known", () => {
  it('first probe still waiting: model_not_found in OpenAI’s shape, not the server’s own body', async () => {
    const asked = signal();
    const held: ServerResponse[] = [];
    const server = await vllmLike((_req, res) => {
      held.push(res);
      asked.resolve();
    });
    const client = await gatewayOn(server.baseUrl);
    await asked.promise;
    const error = await notFound(client, 'v/not-loaded');
    expect(error.code).toBe('model_not_found');
    expect(error.param).toBe('model');
    expect((error.error as { message?: unknown }).message).toBe(
      "The model 'v/not-loaded' ('not-loaded' on backend 'srv' (vLLM)) is not available: the server answered 404 for it. Pull or load it there first.",
    );
    expect(server.chats).toEqual(['not-loaded']);
    for (const res of held) res.end();
  });

  it('a list that is not JSON: the same', async () => {
    const server = await vllmLike((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object":"list","data":[{"id":"x"');
    });
    const client = await gatewayOn(server.baseUrl);
    const admin = new AdminHttp(gw?.url ?? '');
    // Probed: it answers, with no list the gateway can read.
    await admin.ok('POST', '/backends/srv/refresh', undefined, 200);
    const error = await notFound(client, 'v/not-loaded');
    expect(error.code).toBe('model_not_found');
    expect(error.message).toMatch(/the server answered 404 for it/);
  });
});

describe("a local server's model list that never ends", () => {
  it('is read up to 4 MB, then the connection is dropped; the server counts as up with no list', async () => {
    let written = 0;
    const closed = signal();
    const chunk = Buffer.from('{"id":"some-model","object":"model"},'.repeat(2_000));
    const server = await vllmLike((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"object":"list","data":[');
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
      };
      res.on('drain', pump);
      res.on('close', () => closed.resolve());
      pump();
    });
    const client = await gatewayOn(server.baseUrl);
    // The gateway hangs up (with discovery.timeoutMs at 10 minutes, nothing else would end it).
    await closed.promise;
    expect(written).toBeLessThan(64 * 1024 * 1024);
    const admin = new AdminHttp(gw?.url ?? '');
    const deployments = await admin.ok<{ data: Array<{ availability?: { state: string } }> }>(
      'GET',
      '/deployments',
      undefined,
      200,
    );
    expect(deployments.data[0]?.availability?.state).toBe('available');
    expect((await client.models.list()).data.map((model) => model.id)).toEqual([]);
    expect(gw?.logs).toContainEqual(
      expect.objectContaining({
        level: 40,
        backend: 'srv',
        msg: 'local server: its model list is too large to read; requests are forwarded without checking it',
      }),
    );
    // Unlisted, so a 404 is the model's.
    expect((await notFound(client, 'v/absent')).code).toBe('model_not_found');
  });
});

describe('a local server configured at its root (no /v1 on baseUrl)', () => {
  it.each([
    { server: 'Ollama', kind: 'ollama', label: 'Ollama', v1ModelsStatus: undefined },
    // Its native list at the root tells, too.
    { server: 'an Ollama without /v1/models', kind: 'ollama', label: 'Ollama', v1ModelsStatus: 404 },
    { server: 'vLLM', kind: 'vllm', label: 'vLLM', v1ModelsStatus: undefined },
    { server: 'LM Studio', kind: 'lmstudio', label: 'LM Studio', v1ModelsStatus: undefined },
  ] as const)(
    '$server: unavailable, saying to add /v1, in /readyz, /admin/deployments and the log; no request is sent',
    async ({ kind, label, v1ModelsStatus }) => {
      const server: FakeLocalServer = await startFakeLocalServer(kind, {
        models: ['llama3.2:1b'],
        v1ModelsStatus,
      });
      cleanups.push(() => server.stop());
      const root = server.baseUrl.replace(/\/v1$/, '');
      const client = await gatewayOn(root, kind);
      const reason =
        "its baseUrl is the server's root, not its OpenAI-compatible API (add /v1 to the end of baseUrl)";

      const readyz = await fetch(`${gw?.url}/readyz`);
      expect(readyz.status).toBe(503);
      const report = (await readyz.json()) as {
        backends: Record<string, { ok: boolean; error?: string; retry_after_ms?: number }>;
      };
      expect(report.backends.srv).toMatchObject({
        ok: false,
        error: `Backend 'srv' (${label}) is misconfigured: ${reason}.`,
      });
      expect(JSON.stringify(report)).not.toContain(String(new URL(root).port));

      const admin = new AdminHttp(gw?.url ?? '');
      const deployments = await admin.ok<{ data: Array<{ availability?: Record<string, unknown> }> }>(
        'GET',
        '/deployments',
        undefined,
        200,
      );
      expect(deployments.data[0]?.availability).toMatchObject({ state: 'unavailable', reason });
      const refresh = await admin.call<{ error: { message: string } }>('POST', '/backends/srv/refresh');
      expect(refresh.status).toBe(503);
      expect(refresh.body.error.message).toMatch(
        /^Backend 'srv' is misconfigured: .*add \/v1 to the end of baseUrl/,
      );
      expect(gw?.logs).toContainEqual(
        expect.objectContaining({
          level: 50,
          backend: 'srv',
          reason,
          msg: 'local server is misconfigured; routing skips it until its config is fixed',
        }),
      );

      const failure = await client.chat.completions
        .create({ model: 'v/llama3.2:1b', messages: [{ role: 'user', content: 'hi' }] })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(OpenAI.APIError);
      expect((failure as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((failure as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_unavailable');
      expect(server.requests.filter((request) => request.method === 'POST')).toEqual([]);
    },
  );

  it('with /v1 it serves (the native list is then only the fallback)', async () => {
    const ollama: FakeLocalServer = await startFakeLocalServer('ollama', { models: ['llama3.2:1b'] });
    cleanups.push(() => ollama.stop());
    const client = await gatewayOn(ollama.baseUrl, 'ollama');
    expect((await fetch(`${gw?.url}/readyz`)).status).toBe(200);
    const answer = await client.chat.completions.create({
      model: 'v/llama3.2:1b',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(answer.choices[0]?.message.content).toContain('hello from ollama');
  });
});
