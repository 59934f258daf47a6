import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppDeps } from '../src/app.js';
import type { ConfigInput } from '../src/config/schema.js';
import { MemoryStore } from '../src/store/memory-store.js';
import {
  CACHEABLE_ASK,
  cacheTestUpstream,
  chatWithCache,
  defaultControl,
  HELD_STREAM_TEXT,
  streamWithCache,
} from './support/cache-fixtures.js';
import { type CacheWatch, watchCache } from './support/cache-watch.js';
import type { FakeUpstream } from './support/fake-upstream.js';
import { Gate } from './support/gate.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { FIXTURE_USAGE } from './support/openai-fixtures.js';
import { type QuotaWatch, watchQuota } from './support/quota-watch.js';
import { responseClosed } from './support/response-closed.js';
import { expectChatCompletion, expectChatCompletionChunk } from './support/spec-validator.js';
import { type UsageWatch, watchUsage } from './support/usage-watch.js';

/**
 * ③ cache end to end on the embedded store: the official SDK against a gateway in front of an
 * upstream that counts what reaches it.
 */
const ADMIN = 'test-admin-key-0123456789';
let upstream: FakeUpstream | undefined;
let gateways: Instance[] = [];
/** How the upstream answers (the tests steer it). */
let control = defaultControl();
/** The test's chat and stream requests still waiting for their answers (see afterEach). */
const unanswered = new Set<Promise<unknown>>();

afterEach(async () => {
  // A test that failed while the upstream held an answer back must not leave it hanging, and
  // its requests end before the gateway closes (their failures are the test's, not the close's).
  control.hold?.open();
  await Promise.allSettled(unanswered);
  unanswered.clear();
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await upstream?.stop();
  gateways = [];
  upstream = undefined;
  control = defaultControl();
});

async function startUpstream(): Promise<string> {
  upstream = cacheTestUpstream(control);
  return `${await upstream.start()}/v1`;
}

function calls(path = '/v1/chat/completions'): number {
  return upstream?.requests.filter((r) => r.url === path).length ?? 0;
}

/**
 * A gateway, and what it asked of its embedded store, as events a test waits for instead of
 * sleeping: cache lookups and claims (CacheWatch), reservations ended (QuotaWatch), usage
 * records written (UsageWatch).
 */
type Instance = TestGateway & { cache: CacheWatch; quota: QuotaWatch; usage: UsageWatch };

async function gateway(
  extra: Partial<ConfigInput> = {},
  deps: Omit<AppDeps, 'logDestination' | 'store'> = {},
): Promise<Instance> {
  const base = upstream ? undefined : await startUpstream();
  const baseUrl = base ?? `http://127.0.0.1:${upstream?.port}/v1`;
  // The embedded store the gateway would open itself (in memory: nothing here needs the data
  // directory), made here so its calls can be watched.
  const store = await MemoryStore.open();
  const watched = {
    cache: watchCache(store.cache),
    quota: watchQuota(store.quota),
    usage: watchUsage(store.usage),
  };
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
    { ...deps, store },
  );
  const instance = Object.assign(gw, watched);
  gateways.push(instance);
  return instance;
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

/** What a team has spent of its first budget, as the admin API says. */
async function spentTokens(gw: TestGateway, teamId: string): Promise<number | undefined> {
  const team = await admin(gw, 'GET', `/teams/${teamId}`);
  return (team.json.standing as { budgets: Array<{ spent_tokens: number }> }).budgets[0]?.spent_tokens;
}

async function entries(gw: TestGateway, teamId: string): Promise<number | undefined> {
  const stats = await admin(gw, 'GET', `/cache?team_id=${teamId}`);
  return (stats.json.data as Array<{ entries: number }> | undefined)?.[0]?.entries;
}

/** cache.coalesce.waitMs where a test waits it out. */
const JOIN_WAIT_MS = 200;
/** How much earlier than asked a Node timer may fire (it counts whole milliseconds). */
const TIMER_ROUNDING_MS = 5;

const ask = CACHEABLE_ASK;

/** Keeps `request` in `unanswered` until it is answered. */
function tracked<T>(request: Promise<T>): Promise<T> {
  unanswered.add(request);
  request.then(
    () => unanswered.delete(request),
    () => unanswered.delete(request),
  );
  return request;
}

const chat = (...args: Parameters<typeof chatWithCache>) => tracked(chatWithCache(...args));

const streamed = (...args: Parameters<typeof streamWithCache>) => tracked(streamWithCache(...args));

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
    // A key's record is read on every request (not trusted for up to auth.cacheTtlMs), so the
    // request right after an admin's change is the first to see it.
    const gw = await gateway({ cache: {}, auth: { cacheTtlMs: 0 } });
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
    // The key's "off" is gone: its team's "on" applies.
    expect((await chat(off.client)).cache).toBe('MISS');
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
    const { client, teamId } = await teamKey(gw);
    const hold = new Gate();
    control.hold = hold; // the stream cannot end before its client leaves
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) break;
    await upstream?.waitForAbort();
    hold.open();
    // The leader's fill is over once it let go of its claim: without storing anything.
    await gw.cache.released.reached(1);
    expect(gw.cache.releases).toEqual([false]);
    expect(await entries(gw, teamId)).toBe(0);
    expect((await streamed(client)).cache).toBe('MISS');
    expect((await streamed(client)).cache).toBe('HIT');
    expect(calls()).toBe(2);
  });

  it('identical requests in flight wait for the first: the upstream sees one, late streams get every chunk', async () => {
    const gw = await gateway();
    const { client } = await teamKey(gw);
    const hold = new Gate();
    control.hold = hold; // the upstream sends the first chunks, then holds back the rest
    const first = streamed(client);
    // The first is upstream (its flight is the one to join) and cannot finish before the others came.
    await control.received.reached(1);
    const followers = [
      ...Array.from({ length: 5 }, () => streamed(client)),
      ...Array.from({ length: 5 }, () => chat(client)),
    ];
    // Every follower looked the answer up and found none; joining the first's flight follows
    // with no I/O in between, so before the upstream can send anything more.
    await gw.cache.misses.reached(1 + followers.length);
    expect(calls()).toBe(1);
    hold.open();
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
    const hold = new Gate();
    control.hold = hold; // the upstream sends the first chunks, then holds back the rest
    const leaderLeft = responseClosed(gw.app.server, 'cache-leader');
    const leader = await client.chat.completions.create(
      { ...ask, stream: true },
      { headers: { 'x-request-id': 'cache-leader' } },
    );
    const joined = streamed(client);
    let text = '';
    for await (const chunk of leader) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (text !== HELD_STREAM_TEXT) continue;
      // The other request found no answer, so it joined this one's flight (no I/O in between).
      await gw.cache.misses.reached(2);
      break; // and this client leaves mid-stream
    }
    expect(text).toBe(HELD_STREAM_TEXT);
    // The gateway has seen the leader's client go, while the rest of the answer is still held
    // back: only now does the upstream send it.
    await leaderLeft;
    hold.open();
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
    // The upstream holds back the rest of its answer for good: only the gateway's abort ends it.
    control.hold = new Gate();
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) break;
    await upstream?.waitForAbort();
    expect(upstream?.requests.some((r) => r.aborted)).toBe(true);
  });

  it('a joiner waits at most cache.coalesce.waitMs, then goes upstream itself', async () => {
    const gw = await gateway({ cache: { enabled: true, coalesce: { waitMs: JOIN_WAIT_MS } } });
    const { client } = await teamKey(gw);
    const hold = new Gate();
    control.hold = hold; // the first's answer is held back until the joiner has gone upstream
    const first = chat(client);
    await control.received.reached(1);
    const started = performance.now();
    const joiner = chat(client);
    await gw.cache.misses.reached(2); // it found no answer and joined the first's flight...
    // ...and, the first's answer being held back for good, only giving up on it takes the
    // joiner upstream. It waited the whole wait first (less a timer's rounding); how much
    // longer it took is the machine's business.
    await control.received.reached(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(JOIN_WAIT_MS - TIMER_ROUNDING_MS);
    hold.open();
    expect((await joiner).cache).toBe('MISS');
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
    // Every reservation is charged or refunded (they end just after their answers): the miss
    // is charged, and a hit that charged anything would have by now.
    await gw.quota.allEnded();
    expect(await spentTokens(gw, teamId)).toBe(FIXTURE_USAGE.total_tokens);
    expect(calls()).toBe(1);
  });
});

describe('③ cache: hits that spend budget', () => {
  it('with cache.hitsSpendBudget a hit is charged its stored usage', async () => {
    const gw = await gateway({ cache: { enabled: true, hitsSpendBudget: true } });
    const { client, teamId } = await teamKey(gw, { budgets: [{ period: 'day', max_tokens: 100_000 }] });
    expect((await chat(client)).cache).toBe('MISS');
    expect((await chat(client)).cache).toBe('HIT');
    await gw.quota.allEnded(); // both charges are in
    expect(await spentTokens(gw, teamId)).toBe(2 * FIXTURE_USAGE.total_tokens);
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
    // Four requests, four usage records (written just after each answer).
    await gw.usage.recorded.reached(4);
    const usage = (await admin(gw, 'GET', `/usage?team_id=${a.teamId}&group_by=team`)).json.data as Array<
      Record<string, unknown>
    >;
    expect(usage).toHaveLength(1);
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
