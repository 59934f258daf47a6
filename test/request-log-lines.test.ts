import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RequestLines } from '../src/http/request-log.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * `log.requests` picks which requests get a `request` line. A line that is not there is only
 * proof once the request has finished: each test waits until /admin/metrics counts every request
 * it sent (the count is taken in the same call that writes or skips the line).
 */
const ADMIN_KEY = 'test-admin-key-0123456789';
let gw: TestGateway | undefined;
let upstream: FakeUpstream | undefined;

afterEach(async () => {
  await gw?.close();
  await upstream?.stop();
  gw = undefined;
  upstream = undefined;
});

const CHUNK = {
  id: 'chatcmpl-held',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'held',
  choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }],
};

async function gateway(
  requests?: RequestLines,
  env: NodeJS.ProcessEnv = {},
  upstreamUrl = 'http://127.0.0.1:9',
): Promise<TestGateway> {
  gw = await startGateway(
    {
      backends: { mock: { type: 'mock' }, upstream: { type: 'openai', baseUrl: `${upstreamUrl}/v1` } },
      models: { mock: { backend: 'mock' }, held: { backend: 'upstream' } },
      admin: { key: ADMIN_KEY },
      ...(requests === undefined ? {} : { log: { level: 'info', requests } }),
    },
    env,
  );
  return gw;
}

async function send(g: TestGateway, id: string, body: unknown): Promise<number> {
  const response = await fetch(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify(body),
  });
  await response.text();
  return response.status;
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'mock',
  messages: [{ role: 'user', content }],
  ...extra,
});

/** Sends one request of each kind and returns the ids of the request lines, once all have ended. */
async function linesForEachKind(g: TestGateway): Promise<string[]> {
  const statuses = [
    await send(g, 'ok-json', chat('hello')),
    await send(g, 'ok-stream', chat('hello', { stream: true })),
    await send(g, 'bad-request', { model: 'mock' }),
    await send(g, 'unknown-model', chat('hello', { model: 'nope' })),
    await send(g, 'upstream-error', chat('[[mock:error:503]]')),
    await send(g, 'broken-stream', chat('[[mock:fail-after:2]] hello there friend', { stream: true })),
  ];
  expect(statuses).toEqual([200, 200, 400, 404, 502, 200]);
  await vi.waitFor(
    async () => {
      const metrics = await (
        await fetch(`${g.url}/admin/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
      ).text();
      const counted = [
        ...metrics.matchAll(/^tollgate_requests_total\{route="\/v1\/chat\/completions",[^}]*\} (\d+)$/gm),
      ]
        .map((match) => Number(match[1]))
        .reduce((sum, n) => sum + n, 0);
      expect(counted).toBe(6);
    },
    { timeout: 10_000 },
  );
  return g.logs
    .filter((line) => line.msg === 'request' && line.route === '/v1/chat/completions')
    .map((line) => String(line.request_id));
}

describe('log.requests', () => {
  it('all (the default): one line for every request', async () => {
    const ids = await linesForEachKind(await gateway());
    expect(ids.sort()).toEqual(
      ['bad-request', 'broken-stream', 'ok-json', 'ok-stream', 'unknown-model', 'upstream-error'].sort(),
    );
  });

  it('errors: lines only for failures, a stream that broke after its 200 included', async () => {
    const g = await gateway('errors');
    const ids = await linesForEachKind(g);
    expect(ids.sort()).toEqual(['bad-request', 'broken-stream', 'unknown-model', 'upstream-error'].sort());
    const broken = g.logs.find((line) => line.msg === 'request' && line.request_id === 'broken-stream');
    expect(broken).toMatchObject({ status: 200, stream: true, stream_error: true });
  });

  it('none: no request lines, while metrics still count every request', async () => {
    const g = await gateway('none');
    expect(await linesForEachKind(g)).toEqual([]);
    // Other lines are still written: the stream failure's warning is one.
    expect(g.logs.some((line) => line.msg === 'stream failed after the response started')).toBe(true);
  });

  it('errors: a client that leaves gets a line, though its status was 200', async () => {
    // An upstream that sends one chunk and then holds the stream open until the gateway leaves.
    const held = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(`data: ${JSON.stringify(CHUNK)}\n\n`);
    });
    upstream = held;
    const g = await gateway('errors', {}, await held.start());
    const controller = new AbortController();
    const response = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'left-early' },
      body: JSON.stringify(chat('hello', { model: 'held', stream: true })),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    const reader = response.body?.getReader();
    expect((await reader?.read())?.done).toBe(false);
    controller.abort();
    await held.waitForAbort();
    await vi.waitFor(() => expect(g.logs.some((line) => line.request_id === 'left-early')).toBe(true), {
      timeout: 10_000,
    });
    expect(g.logs.find((line) => line.request_id === 'left-early')).toMatchObject({
      status: 200,
      aborted: true,
    });
  });

  it('LOG_REQUESTS overrides the config', async () => {
    expect(await linesForEachKind(await gateway('all', { LOG_REQUESTS: 'none' }))).toEqual([]);
  });

  it('a value it does not know fails at boot, naming the choices', async () => {
    await expect(gateway(undefined, { LOG_REQUESTS: 'some' })).rejects.toThrow(
      "LOG_REQUESTS (log.requests): expected one of 'all', 'errors', 'none', got 'some'",
    );
  });
});
