import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { StreamShutdown } from '../src/http/stream-shutdown.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway } from './support/gateway.js';
import { exitCodeOf, type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { pollUntil } from './support/poll.js';
import { redisForTests } from './support/redis.js';

/**
 * Streams still relayed when shutdown's grace period ends: each ends with one error event in its
 * surface's shape saying the gateway is shutting down (a 503 to send again), then its end, before
 * the connections are closed; each is charged what it relayed (not refunded as a failed stream)
 * and recorded. Real gateway processes, an upstream whose streams never end.
 */

const gateways: GatewayProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const gateway of gateways.splice(0)) await gateway.stop();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Sends its first event and then nothing, until the gateway lets the request go. */
function endless(res: ServerResponse, event: string): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(event);
}

async function endlessUpstream(): Promise<FakeUpstream> {
  const chunk = {
    id: 'c',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: { role: 'assistant', content: 'one two three four' }, finish_reason: null }],
  };
  const delta = { type: 'response.output_text.delta', item_id: 'm', output_index: 0, content_index: 0 };
  const upstream = new FakeUpstream()
    .on('POST', '/v1/chat/completions', (_request, res) => endless(res, `data: ${JSON.stringify(chunk)}\n\n`))
    .on('POST', '/v1/responses', (_request, res) =>
      endless(
        res,
        `event: response.output_text.delta\ndata: ${JSON.stringify({ ...delta, delta: 'one two three four', sequence_number: 1 })}\n\n`,
      ),
    );
  await upstream.start();
  cleanups.push(() => upstream.stop());
  return upstream;
}

function configFile(upstream: FakeUpstream, extra: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-stream-stop-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tollgate.yaml');
  writeFileSync(
    path,
    [
      ...extra,
      `backends: { up: { type: openai, baseUrl: "http://127.0.0.1:${upstream.port}/v1", apiKey: k } }`,
      'models: { gpt-4o-mini: { backend: up } }',
      '',
    ].join('\n'),
  );
  return path;
}

async function start(env: Record<string, string>): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess({ TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY, ...env });
  gateways.push(gateway);
  return gateway;
}

type Surface = 'chat' | 'messages' | 'responses';

const REQUESTS: Record<Surface, { path: string; headers: Record<string, string>; body: unknown }> = {
  chat: {
    path: '/v1/chat/completions',
    headers: {},
    body: {
      model: 'gpt-4o-mini',
      stream: true,
      messages: [{ role: 'user', content: 'count to a thousand' }],
    },
  },
  messages: {
    path: '/v1/messages',
    headers: { 'anthropic-version': '2023-06-01' },
    body: {
      model: 'gpt-4o-mini',
      stream: true,
      max_tokens: 1000,
      messages: [{ role: 'user', content: 'count to a thousand' }],
    },
  },
  responses: {
    path: '/v1/responses',
    headers: {},
    body: { model: 'gpt-4o-mini', stream: true, input: 'count to a thousand' },
  },
};

interface OpenStream {
  id: string;
  /** Reads the rest of the stream; resolves with all of it once it ends (rejects on a reset). */
  rest: () => Promise<string>;
}

/** Opens a stream with `key` and waits for its first bytes: it is being relayed. */
async function openStream(url: string, key: string, surface: Surface): Promise<OpenStream> {
  const request = REQUESTS[surface];
  const id = `stop-${surface}-${crypto.randomUUID()}`;
  const response = await fetch(`${url}${request.path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      'x-request-id': id,
      ...request.headers,
    },
    body: JSON.stringify(request.body),
  });
  expect(response.status).toBe(200);
  const reader = response.body?.getReader();
  if (!reader) throw new Error('no body');
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('data:')) {
    const first = await reader.read();
    if (first.done) throw new Error(`${surface}: the stream ended before its first event`);
    text += decoder.decode(first.value, { stream: true });
  }
  return {
    id,
    rest: async () => {
      for (;;) {
        const next = await reader.read();
        if (next.done) return text;
        text += decoder.decode(next.value, { stream: true });
      }
    },
  };
}

/** The stream's events, each as its `event:` name (if any) and parsed `data:`. */
function eventsOf(text: string): Array<{ name: string | undefined; data: unknown }> {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => {
      const lines = block.split('\n');
      const name = lines
        .find((line) => line.startsWith('event:'))
        ?.slice(6)
        .trim();
      const data = lines
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trim())
        .join('\n');
      return { name, data: data === '[DONE]' ? data : JSON.parse(data) };
    });
}

const SHUTTING_DOWN = /shutting down.*send the request again/;

/** The last event is the surface's error event for a 503 to send again, and the only error. */
function expectEndsWithShutdownError(surface: Surface, text: string): void {
  expect(text.endsWith('\n\n')).toBe(true);
  expect(text).not.toContain('[DONE]');
  const events = eventsOf(text);
  const last = events.at(-1);
  const errors = events.filter(
    (event) => event.name === 'error' || (event.data as { error?: unknown }).error !== undefined,
  );
  expect(errors).toHaveLength(1);
  if (surface === 'chat') {
    expect(last?.name).toBeUndefined();
    expect(last?.data).toEqual({
      error: {
        message: expect.stringMatching(SHUTTING_DOWN),
        type: 'server_error',
        param: null,
        code: 'service_unavailable',
      },
    });
  } else if (surface === 'messages') {
    expect(last?.name).toBe('error');
    expect(last?.data).toMatchObject({
      type: 'error',
      error: { type: 'api_error', message: expect.stringMatching(SHUTTING_DOWN) },
    });
  } else {
    expect(last?.name).toBe('error');
    expect(last?.data).toMatchObject({
      type: 'error',
      code: 'service_unavailable',
      message: expect.stringMatching(SHUTTING_DOWN),
      error: { type: 'server_error', code: 'service_unavailable' },
    });
  }
}

describe('streams still relayed when the grace period ends', () => {
  it("end with one error event in their surface's shape, are charged what they relayed, and the process exits", async () => {
    const upstream = await endlessUpstream();
    const gateway = await start({
      TOLLGATE_CONFIG: configFile(upstream, ['server: { shutdownGraceMs: 300 }']),
    });
    const key = await new AdminHttp(gateway.url).teamKey();
    const surfaces: Surface[] = ['chat', 'messages', 'responses'];
    const streams = await Promise.all(surfaces.map((surface) => openStream(gateway.url, key, surface)));
    // The OpenAI SDK reads the event as the stream's failure.
    const sdk = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key, maxRetries: 0 });
    const sdkStream = await sdk.chat.completions.create({
      ...(REQUESTS.chat.body as { model: string; messages: Array<{ role: 'user'; content: string }> }),
      stream: true,
    });
    const chunks = sdkStream[Symbol.asyncIterator]();
    expect((await chunks.next()).done).toBe(false);

    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    // Ended, not reset: each ends cleanly with its error event.
    const texts = await Promise.all(streams.map((stream) => stream.rest()));
    for (const [i, surface] of surfaces.entries()) expectEndsWithShutdownError(surface, texts[i] ?? '');
    const sdkError = await chunks.next().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(sdkError).toBeInstanceOf(OpenAI.APIError);
    expect((sdkError as InstanceType<typeof OpenAI.APIError>).message).toMatch(SHUTTING_DOWN);
    expect(await exit).toBe(0);

    // Charged what was relayed (the prompt and the output counted), not refunded as a failed stream.
    const lines = gateway
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const stream of streams) {
      const line = lines.find((l) => l.msg === 'request' && l.request_id === stream.id);
      expect(line).toMatchObject({ status: 200, prompt_tokens: expect.any(Number) });
      expect(line?.stream_error).toBeUndefined();
      expect(line?.completion_tokens).toBeGreaterThan(0);
    }
  });

  it('do so in every worker, and their usage is recorded and charged to the budget (workers on Redis)', async () => {
    const redis = await redisForTests();
    if (!redis) return;
    cleanups.push(() => redis.stop());
    const upstream = await endlessUpstream();
    const env = {
      TOLLGATE_CONFIG: configFile(upstream, ['server: { shutdownGraceMs: 300, workers: 2 }']),
      // A database of its own; records are told apart by their team anyway.
      REDIS_URL: `${redis.url}/13`,
    };
    const gateway = await start(env);
    const admin = new AdminHttp(gateway.url);
    const team = await admin.createTeam({
      name: `stop-${crypto.randomUUID().slice(0, 8)}`,
      budgets: [{ period: 'day', max_tokens: 1_000_000 }],
    });
    const { key } = await admin.createKey({ team_id: team.id, name: 'streams' });
    const surfaces: Surface[] = ['chat', 'messages', 'chat', 'messages'];
    const streams = await Promise.all(surfaces.map((surface) => openStream(gateway.url, key, surface)));

    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    const texts = await Promise.all(streams.map((stream) => stream.rest()));
    for (const [i, surface] of surfaces.entries()) expectEndsWithShutdownError(surface, texts[i] ?? '');
    expect(await exit).toBe(0);

    const reader = new AdminHttp((await start({ ...env, TOLLGATE_CONFIG: configFile(upstream) })).url);
    const records = (
      await reader.ok<{
        data: Array<{ request_id: string; team_id: string; outcome: string; total_tokens: number }>;
      }>('GET', '/requests?limit=100')
    ).data.filter((record) => record.team_id === team.id);
    expect(records.map((r) => r.request_id).sort()).toEqual(streams.map((s) => s.id).sort());
    for (const record of records) {
      expect(record.outcome).toBe('served');
      expect(record.total_tokens).toBeGreaterThan(0);
    }
    const standing = (
      await reader.ok<{ standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> } }>(
        'GET',
        `/teams/${team.id}`,
      )
    ).standing.budgets[0];
    expect(standing?.reserved_tokens).toBe(0);
    expect(standing?.spent_tokens).toBe(records.reduce((sum, r) => sum + r.total_tokens, 0));
  });
});

describe('a stream whose first event comes after the grace period ended', () => {
  it('is answered with an ordinary 503 to send again, nothing committed (in process)', async () => {
    let arrived!: () => void;
    const upstreamHas = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (_request, res) => {
      arrived();
      await released;
      endless(res, `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [] })}\n\n`);
    });
    await upstream.start();
    cleanups.push(() => upstream.stop());
    const streamShutdown = new StreamShutdown();
    const gateway = await startGateway(
      {
        backends: { up: { type: 'openai', baseUrl: `http://127.0.0.1:${upstream.port}/v1`, apiKey: 'k' } },
        models: { 'gpt-4o-mini': { backend: 'up' } },
      },
      {},
      { streamShutdown },
    );
    cleanups.push(() => gateway.close());
    const answer = fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(REQUESTS.chat.body),
    });
    await upstreamHas;
    // No stream is relayed yet: nothing to wait for.
    await streamShutdown.stop(1_000, 25 * 1024 * 1024);
    release();
    const response = await answer;
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(await response.json()).toEqual({
      error: {
        message: expect.stringMatching(SHUTTING_DOWN),
        type: 'server_error',
        param: null,
        code: 'service_unavailable',
      },
    });
    // The upstream request is let go, not left open for the store and backends to wait on.
    await upstream.waitForAbort();
  });
});

describe('requests with no answer yet when the grace period ends', () => {
  it("are answered with a 503 in their API's shape, not cut, and the process exits", async () => {
    // Answers nothing, not even headers, until the gateway lets the request go.
    const silent = new FakeUpstream().on('POST', '/v1/chat/completions', () => {});
    await silent.start();
    cleanups.push(() => silent.stop());
    const gateway = await start({
      TOLLGATE_CONFIG: configFile(silent, ['server: { shutdownGraceMs: 300 }']),
    });
    const key = await new AdminHttp(gateway.url).teamKey();
    const ask = (surface: Surface, stream: boolean) => {
      const request = REQUESTS[surface];
      return fetch(`${gateway.url}${request.path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...request.headers },
        body: JSON.stringify({ ...(request.body as object), stream }),
      });
    };
    const answers = [ask('chat', false), ask('chat', true), ask('messages', true)];
    // Every one is waiting at the upstream.
    await pollUntil(
      async () => silent.requests.length,
      (count) => count === 3,
    );
    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    const [json, stream, messages] = await Promise.all(answers);
    for (const response of [json, stream]) {
      expect(response?.status).toBe(503);
      const body = (await response?.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('service_unavailable');
      expect(body.error.message).toMatch(SHUTTING_DOWN);
    }
    expect(messages?.status).toBe(503);
    expect(messages?.headers.get('request-id')).toBeTruthy();
    const anthropic = (await messages?.json()) as { type: string; error: { message: string } };
    expect(anthropic.type).toBe('error');
    expect(anthropic.error.message).toMatch(SHUTTING_DOWN);
    expect(await exit).toBe(0);
  });
});
