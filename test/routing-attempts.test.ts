import type { ServerResponse } from 'node:http';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import { FakeUpstream, openaiError, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { REFUSED_ORIGIN } from './support/refused-port.js';
import { CHAT, chunk, completion, ROUTING_USAGE, type UpstreamHandler } from './support/routing-fixtures.js';

/*
 * ⑤ attempts over deployments: failover before the client has seen a byte, never after; the
 * circuit breaker and deployment limits in the path; fallback models; one reservation.
 */

const FAST_RETRY = { attempts: 3, backoffMs: 1, maxBackoffMs: 5, maxRetryAfterMs: 200, deadlineMs: 30_000 };

let servers: FakeUpstream[] = [];
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
  gw = undefined;
});

const answers: UpstreamHandler = (req, res) => {
  if (req.json?.stream) return sendSse(res, [chunk('one'), chunk('two')]);
  sendJson(res, 200, completion(String(req.json?.model)));
};
const fails500: UpstreamHandler = (_req, res) => sendJson(res, 500, openaiError('boom', 'server_error'));

/** Upstreams `a` and `b` with handlers the test can swap; models as the test configures them. */
async function setup(models: ConfigInput['models'], extra: Partial<ConfigInput> = {}) {
  const handlers: { a: UpstreamHandler; b: UpstreamHandler } = { a: answers, b: answers };
  const a = new FakeUpstream().on('POST', CHAT, (req, res, raw) => handlers.a(req, res, raw));
  const b = new FakeUpstream().on('POST', CHAT, (req, res, raw) => handlers.b(req, res, raw));
  servers.push(a, b);
  const [baseA, baseB] = await Promise.all([a.start(), b.start()]);
  gw = await startGateway({
    ...extra,
    backends: {
      a: { type: 'openai', baseUrl: `${baseA}/v1`, apiKey: 'ka' },
      b: { type: 'openai', baseUrl: `${baseB}/v1`, apiKey: 'kb' },
      ...extra.backends,
    },
    models,
  });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
  return { a, b, handlers, gw, client };
}

/** `a` first, then `b`: the priority strategy makes the order certain. */
const duo = (options: Record<string, unknown> = {}) => ({
  deployments: [
    { backend: 'a', model: 'up-a' },
    { backend: 'b', model: 'up-b', priority: 1 },
  ],
  strategy: 'priority' as const,
  retry: FAST_RETRY,
  ...options,
});

const ask = { model: 'duo', messages: [{ role: 'user' as const, content: 'hi' }] };

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: (await response.json()) as unknown };
}

describe('failover before the first byte', () => {
  it('a 500 from the first deployment: the second answers, and the answer says so', async () => {
    const { a, b, handlers, client, gw } = await setup({ duo: duo() });
    handlers.a = fails500;
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices[0]?.message.content).toBe('up-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
    const line = gw.logs.find((entry) => entry.msg === 'request');
    expect(line?.backend).toBe('b');
    expect(line?.attempts).toMatchObject([
      { deployment: 'a', status: 502 },
      { deployment: 'b', status: 200 },
    ]);
  });

  it('a refused connection: the second deployment answers', async () => {
    const { client } = await setup(
      {
        duo: {
          ...duo(),
          deployments: [
            { backend: 'gone', model: 'up-gone' },
            { backend: 'b', model: 'up-b', priority: 1 },
          ],
        },
      },
      { backends: { gone: { type: 'openai', baseUrl: `${REFUSED_ORIGIN}/v1`, apiKey: 'kg' } } },
    );
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices[0]?.message.content).toBe('up-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
  });

  it('a stream whose first deployment fails before its first event is served whole by the second', async () => {
    const { b, handlers, client } = await setup({ duo: duo() });
    handlers.a = (_req, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      res.destroy();
    };
    const { data: stream, response } = await client.chat.completions
      .create({ ...ask, stream: true })
      .withResponse();
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.choices[0]?.delta.content ?? '');
    expect(parts.join('')).toBe('onetwo');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    expect(b.requests).toHaveLength(1);
  });

  it('a stream that fails after its first event is not retried: the client gets the error event', async () => {
    const { b, handlers, client } = await setup({ duo: duo() });
    handlers.a = (_req, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify(chunk('one'))}\n\n`, () => res.destroy());
    };
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    const parts: string[] = [];
    const failure = await (async () => {
      try {
        for await (const part of stream) parts.push(part.choices[0]?.delta.content ?? '');
      } catch (error) {
        return error;
      }
    })();
    expect(parts).toEqual(['one']);
    expect(failure).toBeInstanceOf(Error);
    expect(b.requests).toHaveLength(0);
  });

  it("a 400 from the upstream is the client's and is not retried", async () => {
    const { a, b, handlers, gw } = await setup({ duo: duo() });
    handlers.a = (_req, res) => sendJson(res, 400, openaiError('bad', 'invalid_request_error'));
    const response = await post(gw.url, ask);
    expect(response.status).toBe(400);
    expect(response.headers.get('x-tollgate-attempts')).toBe('1');
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
  });

  it("one deployment: retried after the upstream's retry-after within the bound, not beyond it", async () => {
    const { a, handlers, gw } = await setup({
      solo: { deployments: [{ backend: 'a', model: 'up-a' }], retry: FAST_RETRY },
    });
    let calls = 0;
    handlers.a = (req, res) => {
      calls += 1;
      if (calls === 1)
        return sendJson(res, 429, openaiError('slow down', 'rate_limit_error'), { 'retry-after-ms': '20' });
      answers(req, res, undefined as never);
    };
    const ok = await post(gw.url, { ...ask, model: 'solo' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-tollgate-attempts')).toBe('2');
    expect(a.requests).toHaveLength(2);

    handlers.a = (_req, res) =>
      sendJson(res, 429, openaiError('slow down', 'rate_limit_error'), { 'retry-after-ms': '600000' });
    const refused = await post(gw.url, { ...ask, model: 'solo' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-tollgate-attempts')).toBe('1');
    expect(a.requests).toHaveLength(3);
  });

  it('one deployment failing every time: retry.attempts attempts, then the failure', async () => {
    const { a, handlers, gw } = await setup({
      solo: { deployments: [{ backend: 'a', model: 'up-a' }], retry: FAST_RETRY },
    });
    handlers.a = fails500;
    const response = await post(gw.url, { ...ask, model: 'solo' });
    expect(response.status).toBe(502);
    expect(response.headers.get('x-tollgate-attempts')).toBe('3');
    expect(a.requests).toHaveLength(3);
  });
});

describe('when every attempt fails', () => {
  it('the failure names the last deployment tried', async () => {
    const { a, b, handlers, gw } = await setup({ duo: duo({ retry: { ...FAST_RETRY, attempts: 2 } }) });
    handlers.a = fails500;
    handlers.b = fails500;
    const response = await post(gw.url, ask);
    expect(response.status).toBe(502);
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
  });
});

describe('circuit breaker and limits in the path', () => {
  it('a circuit opened by failures is skipped by the next request', async () => {
    const { a, b, handlers, client } = await setup({
      duo: duo({ circuit: { failures: 1, cooldownMs: 600_000 } }),
    });
    handlers.a = fails500;
    await client.chat.completions.create(ask);
    const { response } = await client.chat.completions.create(ask).withResponse();
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('1');
    expect([a.requests.length, b.requests.length]).toEqual([1, 2]);
  });

  it('every deployment open: 503 upstream_unavailable with retry-after, nothing sent upstream', async () => {
    const { a, handlers, gw } = await setup({
      fragile: {
        deployments: [{ backend: 'a', model: 'up-a' }],
        retry: { ...FAST_RETRY, attempts: 1 },
        circuit: { failures: 1, cooldownMs: 600_000 },
      },
    });
    handlers.a = fails500;
    expect((await post(gw.url, { ...ask, model: 'fragile' })).status).toBe(502);
    const response = await post(gw.url, { ...ask, model: 'fragile' });
    expect(response.status).toBe(503);
    expectEnvelope(response.json, { type: 'server_error', code: 'upstream_unavailable', param: null });
    const retryAfter = Number(response.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect(a.requests).toHaveLength(1);
  });

  it('a deployment at max_concurrent is skipped, not waited on', async () => {
    const { a, b, handlers, gw } = await setup({
      limited: {
        deployments: [
          { backend: 'a', model: 'up-a', limits: { maxConcurrent: 1 } },
          { backend: 'b', model: 'up-b', priority: 1 },
        ],
        strategy: 'priority',
        retry: FAST_RETRY,
      },
    });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrived!: () => void;
    const first = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    handlers.a = async (req, res) => {
      arrived();
      await held;
      answers(req, res, undefined as never);
    };
    const slow = post(gw.url, { ...ask, model: 'limited' });
    await first;
    const second = await post(gw.url, { ...ask, model: 'limited' });
    expect(second.status).toBe(200);
    expect(second.headers.get('x-tollgate-backend')).toBe('b');
    release();
    expect((await slow).headers.get('x-tollgate-backend')).toBe('a');
    // The slot was given back when the answer ended: `a` takes the next one.
    const third = await post(gw.url, { ...ask, model: 'limited' });
    expect(third.headers.get('x-tollgate-backend')).toBe('a');
    expect([a.requests.length, b.requests.length]).toEqual([2, 1]);
  });
});

describe('fallback models', () => {
  const models = {
    main: {
      deployments: [{ backend: 'a', model: 'up-a', name: 'main-a' }],
      fallbacks: ['spare'],
      retry: FAST_RETRY,
    },
    spare: { deployments: [{ backend: 'b', model: 'up-b', name: 'spare-b' }] },
  };

  it("used once the model's own deployments are out", async () => {
    const { handlers, gw } = await setup(models);
    handlers.a = fails500;
    const response = await post(gw.url, { ...ask, model: 'main' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-backend')).toBe('spare-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(
      (response.json as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content,
    ).toBe('up-b');
  });

  it('a one-line model that lists fallbacks tries each of their deployments once, and itself once', async () => {
    const { a, b, handlers, gw } = await setup({
      single: { backend: 'a', model: 'up-a', fallbacks: ['pair', 'spare'] },
      pair: {
        // pair-1 first (a lower priority number), so the test knows the order of the two.
        strategy: 'priority',
        deployments: [
          { backend: 'a', model: 'pair-1', name: 'pair-1' },
          { backend: 'a', model: 'pair-2', name: 'pair-2', priority: 1 },
        ],
      },
      spare: models.spare,
    });
    handlers.a = fails500;
    const response = await post(gw.url, { ...ask, model: 'single' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tollgate-backend')).toBe('spare-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('4');
    expect(a.requests.map((request) => request.json?.model)).toEqual(['up-a', 'pair-1', 'pair-2']);
    expect(b.requests).toHaveLength(1);
    // Without its fallbacks it is tried once, as a one-line model always was.
    const alone = await post(gw.url, { ...ask, model: 'single' }, { 'x-tollgate-fallbacks': 'off' });
    expect(alone.status).toBe(502);
    expect(a.requests.map((request) => request.json?.model).slice(3)).toEqual(['up-a']);
  });

  it('x-tollgate-fallbacks: off gives the failure instead', async () => {
    const { b, handlers, gw } = await setup(models);
    handlers.a = fails500;
    const response = await post(gw.url, { ...ask, model: 'main' }, { 'x-tollgate-fallbacks': 'off' });
    expect(response.status).toBe(502);
    expect(b.requests).toHaveLength(0);
  });
});

describe('cache across deployments', () => {
  it('one entry per model, whichever deployment answers', async () => {
    // Equal weights: each request's first deployment is a coin toss, so a key that named the
    // deployment would miss about every other time (1 call in 20 only with chance 2^-19).
    const { a, b, gw } = await setup(
      {
        duo: {
          deployments: [
            { backend: 'a', model: 'same' },
            { backend: 'b', model: 'same' },
          ],
        },
      },
      { cache: { enabled: true, scope: 'global' } } as Partial<ConfigInput>,
    );
    const statuses: Array<string | null> = [];
    const body = { ...ask, temperature: 0 };
    for (let i = 0; i < 20; i++) statuses.push((await post(gw.url, body)).headers.get('x-tollgate-cache'));
    expect(a.requests.length + b.requests.length).toBe(1);
    expect(statuses.filter((status) => status === 'HIT')).toHaveLength(19);
  });
});

describe('one reservation across attempts', () => {
  it('a budgeted key is charged exactly once, the answering attempt’s usage', async () => {
    const { handlers, gw } = await setup({ duo: duo() }, {
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
    } as Partial<ConfigInput>);
    handlers.a = fails500;
    const key = await new AdminHttp(gw.url).teamKey({ budgets: [{ period: 'day', max_tokens: 1_000 }] });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const { response } = await client.chat.completions.create({ ...ask, max_tokens: 10 }).withResponse();
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    type Own = { team: { standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> } } };
    const own = async () =>
      (await (
        await fetch(`${gw.baseURL}/tollgate/key`, { headers: { authorization: `Bearer ${key}` } })
      ).json()) as Own;
    let mine = await own();
    // The settle runs just after the answer went out.
    while ((mine.team.standing.budgets[0]?.reserved_tokens ?? 0) > 0) mine = await own();
    expect(mine.team.standing.budgets[0]).toMatchObject({
      spent_tokens: ROUTING_USAGE.total_tokens,
      reserved_tokens: 0,
    });
  });
});
