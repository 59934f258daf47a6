import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AppDeps } from '../src/app.js';
import type { ConfigInput } from '../src/config/schema.js';
import { RedisStore } from '../src/store/redis-store.js';
import {
  CACHEABLE_ASK,
  cacheTestUpstream,
  chatWithCache,
  defaultControl,
  streamWithCache,
} from './support/cache-fixtures.js';
import type { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { expectChatCompletion, expectChatCompletionChunk } from './support/spec-validator.js';

/**
 * ③ cache end to end on Redis: the official SDK against gateways that each have their own
 * RedisStore on one Redis, so two gateways behave as two instances (separate flights in
 * process; they meet only through Redis), in front of an upstream that counts what reaches it.
 */
const ADMIN = 'test-admin-key-0123456789';
let redis: TestRedis | undefined;
let upstream: FakeUpstream | undefined;
let gateways: TestGateway[] = [];
/** Every team a test created, so its cache entries can be purged from the shared Redis. */
let teams: string[] = [];
/** How the upstream answers (the tests steer it). */
let control = defaultControl();

beforeAll(async () => {
  redis = await redisForTests();
});

afterAll(async () => {
  await redis?.stop();
});

beforeEach((context) => {
  if (!redis) context.skip('no Redis here (see the notice above)');
});

afterEach(async () => {
  const open = gateways[0];
  if (open)
    await Promise.all(
      teams.map((id) => admin(open, 'DELETE', `/cache?team_id=${id}`).catch(() => undefined)),
    );
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await upstream?.stop();
  gateways = [];
  teams = [];
  upstream = undefined;
  control = defaultControl();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startUpstream(): Promise<FakeUpstream> {
  const up = cacheTestUpstream(control);
  await up.start();
  return up;
}

function calls(): number {
  return upstream?.requests.filter((r) => r.url === '/v1/chat/completions').length ?? 0;
}

/** One gateway instance: its own app and its own RedisStore on the shared Redis. */
async function gateway(
  extra: Partial<ConfigInput> = {},
  deps: Omit<AppDeps, 'logDestination' | 'store'> = {},
) {
  if (!redis) throw new Error('no Redis');
  upstream ??= await startUpstream();
  const url = redis.url;
  const gw = await startGateway(
    {
      auth: {},
      admin: { key: ADMIN },
      redis: { url },
      backends: { up: { type: 'openai', baseUrl: `http://127.0.0.1:${upstream.port}/v1`, apiKey: 'k' } },
      models: { 'gpt-4o-mini': { backend: 'up' } },
      cache: { enabled: true },
      ...extra,
    },
    {},
    { ...deps, store: new RedisStore({ target: { url } }) },
  );
  gateways.push(gw);
  return gw;
}

/** Closes one instance before the test ends (a restart). */
async function stop(gw: TestGateway): Promise<void> {
  gateways = gateways.filter((g) => g !== gw);
  await gw.close();
}

async function admin(gw: TestGateway, method: string, path: string, body?: unknown) {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function teamKey(gw: TestGateway, team: Record<string, unknown> = {}) {
  const t = await admin(gw, 'POST', '/teams', { name: 'cache-redis', ...team });
  expect(t.status).toBe(201);
  const teamId = t.json.id as string;
  teams.push(teamId);
  const k = await admin(gw, 'POST', '/keys', { team_id: teamId });
  expect(k.status).toBe(201);
  return { teamId, key: k.json.key as string, client: clientFor(gw, k.json.key as string) };
}

function clientFor(gw: TestGateway, key: string): OpenAI {
  return new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
}

const ask = CACHEABLE_ASK;

const chat = chatWithCache;

const streamed = streamWithCache;

async function entries(gw: TestGateway, teamId: string): Promise<number | undefined> {
  const stats = await admin(gw, 'GET', `/cache?team_id=${teamId}`);
  return (stats.json.data as Array<{ entries: number }> | undefined)?.[0]?.entries;
}

/** JSON answers are stored just after they are sent: waits until the team has `count` entries. */
async function stored(gw: TestGateway, teamId: string, count: number): Promise<void> {
  for (let i = 0; i < 1_500 && (await entries(gw, teamId)) !== count; i++) await sleep(10);
  expect(await entries(gw, teamId)).toBe(count);
}

describe('③ cache on Redis: answers outlive the instance that stored them', () => {
  it('a JSON answer stored by one instance is a HIT on a fresh one after a restart', async () => {
    const a = await gateway();
    const { key, teamId } = await teamKey(a);
    const miss = await chat(clientFor(a, key));
    expect(miss.cache).toBe('MISS');
    expect(miss.text).toBe('Hello #0');
    await stored(a, teamId, 1);
    await stop(a);

    const b = await gateway();
    const hit = await chat(clientFor(b, key));
    expect(hit.cache).toBe('HIT');
    expect(hit.age).not.toBeNull();
    expect(Number(hit.age)).toBeGreaterThanOrEqual(0);
    expect(hit.data).toEqual(miss.data);
    expectChatCompletion(hit.data);
    expect(calls()).toBe(1);
  });

  it('a streamed answer stored by one instance replays as a stream and as JSON on a fresh one', async () => {
    const a = await gateway();
    const { key } = await teamKey(a);
    const miss = await streamed(clientFor(a, key));
    expect(miss.cache).toBe('MISS');
    expect(miss.text).toBe('Hello #0');
    await stop(a);

    const b = await gateway();
    const client = clientFor(b, key);
    const hit = await streamed(client);
    expect(hit.cache).toBe('HIT');
    expect(hit.age).not.toBeNull();
    expect(hit.text).toBe('Hello #0');
    for (const chunk of hit.chunks) expectChatCompletionChunk(chunk);
    expect(hit.chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    const json = await chat(client);
    expect(json.cache).toBe('HIT');
    expect(json.age).not.toBeNull();
    expect(json.text).toBe('Hello #0');
    expectChatCompletion(json.data);
    expect(calls()).toBe(1);
  });
  it('an instance that shuts down just after a streamed answer leaves no claim behind', async () => {
    // B gives up waiting on a leader after 2 s (a claim of A's would otherwise hold for 30 s).
    const b = await gateway({ cache: { enabled: true, coalesce: { waitMs: 2_000 } } });
    const { key, teamId } = await teamKey(b);
    // The shutdown races the end of the leader's work, so it is tried a few times.
    for (let round = 0; round < 4; round++) {
      const body = { ...ask, messages: [{ role: 'user', content: `Say hello, round ${round}` }] };
      const a = await gateway();
      expect((await streamed(clientFor(a, key), body)).cache).toBe('MISS');
      await stop(a); // a rolling restart: the answer is out, the instance goes away
      await stored(b, teamId, 1);
      expect((await admin(b, 'DELETE', `/cache?team_id=${teamId}`)).json.deleted).toBe(1);
      // Nobody answers this request anywhere now: it must go upstream at once, not wait on a
      // claim the stopped instance never released.
      const started = Date.now();
      const again = await streamed(clientFor(b, key), body);
      expect(again.cache).toBe('MISS');
      expect(again.text).toBe('Hello #0');
      expect(Date.now() - started, `round ${round}`).toBeLessThan(1_000);
      // Stored just after the stream ended: wait for it, so the next round starts empty.
      await stored(b, teamId, 1);
      await admin(b, 'DELETE', `/cache?team_id=${teamId}`);
    }
  });
});

describe('③ cache on Redis: coalescing across instances', () => {
  it('identical requests on two instances while the first is in flight: the upstream sees one', async () => {
    const a = await gateway();
    const b = await gateway();
    const { key } = await teamKey(a);
    const onA = clientFor(a, key);
    const onB = clientFor(b, key);
    control.delayMs = 300;
    const first = streamed(onA);
    await sleep(50);
    const fromB = [
      ...Array.from({ length: 4 }, () => chat(onB)),
      ...Array.from({ length: 4 }, () => streamed(onB)),
    ];
    const moreOnA = [chat(onA), chat(onA), streamed(onA)];
    const [leader, ...rest] = await Promise.all([first, ...fromB, ...moreOnA]);
    expect(leader?.cache).toBe('MISS');
    expect(leader?.text).toBe('Hello #0');
    for (const result of rest) expect(result.text).toBe('Hello #0');
    for (const result of rest.slice(0, fromB.length)) {
      expect(result.cache).toBe('HIT');
      expect(result.age).not.toBeNull();
    }
    for (const result of rest.slice(fromB.length)) expect(result.cache).toBe('HIT');
    expect(calls()).toBe(1);
  });

  it('a stream that joins on another instance gets the chunks so far, then the rest live', async () => {
    const a = await gateway();
    const b = await gateway();
    const { key } = await teamKey(a);
    control.chunkDelayMs = 150; // five chunks: the leader's stream lasts about 750 ms
    const leaderStarted = Date.now();
    const leader = streamed(clientFor(a, key)).then((result) => ({ ...result, endedAt: Date.now() }));
    await sleep(250);
    const { data: stream, response } = await clientFor(b, key)
      .chat.completions.create({ ...ask, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming)
      .withResponse();
    expect(response.headers.get('x-tollgate-cache')).toBe('HIT');
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of stream) {
      arrivals.push(Date.now());
      text += chunk.choices[0]?.delta.content ?? '';
    }
    const done = await leader;
    expect(text).toBe('Hello #0');
    expect(done.text).toBe('Hello #0');
    // Live: the joiner had its first chunks well before the leader's stream was over, and its
    // last one only about when the leader's ended.
    expect(arrivals[0]).toBeLessThan(done.endedAt - 200);
    expect(arrivals.at(-1)).toBeGreaterThan(leaderStarted + 600);
    expect(calls()).toBe(1);
  });

  it("when the leader's upstream fails, waiters on the other instance go upstream themselves", async () => {
    const a = await gateway();
    const b = await gateway();
    const { key, teamId } = await teamKey(a);
    const onA = clientFor(a, key);
    const onB = clientFor(b, key);
    control.delayMs = 300;
    control.failNext = true;
    const started = Date.now();
    const first = chat(onA).catch((error: unknown) => error);
    await sleep(50);
    const fromB = await Promise.all([
      ...Array.from({ length: 3 }, () => chat(onB)),
      ...Array.from({ length: 3 }, () => streamed(onB)),
    ]);
    expect(await first).toBeInstanceOf(OpenAI.InternalServerError);
    for (const result of fromB) expect(result.text).toBe('Hello #0');
    // No waiter sat out the coalescing timeout (30 s): they went upstream once the leader failed.
    expect(Date.now() - started).toBeLessThan(5_000);
    // The waiters on B coalesce among themselves: one more upstream request, not six.
    expect(calls()).toBe(2);
    await stored(a, teamId, 1);
    const after = await chat(onA);
    expect(after.cache).toBe('HIT');
    expect(calls()).toBe(2);
  });
});

describe('③ cache on Redis: a leader that goes away', () => {
  it("when the leader's client leaves before its answer, waiters on the other instance are still answered", async () => {
    const a = await gateway();
    const b = await gateway();
    const { key } = await teamKey(a);
    control.delayMs = 300;
    const controller = new AbortController();
    const first = clientFor(a, key)
      .chat.completions.create(ask, { signal: controller.signal })
      .catch((error: unknown) => error);
    await sleep(50);
    const started = Date.now();
    const waiters = Promise.all([chat(clientFor(b, key)), streamed(clientFor(b, key))]);
    await sleep(50);
    controller.abort();
    expect(await first).toBeInstanceOf(OpenAI.APIUserAbortError);
    for (const result of await waiters) expect(result.text).toBe('Hello #0');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('③ cache on Redis: scope, expiry, cut streams, admin', () => {
  it('two teams never share an entry, on either instance', async () => {
    const a = await gateway();
    const b = await gateway();
    const one = await teamKey(a);
    const two = await teamKey(a);
    expect((await chat(clientFor(a, one.key))).cache).toBe('MISS');
    expect((await chat(clientFor(b, two.key))).cache).toBe('MISS');
    expect(calls()).toBe(2);
    await stored(b, one.teamId, 1);
    await stored(a, two.teamId, 1);
    expect((await chat(clientFor(b, one.key))).cache).toBe('HIT');
    expect((await chat(clientFor(a, two.key))).cache).toBe('HIT');
    expect(calls()).toBe(2);
    expect(await entries(a, one.teamId)).toBe(1);
    expect(await entries(b, two.teamId)).toBe(1);
  });

  it('entries expire after their ttl by the injected clock', async () => {
    let now = Date.parse('2026-11-22T12:00:00Z');
    const a = await gateway({ cache: { enabled: true, ttl: 60 } }, { clock: () => now });
    const { client, teamId } = await teamKey(a);
    expect((await chat(client)).cache).toBe('MISS');
    await stored(a, teamId, 1);
    now += 59_000;
    const hit = await chat(client);
    expect(hit).toMatchObject({ cache: 'HIT', age: '59' });
    now += 1_000;
    expect((await chat(client)).cache).toBe('MISS');
    expect(calls()).toBe(2);
  });

  it('a client that leaves mid-stream stores nothing', async () => {
    const a = await gateway();
    const b = await gateway();
    const { key, teamId } = await teamKey(a);
    const stream = await clientFor(a, key).chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) break;
    await upstream?.waitForAbort();
    await sleep(50);
    expect(await entries(a, teamId)).toBe(0);
    expect((await streamed(clientFor(b, key))).cache).toBe('MISS');
    expect((await streamed(clientFor(a, key))).cache).toBe('HIT');
    expect(calls()).toBe(2);
  });

  it('GET /admin/cache counts the entries of a team; DELETE purges them on every instance', async () => {
    const a = await gateway();
    const b = await gateway();
    const { key, teamId } = await teamKey(a);
    await chat(clientFor(a, key));
    await chat(clientFor(a, key), { ...ask, max_tokens: 7 });
    await stored(a, teamId, 2);
    const stats = await admin(b, 'GET', `/cache?team_id=${teamId}`);
    expect(stats.status).toBe(200);
    expect(stats.json.data).toEqual([
      expect.objectContaining({ scope: `team:${teamId}`, team_id: teamId, entries: 2 }),
    ]);
    expect((stats.json.data as Array<{ bytes: number }>)[0]?.bytes).toBeGreaterThan(100);
    expect((await chat(clientFor(b, key))).cache).toBe('HIT');

    const purged = await admin(b, 'DELETE', `/cache?team_id=${teamId}`);
    expect(purged.json).toEqual({ object: 'cache.purge', deleted: 2 });
    expect(await entries(a, teamId)).toBe(0);
    expect((await chat(clientFor(a, key))).cache).toBe('MISS');
    expect(calls()).toBe(3);
  });
});
