import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppDeps } from '../src/app.js';
import type { ConfigInput } from '../src/config/schema.js';
import {
  CACHEABLE_ASK,
  cacheTestUpstream,
  chatWithCache,
  defaultControl,
  streamWithCache,
} from './support/cache-fixtures.js';
import type { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { FIXTURE_USAGE } from './support/openai-fixtures.js';
import { expectChatCompletion, expectChatCompletionChunk } from './support/spec-validator.js';

/**
 * ③ cache end to end on the embedded store: the official SDK against a gateway in front of an
 * upstream that counts what reaches it.
 */
const ADMIN = 'test-admin-key-0123456789';
let upstream: FakeUpstream | undefined;
let gateways: TestGateway[] = [];
/** How the upstream answers (the tests steer it). */
let control = defaultControl();

afterEach(async () => {
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await upstream?.stop();
  gateways = [];
  upstream = undefined;
  control = defaultControl();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startUpstream(): Promise<string> {
  upstream = cacheTestUpstream(control);
  return `${await upstream.start()}/v1`;
}

function calls(path = '/v1/chat/completions'): number {
  return upstream?.requests.filter((r) => r.url === path).length ?? 0;
}

async function gateway(extra: Partial<ConfigInput> = {}, deps: Omit<AppDeps, 'logDestination'> = {}) {
  const base = upstream ? undefined : await startUpstream();
  const baseUrl = base ?? `http://127.0.0.1:${upstream?.port}/v1`;
  const gw = await startGateway(
    {
      auth: {},
      admin: { key: ADMIN },
      backends: { up: { type: 'openai', baseUrl, apiKey: 'k' } },
      models: { 'gpt-4o-mini': { backend: 'up' }, 'text-embedding-3-small': { backend: 'up' } },
      cache: { enabled: true },
      ...extra,
    },
    {},
    deps,
  );
  gateways.push(gw);
  return gw;
}

async function admin(gw: TestGateway, method: string, path: string, body?: unknown) {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function teamKey(
  gw: TestGateway,
  team: Record<string, unknown> = {},
  key: Record<string, unknown> = {},
) {
  const t = await admin(gw, 'POST', '/teams', { name: 'cache', ...team });
  const k = await admin(gw, 'POST', '/keys', { team_id: t.json.id, ...key });
  return {
    teamId: t.json.id as string,
    keyId: k.json.id as string,
    key: k.json.key as string,
    client: new OpenAI({ baseURL: gw.baseURL, apiKey: k.json.key as string, maxRetries: 0 }),
  };
}

/** A cacheable request sent as is: its status, cache header and body, whatever the body is. */
async function raw(gw: TestGateway, key: string, path: string, body: Record<string, unknown>) {
  const response = await fetch(`${gw.baseURL}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-tollgate-cache': 'on' },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    cache: response.headers.get('x-tollgate-cache'),
    text: await response.text(),
  };
}

const ask = CACHEABLE_ASK;

const chat = chatWithCache;

const streamed = streamWithCache;

describe('③ cache: JSON and streams', () => {
  it('a JSON miss is stored; the same request is a HIT with age, never reaching the upstream', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const miss = await chat(client);
    expect(miss.cache).toBe('MISS');
    const hit = await chat(client);
    expect(hit.cache).toBe('HIT');
    expect(Number(hit.age)).toBeGreaterThanOrEqual(0);
    expect(hit.data).toEqual(miss.data);
    expectChatCompletion(hit.data);
    expect(calls()).toBe(1);
  });

  it('a streamed miss is assembled and replays as a stream and as JSON; a JSON miss replays as a stream', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const first = await streamed(client);
    expect(first.cache).toBe('MISS');
    expect(first.text).toBe('Hello #0');
    const again = await streamed(client);
    expect(again.cache).toBe('HIT');
    expect(again.text).toBe('Hello #0');
    for (const chunk of again.chunks) expectChatCompletionChunk(chunk);
    expect(again.chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    const json = await chat(client);
    expect(json.cache).toBe('HIT');
    expect(json.data.choices[0]?.message.content).toBe('Hello #0');
    expect(json.data.usage?.total_tokens).toBe(FIXTURE_USAGE.total_tokens);
    expect(calls()).toBe(1);

    // A JSON miss (another question), then the same question as a stream.
    const other = { ...ask, messages: [{ role: 'user', content: 'Another' }] };
    expect((await chat(client, other)).cache).toBe('MISS');
    const replay = await streamed(client, { ...other, stream_options: { include_usage: true } });
    expect(replay.cache).toBe('HIT');
    expect(replay.text).toBe('Hello #0');
    expect(replay.chunks.at(-1)?.usage?.total_tokens).toBe(FIXTURE_USAGE.total_tokens);
    expect(calls()).toBe(2);
  });

  it("the SDK's stream helper accepts a replayed tool-call stream", async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const tools = [
      {
        type: 'function' as const,
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ];
    const body = { ...ask, tools };
    await streamed(client, body); // miss
    const helper = client.chat.completions.stream({ ...body, stream: true });
    const final = await helper.finalChatCompletion();
    expect(final.choices[0]?.message.tool_calls?.[0]).toMatchObject({
      id: 'call_abc',
      function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
    });
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(calls()).toBe(1);
  });

  it('n > 1 answers replay every choice', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const body = { ...ask, n: 3 };
    await chat(client, body);
    const hit = await streamed(client, body);
    expect(hit.cache).toBe('HIT');
    const byChoice = new Map<number, string>();
    for (const chunk of hit.chunks)
      for (const choice of chunk.choices)
        byChoice.set(choice.index, (byChoice.get(choice.index) ?? '') + (choice.delta.content ?? ''));
    expect([...byChoice.entries()].sort()).toEqual([
      [0, 'Hello #0'],
      [1, 'Hello #1'],
      [2, 'Hello #2'],
    ]);
    expect(calls()).toBe(1);
  });

  it('embedding batches are cached per input: only inputs never seen go upstream, answers keep their order', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const model = 'text-embedding-3-small';
    const single = await client.embeddings
      .create({ model, input: 'b', encoding_format: 'float' })
      .withResponse();
    expect(single.response.headers.get('x-tollgate-cache')).toBe('MISS');
    const batch = await client.embeddings
      .create({ model, input: ['a', 'b', 'c'], encoding_format: 'float' })
      .withResponse();
    expect(batch.response.headers.get('x-tollgate-cache')).toBe('MISS');
    expect(batch.response.headers.get('x-tollgate-cache-items')).toBe('1/3');
    // The upstream got only the two new inputs.
    expect(upstream?.requests.at(-1)?.json?.input).toEqual(['a', 'c']);
    expect(batch.data.data.map((item) => item.index)).toEqual([0, 1, 2]);
    expect(batch.data.data[1]?.embedding).toEqual(single.data.data[0]?.embedding);
    const again = await client.embeddings
      .create({ model, input: ['c', 'a', 'b'], encoding_format: 'float' })
      .withResponse();
    expect(again.response.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(again.data.data.map((item) => item.embedding)).toEqual([
      batch.data.data[2]?.embedding,
      batch.data.data[0]?.embedding,
      batch.data.data[1]?.embedding,
    ]);
    expect(calls('/v1/embeddings')).toBe(2);
    // A one-item list is the same entry as the bare string.
    const listed = await client.embeddings
      .create({ model, input: ['b'], encoding_format: 'float' })
      .withResponse();
    expect(listed.response.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(calls('/v1/embeddings')).toBe(2);
    // base64 (the SDK's default) is its own entry per input, decoded by the SDK as before.
    const encoded = await client.embeddings.create({ model, input: ['a', 'b'] });
    expect(encoded.data[0]?.embedding).toEqual(batch.data.data[0]?.embedding);
  });

  it('embeddings are cached', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const body = { model: 'text-embedding-3-small', input: ['a', 'b'] };
    const first = await client.embeddings.create(body).withResponse();
    const second = await client.embeddings.create(body).withResponse();
    expect(first.response.headers.get('x-tollgate-cache')).toBe('MISS');
    expect(second.response.headers.get('x-tollgate-cache')).toBe('HIT');
    expect(second.data.data[1]?.embedding).toEqual(first.data.data[1]?.embedding);
    expect(calls('/v1/embeddings')).toBe(1);
  });
});

describe('③ cache: keys and scope', () => {
  it('reordered keys and client-only fields hit; anything that changes the answer misses', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    await chat(client, { ...ask, max_tokens: 20 });
    const reordered = {
      max_tokens: 20,
      messages: ask.messages,
      temperature: 0,
      model: 'gpt-4o-mini',
      user: 'u-1',
    };
    expect((await chat(client, reordered)).cache).toBe('HIT');
    expect((await chat(client, { ...ask, max_tokens: 21 })).cache).toBe('MISS');
    expect((await chat(client, { ...ask, max_tokens: 20, seed: 7, temperature: 0.1 })).cache).toBe('MISS');
    expect(calls()).toBe(3);
  });

  it('two teams never share an entry; a global scope shares across teams', async () => {
    const gw = await gateway();
    const a = await teamKey(gw);
    const b = await teamKey(gw);
    expect((await chat(a.client)).cache).toBe('MISS');
    expect((await chat(b.client)).cache).toBe('MISS');
    expect((await chat(b.client)).cache).toBe('HIT');
    expect(calls()).toBe(2);

    const shared = await gateway({ cache: { enabled: true, scope: 'global' } });
    const c = await teamKey(shared);
    const d = await teamKey(shared);
    expect((await chat(c.client)).cache).toBe('MISS');
    expect((await chat(d.client)).cache).toBe('HIT');
  });

  it('a key-scoped policy keeps entries per key', async () => {
    const gw = await gateway();
    const t = await teamKey(gw, { cache: { scope: 'key' } });
    const other = await admin(gw, 'POST', '/keys', { team_id: t.teamId });
    const sibling = new OpenAI({ baseURL: gw.baseURL, apiKey: other.json.key as string, maxRetries: 0 });
    expect((await chat(t.client)).cache).toBe('MISS');
    expect((await chat(sibling)).cache).toBe('MISS');
    expect((await chat(t.client)).cache).toBe('HIT');
  });
});

describe('③ cache: policy and request controls', () => {
  it('is off by default; a team or key policy turns it on, a key can turn it off again', async () => {
    const gw = await gateway({ cache: {} });
    const plain = await teamKey(gw);
    expect((await chat(plain.client)).cache).toBe('BYPASS');
    expect((await chat(plain.client)).cache).toBe('BYPASS');
    const on = await teamKey(gw, { cache: { enabled: true, ttl: 60 } });
    expect((await chat(on.client)).cache).toBe('MISS');
    expect((await chat(on.client)).cache).toBe('HIT');
    const off = await teamKey(gw, { cache: { enabled: true } }, { cache: { enabled: false } });
    expect((await chat(off.client)).cache).toBe('BYPASS');
    // An admin's "off" on a team or key is final; the config's default is not.
    expect((await chat(off.client, ask, { 'x-tollgate-cache': 'on' })).cache).toBe('BYPASS');
    expect((await chat(off.client, ask, { 'x-tollgate-cache': 'refresh' })).cache).toBe('BYPASS');
    expect((await chat(plain.client, ask, { 'x-tollgate-cache': 'on' })).cache).toBe('MISS');
    const patched = await admin(gw, 'PATCH', `/keys/${off.keyId}`, { cache: null });
    expect(patched.json.cache).toBeNull();
    // A key's record is trusted for up to a second (auth.cacheTtlMs) before it is read again.
    let after = await chat(off.client);
    for (let i = 0; i < 30 && after.cache === 'BYPASS'; i++) {
      await sleep(100);
      after = await chat(off.client);
    }
    expect(after.cache).toBe('MISS');
  });

  it('sampled requests are not cached unless the policy allows that temperature or the request says on', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const warm = { ...ask, temperature: 0.7 };
    expect((await chat(client, warm)).cache).toBe('BYPASS');
    expect((await chat(client, { ...warm, seed: 1 })).cache).toBe('MISS');
    expect((await chat(client, warm, { 'x-tollgate-cache': 'on' })).cache).toBe('MISS');
    expect((await chat(client, warm, { 'x-tollgate-cache': 'on' })).cache).toBe('HIT');
    const lenient = await gateway({ cache: { enabled: true, maxTemperature: 1 } });
    const l = await teamKey(lenient);
    expect((await chat(l.client, warm)).cache).toBe('MISS');
    // The temperature is part of the key: another one misses, the same one hits.
    expect((await chat(l.client, { ...warm, temperature: 0.5 })).cache).toBe('MISS');
    expect((await chat(l.client, warm)).cache).toBe('HIT');
  });

  it('off, refresh, no-cache, no-store and max-age do what they say', async () => {
    let now = Date.parse('2026-11-22T12:00:00Z');
    const gw = await gateway({}, { clock: () => now });
    const { client } = await teamKey(gw);
    expect((await chat(client, ask, { 'cache-control': 'no-store' })).cache).toBe('MISS');
    expect((await chat(client)).cache).toBe('MISS'); // nothing was stored
    expect((await chat(client)).cache).toBe('HIT');
    expect((await chat(client, ask, { 'x-tollgate-cache': 'off' })).cache).toBe('BYPASS');
    expect((await chat(client, ask, { 'x-tollgate-cache': 'refresh' })).cache).toBe('REFRESH');
    expect((await chat(client, ask, { 'cache-control': 'no-cache' })).cache).toBe('REFRESH');
    expect(calls()).toBe(5);
    now += 30_000;
    const aged = await chat(client);
    expect(aged).toMatchObject({ cache: 'HIT', age: '30' });
    expect((await chat(client, ask, { 'cache-control': 'max-age=10' })).cache).toBe('MISS');
    expect((await chat(client, ask, { 'cache-control': 'max-age=60' })).cache).toBe('HIT');
  });

  it('entries expire after their ttl (injected clock); x-tollgate-cache-ttl sets it per request', async () => {
    let now = Date.parse('2026-11-22T12:00:00Z');
    const gw = await gateway({ cache: { enabled: true, ttl: 60 } }, { clock: () => now });
    const { client } = await teamKey(gw);
    await chat(client);
    const short = { ...ask, max_tokens: 5 };
    await chat(client, short, { 'x-tollgate-cache-ttl': '5' });
    now += 5_000;
    expect((await chat(client, short)).cache).toBe('MISS');
    expect((await chat(client)).cache).toBe('HIT');
    now += 55_000;
    expect((await chat(client)).cache).toBe('MISS');
  });

  it('rejects malformed cache headers with a clear 400', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const bad = await chat(client, ask, { 'x-tollgate-cache': 'sometimes' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('x-tollgate-cache');
    const ttl = await chat(client, ask, { 'x-tollgate-cache-ttl': '-3' }).catch((e: unknown) => e);
    expect(ttl).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('errors are never cached', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    control.failNext = true;
    await expect(chat(client)).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect((await chat(client)).cache).toBe('MISS');
    expect((await chat(client)).cache).toBe('HIT');
  });

  it('a 200 that holds an error (the failure it says) or JSON cut short (relayed as it came) is never cached', async () => {
    const gw = await gateway();
    const { client, key } = await teamKey(gw);
    for (const odd of ['error-200', 'cut-json'] as const) {
      const question = { ...ask, messages: [{ role: 'user', content: `odd ${odd}` }] };
      control.oddNext = odd;
      const first = await raw(gw, key, '/chat/completions', question);
      // A server_error object is an upstream failure (502); broken JSON goes back as it came.
      expect(first.status).toBe(odd === 'error-200' ? 502 : 200);
      expect(first.cache).toBe('MISS');
      // Asked again, as JSON and as a stream: the upstream answers properly and is asked.
      const again = await chat(client, question);
      expect(again.cache).toBe('MISS');
      expect(again.text).toBe('Hello #0');
      expect((await streamed(client, question)).cache).toBe('HIT');
    }
    expect(calls()).toBe(4);
  });

  it('a stream with an error event part way is not cached', async () => {
    const gw = await gateway();
    const { client, key } = await teamKey(gw);
    control.oddNext = 'error-event';
    const first = await raw(gw, key, '/chat/completions', { ...ask, stream: true });
    expect(first.status).toBe(200);
    expect(first.text).toContain('overloaded part way');
    expect((await streamed(client)).cache).toBe('MISS');
    expect((await streamed(client)).cache).toBe('HIT');
    expect(calls()).toBe(2);
  });

  it('embeddings: a 200 that is no answer is neither cached nor blamed on the client', async () => {
    const gw = await gateway();
    const { key } = await teamKey(gw);
    for (const odd of ['cut-json', 'error-200'] as const) {
      const ask = { model: 'text-embedding-3-small', input: [`a ${odd}`, `b ${odd}`] };
      control.oddNext = odd;
      const first = await raw(gw, key, '/embeddings', ask);
      expect(first.status).toBe(odd === 'cut-json' ? 200 : 502);
      expect(first.text).toContain(odd === 'cut-json' ? '"choices": [' : 'overloaded');
      const again = await raw(gw, key, '/embeddings', ask);
      expect(again.status).toBe(200);
      expect(JSON.parse(again.text).data).toHaveLength(2);
    }
    expect(calls('/v1/embeddings')).toBe(4);
  });
});

describe('③ cache: streams cut short and coalescing', () => {
  it('a client that leaves mid-stream stores nothing', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    control.delayMs = 0;
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) break;
    await upstream?.waitForAbort();
    await sleep(50);
    expect((await streamed(client)).cache).toBe('MISS');
    expect((await streamed(client)).cache).toBe('HIT');
  });

  it('identical requests in flight wait for the first: the upstream sees one, late streams get every chunk', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    control.delayMs = 150;
    const first = streamed(client);
    await sleep(50);
    const followers = [
      ...Array.from({ length: 5 }, () => streamed(client)),
      ...Array.from({ length: 5 }, () => chat(client)),
    ];
    const results = await Promise.all([first, ...followers]);
    expect(calls()).toBe(1);
    expect(results[0]?.cache).toBe('MISS');
    for (const result of results.slice(1)) expect(result.cache).toBe('HIT');
    for (const result of results.slice(1, 6)) expect((result as { text: string }).text).toBe('Hello #0');
    for (const result of results.slice(6))
      expect((result as { data: OpenAI.ChatCompletion }).data.choices[0]?.message.content).toBe('Hello #0');
  });

  it("when the first request's client leaves, the streams joined to it still get the whole answer", async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    control.chunkDelayMs = 100;
    const leader = await client.chat.completions.create({ ...ask, stream: true });
    const joined = streamed(client);
    for await (const _chunk of leader) {
      await sleep(150); // the other request has joined by now
      break; // and this client leaves mid-stream
    }
    const result = await joined;
    expect(result.cache).toBe('HIT');
    expect(result.text).toBe('Hello #0');
    expect(result.chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    // The upstream was not cut for them, and the whole answer was stored.
    expect(upstream?.requests.some((r) => r.aborted)).toBe(false);
    expect((await chat(client)).cache).toBe('HIT');
    expect(calls()).toBe(1);
  });

  it('a client that leaves with nobody joined still stops the upstream at once', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    control.chunkDelayMs = 100;
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) break;
    await upstream?.waitForAbort();
    expect(upstream?.requests.some((r) => r.aborted)).toBe(true);
  });

  it('a joiner waits at most cache.coalesce.waitMs, then goes upstream itself', async () => {
    const gw = await gateway({ cache: { enabled: true, coalesce: { waitMs: 200 } } });
    const { client } = await teamKey(gw);
    control.delayMs = 800;
    const first = chat(client);
    await sleep(50);
    const started = Date.now();
    const joiner = await chat(client);
    // It gave up after 200 ms and asked the upstream (800 ms) itself, before the first was back.
    expect(joiner.cache).toBe('MISS');
    expect(Date.now() - started).toBeLessThan(1_000 + 200);
    expect((await first).cache).toBe('MISS');
    expect(calls()).toBe(2);
  });

  it('hits spend no tokens or budget but count toward requests per minute', async () => {
    const gw = await gateway();
    const { client, teamId } = await teamKey(gw, {
      limits: { requests_per_minute: 3 },
      budgets: [{ period: 'day', max_tokens: 100_000 }],
    });
    await chat(client);
    await chat(client);
    await chat(client);
    const refused = await chat(client).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    let spent: number | undefined;
    for (let i = 0; i < 50 && spent !== FIXTURE_USAGE.total_tokens; i++) {
      const team = await admin(gw, 'GET', `/teams/${teamId}`);
      spent = (team.json.standing as { budgets: Array<{ spent_tokens: number }> }).budgets[0]?.spent_tokens;
      await sleep(10);
    }
    expect(spent).toBe(FIXTURE_USAGE.total_tokens);
    expect(calls()).toBe(1);
  });
});

describe('③ cache: hits that spend budget', () => {
  it('with cache.hitsSpendBudget a hit is charged its stored usage', async () => {
    const gw = await gateway({ cache: { enabled: true, hitsSpendBudget: true } });
    const { client, teamId } = await teamKey(gw, { budgets: [{ period: 'day', max_tokens: 100_000 }] });
    expect((await chat(client)).cache).toBe('MISS');
    expect((await chat(client)).cache).toBe('HIT');
    let spent: number | undefined;
    for (let i = 0; i < 50 && spent !== 2 * FIXTURE_USAGE.total_tokens; i++) {
      const team = await admin(gw, 'GET', `/teams/${teamId}`);
      spent = (team.json.standing as { budgets: Array<{ spent_tokens: number }> }).budgets[0]?.spent_tokens;
      await sleep(10);
    }
    expect(spent).toBe(2 * FIXTURE_USAGE.total_tokens);
    expect(calls()).toBe(1);
  });
});

describe('③ cache: admin', () => {
  it('stats per scope, hits and misses in /admin/usage, purge by team, by model, or all', async () => {
    const gw = await gateway();
    const a = await teamKey(gw);
    const b = await teamKey(gw);
    await chat(a.client);
    await chat(a.client);
    await chat(b.client);
    await a.client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    const stats = await admin(gw, 'GET', `/cache?team_id=${a.teamId}`);
    expect(stats.json.data).toEqual([
      expect.objectContaining({ scope: `team:${a.teamId}`, team_id: a.teamId, entries: 2 }),
    ]);
    expect((stats.json.data as Array<{ bytes: number }>)[0]?.bytes).toBeGreaterThan(100);
    let usage: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 50 && usage.length === 0; i++) {
      usage = (await admin(gw, 'GET', `/usage?team_id=${a.teamId}&group_by=team`)).json.data as typeof usage;
      if (usage[0]?.requests !== 3) usage = [];
      await sleep(10);
    }
    expect(usage[0]).toMatchObject({
      requests: 3,
      cache_hits: 1,
      cache_misses: 2,
      cache_entries: 2,
      cache_bytes: (stats.json.data as Array<{ bytes: number }>)[0]?.bytes,
    });
    // The same in Prometheus' format, behind the admin key.
    expect((await fetch(`${gw.url}/admin/metrics`)).status).toBe(401);
    const metrics = await (
      await fetch(`${gw.url}/admin/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).text();
    expect(metrics).toContain(`tollgate_cache_requests_total{team_id="${a.teamId}",result="HIT"} 1`);
    expect(metrics).toContain(`tollgate_cache_requests_total{team_id="${a.teamId}",result="MISS"} 2`);
    expect(metrics).toContain(`tollgate_cache_entries{scope="team:${a.teamId}"} 2`);
    expect(metrics).toMatch(/tollgate_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+/);

    expect((await admin(gw, 'DELETE', '/cache')).status).toBe(400);
    const byModel = await admin(gw, 'DELETE', `/cache?team_id=${a.teamId}&model=text-embedding-3-small`);
    expect(byModel.json).toEqual({ object: 'cache.purge', deleted: 1 });
    expect((await admin(gw, 'DELETE', `/cache?team_id=${a.teamId}`)).json.deleted).toBe(1);
    expect((await chat(a.client)).cache).toBe('MISS');
    expect((await chat(b.client)).cache).toBe('HIT');
    const all = await admin(gw, 'DELETE', '/cache?all=true');
    expect(all.json.deleted).toBe(2);
    expect((await chat(b.client)).cache).toBe('MISS');
  });
});
