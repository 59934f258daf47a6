import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import type { ConfigInput } from '../src/config/schema.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, openaiError, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { CHAT, chunk, completion, ROUTING_USAGE, type UpstreamHandler } from './support/routing-fixtures.js';

/*
 * ⑤ targeted fallbacks: a 400 refusing the request for its length (`context_length_exceeded`)
 * or by a content policy moves it to the model's `contextFallbacks` / `contentPolicyFallbacks`;
 * every other 400 is the client's answer, as is that one when the model sets nothing.
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

/** Answers with the upstream model's name as content, so a test sees who answered. */
const answers: UpstreamHandler = (req, res) => {
  if (req.json?.stream) return sendSse(res, [chunk(String(req.json?.model))]);
  sendJson(res, 200, completion(String(req.json?.model)));
};

/** A 400 as OpenAI (or Azure) sends it, with `code`. */
const refuses =
  (code: string | null, message = 'refused'): UpstreamHandler =>
  (_req, res) =>
    sendJson(res, 400, openaiError(message, 'invalid_request_error', code, code ? 'messages' : null));

const TOO_LONG = refuses(
  'context_length_exceeded',
  "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
);

/**
 * Upstream `short` serves the model `short` (and `plain`, which sets no targeted fallbacks);
 * upstream `long` serves `long` and `lenient`, its targeted fallbacks.
 */
async function setup(extra: Partial<ConfigInput> = {}) {
  const handlers: { short: UpstreamHandler; long: UpstreamHandler } = { short: TOO_LONG, long: answers };
  const short = new FakeUpstream().on('POST', CHAT, (req, res, raw) => handlers.short(req, res, raw));
  const long = new FakeUpstream().on('POST', CHAT, (req, res, raw) => handlers.long(req, res, raw));
  servers.push(short, long);
  const [shortUrl, longUrl] = await Promise.all([short.start(), long.start()]);
  gw = await startGateway({
    ...extra,
    backends: {
      short: { type: 'openai', baseUrl: `${shortUrl}/v1`, apiKey: 'ks' },
      long: { type: 'openai', baseUrl: `${longUrl}/v1`, apiKey: 'kl' },
    },
    models: {
      short: {
        deployments: [{ backend: 'short', model: 'up-short', name: 'short-8k' }],
        contextFallbacks: ['long'],
        contentPolicyFallbacks: ['lenient'],
        retry: FAST_RETRY,
      },
      // Plain fallbacks are for a model that is out, not for a request it refuses.
      plain: {
        deployments: [{ backend: 'short', model: 'up-short' }],
        fallbacks: ['long'],
        retry: FAST_RETRY,
      },
      long: { deployments: [{ backend: 'long', model: 'up-long', name: 'long-128k' }] },
      lenient: { deployments: [{ backend: 'long', model: 'up-lenient', name: 'lenient' }] },
    },
  });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
  return { short, long, handlers, gw, client };
}

const ask = { model: 'short', messages: [{ role: 'user' as const, content: 'a very long prompt' }] };

/** The SDK's error for a call expected to fail. */
async function failure(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

describe('context_length_exceeded -> contextFallbacks', () => {
  it('the longer-context model answers, in the second attempt', async () => {
    const { short, long, client, gw } = await setup();
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices[0]?.message.content).toBe('up-long');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('long-128k');
    expect([short.requests.length, long.requests.length]).toEqual([1, 1]);
    expect(long.requests[0]?.json?.model).toBe('up-long');
    const line = gw.logs.find((entry) => entry.msg === 'request');
    expect(line?.attempts).toMatchObject([
      { deployment: 'short-8k', status: 400 },
      { deployment: 'long-128k', status: 200 },
    ]);
  });

  it('a stream refused before its first event is served whole by the longer-context model', async () => {
    const { client } = await setup();
    const { data: stream, response } = await client.chat.completions
      .create({ ...ask, stream: true })
      .withResponse();
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.choices[0]?.delta.content ?? '');
    expect(parts.join('')).toBe('up-long');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
  });

  it('a budgeted key is charged once, at the answering attempt’s usage', async () => {
    const { gw } = await setup({ auth: {}, admin: { key: TEST_ADMIN_KEY } } as Partial<ConfigInput>);
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

  it('without contextFallbacks the 400 is relayed as it came, and plain fallbacks are not used', async () => {
    const { long, client } = await setup();
    const error = await failure(client.chat.completions.create({ ...ask, model: 'plain' }));
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.headers?.get('x-tollgate-attempts')).toBe('1');
    expect(long.requests).toHaveLength(0);
  });

  it('x-tollgate-fallbacks: off relays the 400', async () => {
    const { long, client } = await setup();
    const error = await failure(
      client.chat.completions.create(ask, { headers: { 'x-tollgate-fallbacks': 'off' } }),
    );
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(long.requests).toHaveLength(0);
  });

  it('a key not allowed the fallback model gets the 400', async () => {
    const { long, gw } = await setup({ auth: {}, admin: { key: TEST_ADMIN_KEY } } as Partial<ConfigInput>);
    const key = await new AdminHttp(gw.url).teamKey({}, { models: ['short'] });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const error = await failure(client.chat.completions.create(ask));
    expect(error.status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(long.requests).toHaveLength(0);
  });

  it('a fallback that refuses too is the answer: no chains, no loop', async () => {
    const { short, long, handlers, client } = await setup();
    handlers.long = TOO_LONG;
    const error = await failure(client.chat.completions.create(ask));
    expect(error.status).toBe(400);
    expect(error.headers?.get('x-tollgate-attempts')).toBe('2');
    expect([short.requests.length, long.requests.length]).toEqual([1, 1]);
  });
});

describe('content-policy refusals -> contentPolicyFallbacks', () => {
  it.each([['content_policy_violation'], ['content_filter']])(
    '400 %s: the other model answers',
    async (code) => {
      const { long, handlers, client } = await setup();
      handlers.short = refuses(code);
      const { data, response } = await client.chat.completions.create(ask).withResponse();
      expect(data.choices[0]?.message.content).toBe('up-lenient');
      expect(response.headers.get('x-tollgate-attempts')).toBe('2');
      expect(response.headers.get('x-tollgate-backend')).toBe('lenient');
      expect(long.requests.map((request) => request.json?.model)).toEqual(['up-lenient']);
    },
  );
});

describe('other 400s never trigger them', () => {
  it.each([
    ['invalid_value', 400],
    [null, 400],
    // The code alone is not enough: only a 400 says the request was refused for what it is.
    ['context_length_exceeded', 422],
  ] as const)('code %s, status %s: relayed, one attempt', async (code, status) => {
    const { long, handlers, client } = await setup();
    handlers.short = (_req, res) =>
      sendJson(res, status, openaiError('bad', 'invalid_request_error', code, null));
    const error = await failure(client.chat.completions.create(ask));
    expect(error.status).toBe(status);
    expect(error.code ?? null).toBe(code);
    expect(error.headers?.get('x-tollgate-attempts')).toBe('1');
    expect(long.requests).toHaveLength(0);
  });
});

describe('checked at boot like fallbacks', () => {
  function problemsOf(models: Record<string, unknown>): string[] {
    try {
      parseConfig({ backends: { a: { type: 'mock' } }, models }, {}, 'test');
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error('expected a ConfigError');
  }

  it('unknown names and wildcard routes', () => {
    expect(
      problemsOf({
        m: { backend: 'a', contextFallbacks: ['missing'], contentPolicyFallbacks: ['*'] },
        '*': { backend: 'a' },
      }),
    ).toEqual([
      "models.m.contextFallbacks: unknown model 'missing' (fallbacks name models declared under models, not wildcard routes)",
      "models.m.contentPolicyFallbacks: unknown model '*' (fallbacks name models declared under models, not wildcard routes)",
    ]);
  });

  it('circles', () => {
    expect(
      problemsOf({
        a: { backend: 'a', contextFallbacks: ['b'] },
        b: { backend: 'a', contextFallbacks: ['a'], contentPolicyFallbacks: ['b'] },
      }),
    ).toEqual([
      'models.a.contextFallbacks: fallbacks go round in a circle: a -> b -> a',
      'models.b.contentPolicyFallbacks: fallbacks go round in a circle: b -> b',
    ]);
  });

  it('accepts them on either model form', () => {
    const config = parseConfig(
      {
        backends: { a: { type: 'mock' } },
        models: {
          big: { backend: 'a' },
          one: { backend: 'a', contextFallbacks: ['big'], contentPolicyFallbacks: ['big'] },
          many: { deployments: [{ backend: 'a' }], contextFallbacks: ['big', 'one'] },
        },
      },
      {},
      'test',
    );
    expect(config.models.many?.contextFallbacks).toEqual(['big', 'one']);
  });
});
