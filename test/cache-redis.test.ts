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
  HELD_STREAM_TEXT,
  streamWithCache,
} from './support/cache-fixtures.js';
import { type CacheWatch, watchCache } from './support/cache-watch.js';
import type { FakeUpstream } from './support/fake-upstream.js';
import { Gate } from './support/gate.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
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
let gateways: Instance[] = [];
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
  // A test that failed while the upstream held an answer back must not leave it hanging.
  control.hold?.open();
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

/**
 * Coalescing waits longer than the test timeout: a request that sat out the wait (instead of
 * going upstream once the leader failed or let go of its claim) fails its test by the timeout,
 * and so does a claim left behind, which lasts this long.
 */
const PAST_TEST_TIMEOUT = { cache: { enabled: true, coalesce: { waitMs: 120_000 } } };

async function startUpstream(): Promise<FakeUpstream> {
  const up = cacheTestUpstream(control);
  await up.start();
  return up;
}

function calls(): number {
  return upstream?.requests.filter((r) => r.url === '/v1/chat/completions').length ?? 0;
}

/** A gateway instance, and what it asked of its cache store (see CacheWatch). */
type Instance = TestGateway & { cache: CacheWatch };

/** One gateway instance: its own app and its own RedisStore on the shared Redis. */
async function gateway(
  extra: Partial<ConfigInput> = {},
  deps: Omit<AppDeps, 'logDestination' | 'store'> = {},
): Promise<Instance> {
  if (!redis) throw new Error('no Redis');
  upstream ??= await startUpstream();
  const url = redis.url;
  const store = new RedisStore({ target: { url } });
  const cache = watchCache(store.cache);
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
    { ...deps, store },
  );
  const instance = Object.assign(gw, { cache });
  gateways.push(instance);
  return instance;
}

/** Closes one instance before the test ends (a restart). */
async function stop(gw: Instance): Promise<void> {
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
  expect(
    await pollUntil(
      () => entries(gw, teamId),
      (n) => n === count,
    ),
  ).toBe(count);
}

/** Reads a stream chunk by chunk, so a test can stop at a point of it and go on later. */
function reading(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  const chunks = stream[Symbol.asyncIterator]();
  let text = '';
  const next = async (): Promise<boolean> => {
    const read = await chunks.next();
    if (read.done) return false;
    text += read.value.choices[0]?.delta.content ?? '';
    return true;
  };
  return {
    /** Reads until the text so far is `wanted`; waits as long as the stream has no more yet. */
    async until(wanted: string): Promise<void> {
      while (text !== wanted) {
        if (!wanted.startsWith(text) || !(await next()))
          throw new Error(`the stream went '${text}', not on to '${wanted}'`);
      }
    },
    /** Reads to the end; the whole text. */
    async rest(): Promise<string> {
      while (await next());
      return text;
    },
  };
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
    // A claim of A's left behind would hold past the test timeout, and B would wait on it as
    // long (or follow A's finished record as a HIT): only a released claim lets B go upstream.
    const b = await gateway(PAST_TEST_TIMEOUT);
    const { key, teamId } = await teamKey(b);
    // The shutdown races the end of the leader's work, so it is tried a few times.
    for (let round = 0; round < 4; round++) {
      const body = { ...ask, messages: [{ role: 'user', content: `Say hello, round ${round}` }] };
      const a = await gateway(PAST_TEST_TIMEOUT);
      expect((await streamed(clientFor(a, key), body)).cache).toBe('MISS');
      await stop(a); // a rolling restart: the answer is out, the instance goes away
      await stored(b, teamId, 1);
      expect((await admin(b, 'DELETE', `/cache?team_id=${teamId}`)).json.deleted).toBe(1);
      // Nobody answers this request anywhere now: it must go upstream, not wait on a claim the
      // stopped instance never released.
      const again = await streamed(clientFor(b, key), body);
      expect(again.cache, `round ${round}`).toBe('MISS');
      expect(again.text).toBe('Hello #0');
      expect(b.cache.lostClaims.count, `round ${round}`).toBe(0);
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
    const hold = new Gate();
    control.hold = hold;
    const first = streamed(onA);
    // The leader is upstream (so it holds the claim), and the upstream holds back its answer
    // until every other request has joined it.
    await control.received.reached(1);
    const fromB = [
      ...Array.from({ length: 4 }, () => chat(onB)),
      ...Array.from({ length: 4 }, () => streamed(onB)),
    ];
    const moreOnA = [chat(onA), chat(onA), streamed(onA)];
    // Every request looked the answer up and found none; on B one lost the claim to A, the rest
    // joined it; on A they joined the leader's flight.
    await Promise.all([a.cache.misses.reached(1 + moreOnA.length), b.cache.misses.reached(fromB.length)]);
    await b.cache.lostClaims.reached(1);
    expect(calls()).toBe(1);
    hold.open();
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
    const hold = new Gate();
    control.hold = hold; // the upstream sends the first chunks, then holds back the rest
    const asked = { ...ask, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming;
    const onA = await clientFor(a, key).chat.completions.create(asked).withResponse();
    expect(onA.response.headers.get('x-tollgate-cache')).toBe('MISS');
    const leader = reading(onA.data);
    await leader.until(HELD_STREAM_TEXT);
    const onB = await clientFor(b, key).chat.completions.create(asked).withResponse();
    expect(onB.response.headers.get('x-tollgate-cache')).toBe('HIT');
    const follower = reading(onB.data);
    // The chunks so far, while the rest of the answer does not exist anywhere yet: B follows the
    // leader's stream, it does not wait for its stored answer...
    await follower.until(HELD_STREAM_TEXT);
    expect(calls()).toBe(1);
    hold.open();
    // ...then the rest, as the upstream sends it.
    expect(await follower.rest()).toBe('Hello #0');
    expect(await leader.rest()).toBe('Hello #0');
    expect(calls()).toBe(1);
  });

  it("when the leader's upstream fails, waiters on the other instance go upstream themselves", async () => {
    // Answered at all, the waiters did not sit out the coalescing wait: it outlasts the test.
    const a = await gateway(PAST_TEST_TIMEOUT);
    const b = await gateway(PAST_TEST_TIMEOUT);
    const { key, teamId } = await teamKey(a);
    const onA = clientFor(a, key);
    const onB = clientFor(b, key);
    const hold = new Gate();
    control.hold = hold;
    control.failNext = true;
    const first = chat(onA).catch((error: unknown) => error);
    await control.received.reached(1); // A leads; its failure is held back
    const waiting = Promise.all([
      ...Array.from({ length: 3 }, () => chat(onB)),
      ...Array.from({ length: 3 }, () => streamed(onB)),
    ]);
    // All six wait on A: none found an answer, one lost the claim to A, the rest joined that one.
    await b.cache.misses.reached(6);
    await b.cache.lostClaims.reached(1);
    expect(calls()).toBe(1);
    hold.open();
    expect(await first).toBeInstanceOf(OpenAI.InternalServerError);
    const fromB = await waiting;
    for (const result of fromB) expect(result.text).toBe('Hello #0');
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
    // Answered at all, the waiters did not sit out the coalescing wait: it outlasts the test.
    const a = await gateway(PAST_TEST_TIMEOUT);
    const b = await gateway(PAST_TEST_TIMEOUT);
    const { key } = await teamKey(a);
    const hold = new Gate();
    control.hold = hold;
    const controller = new AbortController();
    const first = clientFor(a, key)
      .chat.completions.create(ask, { signal: controller.signal })
      .catch((error: unknown) => error);
    await control.received.reached(1); // A leads; its answer is held back
    const waiters = Promise.all([chat(clientFor(b, key)), streamed(clientFor(b, key))]);
    // Both wait on A: neither found an answer, one lost the claim to A, the other joined it.
    await b.cache.misses.reached(2);
    await b.cache.lostClaims.reached(1);
    controller.abort();
    expect(await first).toBeInstanceOf(OpenAI.APIUserAbortError);
    // Nobody on A waits for the answer, so A gives up its upstream call; only then does the
    // upstream answer anyone (the waiters on B, who go upstream themselves).
    await upstream?.waitForAbort();
    hold.open();
    for (const result of await waiters) expect(result.text).toBe('Hello #0');
    expect(calls()).toBe(2);
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
    // And its claim let go: a request that finds the entry expired while the claim is still held
    // waits for that claim's answer (and is told HIT) instead of going upstream.
    await a.cache.released.reached(1);
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
    const hold = new Gate();
    control.hold = hold; // the stream cannot end before its client leaves
    const stream = await clientFor(a, key).chat.completions.create({ ...ask, stream: true });
    for await (const _chunk of stream) break;
    await upstream?.waitForAbort();
    hold.open();
    // The leader's fill is over once it let go of its claim: without storing anything.
    await a.cache.released.reached(1);
    expect(a.cache.releases).toEqual([false]);
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
