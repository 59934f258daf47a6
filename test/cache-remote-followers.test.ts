import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CacheStore } from '../src/store/cache-store.js';
import { MemoryCacheStore } from '../src/store/memory-cache-store.js';
import { RedisStore } from '../src/store/redis-store.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { Gate } from './support/gate.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatChunkFixtures, FIXTURE_USAGE } from './support/openai-fixtures.js';
import { pollUntil } from './support/poll.js';
import { hasRedisServerBinary, startRedisServer, type TestRedis } from './support/redis.js';
import { Tally } from './support/tally.js';
import { newRequestId, providerRecord, recordOf } from './support/usage-records.js';

/**
 * ③ cache on Redis, a leading stream whose own client leaves while identical streams on OTHER
 * instances follow it live: the leader reads on for them (as it does for followers on its own
 * instance), so they get the whole answer, the upstream call runs to its end and the answer is
 * stored; once the last of them is gone (it left, or its mark lapsed), the leader stops.
 *
 * Gateways each have their own RedisStore on one redis-server of this suite's own (wiped after
 * each test), in front of an upstream that sends a stream's first chunks at once and each further
 * one only when the test lets it out. Every step waits for an event (a chunk read, a store call
 * made, the upstream's request ended or aborted), never for time to pass.
 */

const MODEL = 'gpt-4o-mini';
const ASK = {
  model: MODEL,
  temperature: 0,
  stream: true as const,
  messages: [{ role: 'user' as const, content: 'Say hello' }],
};

let redis: TestRedis | undefined;
const upstream = new FakeUpstream();
let gateways: Instance[] = [];

/** The upstream's held chunks, let out one at a time (or all) by the test, or cut off. */
class Steps {
  private readonly gates: Gate[] = [];
  private opened = 0;
  /** The next chunk let out is not sent: the upstream drops the connection instead. */
  cutting = false;

  gate(index: number): Gate {
    while (this.gates.length <= index) this.gates.push(new Gate());
    return this.gates[index] as Gate;
  }

  release(count = 1): void {
    for (let i = 0; i < count; i++) this.gate(this.opened++).open();
  }

  releaseAll(): void {
    this.release(64);
  }

  cut(): void {
    this.cutting = true;
    this.release();
  }
}

/** Sent at once: the role chunk and the one with 'Hel'. The rest ('lo', ' #0', the finish, usage, [DONE]) waits on steps. */
const HEAD_EVENTS = 2;
const HEAD_TEXT = 'Hel';
const WHOLE_TEXT = 'Hello #0';

let steps = new Steps();
/** Chat requests that reached the upstream. */
let calls = new Tally();
/** Of those, the ones whose whole stream went out (the upstream call ran to its end). */
let completed = new Tally();

beforeAll(async () => {
  if (hasRedisServerBinary()) redis = await startRedisServer();
  upstream.on('POST', '/v1/chat/completions', async (request, res) => {
    calls.add();
    const own = steps;
    const usage =
      (request.json?.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const events = [
      ...chatChunkFixtures(String(request.json?.model), [HEAD_TEXT, 'lo', ' #0'], usage).map(
        (chunk) => `data: ${JSON.stringify(chunk)}\n\n`,
      ),
      'data: [DONE]\n\n',
    ];
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const [index, event] of events.entries()) {
      if (index >= HEAD_EVENTS) await own.gate(index - HEAD_EVENTS).opened;
      if (own.cutting) {
        res.destroy();
        return;
      }
      // The gateway may have hung up meanwhile (it stopped the call).
      if (res.destroyed) return;
      res.write(event);
    }
    res.end(() => completed.add());
  });
  await upstream.start();
});

afterAll(async () => {
  await upstream.stop();
  await redis?.stop();
});

beforeEach((context) => {
  if (!redis) context.skip('redis-server is not on PATH');
});

afterEach(async () => {
  // Nothing held back may outlive the test (a gateway closing would wait for it).
  steps.releaseAll();
  await Promise.all(gateways.map((gateway) => gateway.close()));
  gateways = [];
  if (redis) {
    const client = new Redis(redis.url);
    await client.flushall();
    client.disconnect();
  }
  upstream.requests.length = 0;
  steps = new Steps();
  calls = new Tally();
  completed = new Tally();
});

/**
 * What an instance asked of its cache store about followers elsewhere, counted on the way back
 * (the store itself is the real one).
 */
interface FollowWatch {
  /** As leader: each answer to "does anyone elsewhere still follow?" (asked once its client left). */
  answers: number[];
  asked: Tally;
  /** As follower: marks written (the first and each renewal) and taken back. */
  marked: Tally;
  unmarked: Tally;
  /** Per claim let go, in order: whether its answer was stored first. */
  releases: boolean[];
  released: Tally;
  /**
   * From now on this instance's follower marks are neither renewed nor taken back, and the last
   * one written lapses at once: a follower whose process died mid-stream.
   */
  die(): Promise<void>;
}

function watchFollowers(cache: CacheStore): FollowWatch {
  let last: Parameters<CacheStore['follow']> | undefined;
  let dead = false;
  const follow = cache.follow.bind(cache);
  const unfollow = cache.unfollow.bind(cache);
  const followers = cache.followers.bind(cache);
  const release = cache.release.bind(cache);
  const watch: FollowWatch = {
    answers: [],
    asked: new Tally(),
    marked: new Tally(),
    unmarked: new Tally(),
    releases: [],
    released: new Tally(),
    die: async () => {
      dead = true;
      if (!last) throw new Error('this instance never marked a follower');
      const [scope, hash, follower] = last;
      await follow(scope, hash, follower, 0);
    },
  };
  cache.follow = async (...args) => {
    if (dead) return;
    last = args;
    await follow(...args);
    watch.marked.add();
  };
  cache.unfollow = async (...args) => {
    if (dead) return;
    await unfollow(...args);
    watch.unmarked.add();
  };
  cache.followers = async (scope, hash) => {
    const count = await followers(scope, hash);
    watch.answers.push(count);
    watch.asked.add();
    return count;
  };
  cache.release = async (scope, hash, filled) => {
    try {
      await release(scope, hash, filled);
    } finally {
      watch.releases.push(filled);
      watch.released.add();
    }
  };
  return watch;
}

type Instance = TestGateway & { watch: FollowWatch };

/** One gateway instance: its own app and RedisStore on the suite's Redis. */
async function instance(): Promise<Instance> {
  if (!redis) throw new Error('no Redis');
  const store = new RedisStore({ target: { url: redis.url } });
  const watch = watchFollowers(store.cache);
  const gw = await startGateway(
    {
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      redis: { url: redis.url },
      backends: { up: { type: 'openai', baseUrl: `http://127.0.0.1:${upstream.port}/v1`, apiKey: 'k' } },
      models: { [MODEL]: { backend: 'up' } },
      // Longer than the test timeout: a follower that sat out the wait (instead of being answered)
      // fails its test by the timeout, not by a coalescing wait running out.
      cache: { enabled: true, coalesce: { waitMs: 120_000 } },
    },
    {},
    { store },
  );
  const started = Object.assign(gw, { watch });
  gateways.push(started);
  return started;
}

function clientFor(gw: TestGateway, key: string): OpenAI {
  return new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
}

/** A stream asked on `gw`: its cache header, and a reader that can stop at a point and go on later. */
async function stream(gw: TestGateway, key: string, options: { signal?: AbortSignal; id?: string } = {}) {
  const { data, response } = await clientFor(gw, key)
    .chat.completions.create(ASK, {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.id ? { headers: { 'x-request-id': options.id } } : {}),
    })
    .withResponse();
  const chunks = data[Symbol.asyncIterator]();
  let text = '';
  let finish: string | null | undefined;
  const next = async (): Promise<boolean> => {
    const read = await chunks.next();
    if (read.done) return false;
    text += read.value.choices[0]?.delta.content ?? '';
    finish = read.value.choices[0]?.finish_reason ?? finish;
    return true;
  };
  return {
    cache: response.headers.get('x-tollgate-cache'),
    /** Reads until the text so far is `wanted`. */
    async until(wanted: string): Promise<void> {
      while (text !== wanted) {
        if (!wanted.startsWith(text) || !(await next()))
          throw new Error(`the stream went '${text}', not on to '${wanted}'`);
      }
    },
    /** Reads to the end (an error event throws): the whole text and the finish reason. */
    async rest(): Promise<{ text: string; finish: string | null | undefined }> {
      while (await next());
      return { text, finish };
    },
  };
}

/**
 * A leader on `leaderAt` whose stream is under way ('Hel' read), with a follower on each of
 * `followAt` that joined it (a HIT that read 'Hel' while the rest does not exist yet anywhere, and
 * the upstream saw one call).
 */
async function ledAndFollowed(leaderAt: Instance, followAt: Instance[]) {
  const admin = new AdminHttp(leaderAt.url);
  const key = await admin.teamKey();
  const leaderLeaves = new AbortController();
  const leaderId = newRequestId();
  const leader = await stream(leaderAt, key, { signal: leaderLeaves.signal, id: leaderId });
  expect(leader.cache).toBe('MISS');
  await leader.until(HEAD_TEXT);
  const followers = [];
  for (const at of followAt) {
    const followLeaves = new AbortController();
    const follower = await stream(at, key, { signal: followLeaves.signal });
    expect(follower.cache).toBe('HIT');
    await follower.until(HEAD_TEXT);
    followers.push({ ...follower, leave: () => followLeaves.abort() });
  }
  expect(calls.count).toBe(1);
  return { admin, key, leaderId, leave: () => leaderLeaves.abort(), followers };
}

/**
 * Waits until the leader's instance has seen its client leave: it then asks whether anyone
 * elsewhere follows (or, with nobody to read on for, stops the upstream call at once).
 */
async function leaderNoticed(leaderAt: Instance): Promise<void> {
  await Promise.race([leaderAt.watch.asked.reached(1), upstream.waitForAbort()]);
}

describe('③ cache on Redis: a leader whose client leaves reads on for followers on other instances', () => {
  it('the follower on the other instance gets the whole answer; the upstream call runs to its end and is stored', async () => {
    const a = await instance();
    const b = await instance();
    const { key, leave, followers } = await ledAndFollowed(a, [b]);
    const [follower] = followers;
    leave();
    await leaderNoticed(a);
    steps.releaseAll();
    expect(await follower?.rest()).toEqual({ text: WHOLE_TEXT, finish: 'stop' });
    await completed.reached(1);
    expect(upstream.requests.some((r) => r.aborted)).toBe(false);
    // It asked, and B was there.
    expect(a.watch.answers[0]).toBe(1);
    // The whole answer was stored: the same request, on a third instance, is a HIT without a call.
    await a.watch.released.reached(1);
    expect(a.watch.releases).toEqual([true]);
    const c = await instance();
    const again = await stream(c, key);
    expect(again.cache).toBe('HIT');
    expect(await again.rest()).toEqual({ text: WHOLE_TEXT, finish: 'stop' });
    expect(calls.count).toBe(1);
    // B's mark went with its stream.
    await b.watch.unmarked.reached(1);
  });

  for (const where of ['on its own instance', 'on another instance'] as const) {
    it(`the leader is charged what the upstream reports, whether its follower is ${where}`, async () => {
      const a = await instance();
      const b = where === 'on another instance' ? await instance() : a;
      const { admin, leaderId, leave, followers } = await ledAndFollowed(a, [b]);
      leave();
      // A follower here holds the leader without asking the store; one elsewhere is asked for.
      if (b !== a) await leaderNoticed(a);
      steps.releaseAll();
      expect(await followers[0]?.rest()).toEqual({ text: WHOLE_TEXT, finish: 'stop' });
      await completed.reached(1);
      // It generated the whole answer (the follower read it), so it pays the upstream's count
      // (the usage chunk it read on to), not just the 'Hel' its client saw.
      const record = await recordOf(admin, leaderId);
      expect(record).toMatchObject(
        providerRecord({ prompt: FIXTURE_USAGE.prompt_tokens, completion: FIXTURE_USAGE.completion_tokens }),
      );
    });
  }

  it('with followers on two other instances, one leaving does not stop the leader for the other', async () => {
    const [a, b, c] = [await instance(), await instance(), await instance()];
    const { leave, followers } = await ledAndFollowed(a, [b, c]);
    const [onB, onC] = followers;
    leave();
    await leaderNoticed(a);
    expect(a.watch.answers[0]).toBe(2);
    onB?.leave();
    await b.watch.unmarked.reached(1);
    steps.releaseAll();
    expect(await onC?.rest()).toEqual({ text: WHOLE_TEXT, finish: 'stop' });
    await completed.reached(1);
    expect(upstream.requests.some((r) => r.aborted)).toBe(false);
    expect(calls.count).toBe(1);
  });
});

describe('③ cache on Redis: the leader stops once no follower is left anywhere', () => {
  it('when the only follower elsewhere leaves too, the leader stops the upstream call', async () => {
    const a = await instance();
    const b = await instance();
    const { leave, followers } = await ledAndFollowed(a, [b]);
    const [follower] = followers;
    leave();
    await leaderNoticed(a);
    expect(a.watch.answers[0]).toBe(1);
    // The leader reads on for B: B gets the next chunk...
    steps.release();
    await follower?.until('Hello');
    // ...then B leaves too, and takes its mark back.
    follower?.leave();
    await b.watch.unmarked.reached(1);
    // The next chunk's write to the mirror finds nobody following: the leader stops (or its next
    // look through the silence does, had the upstream sent nothing).
    steps.release();
    await upstream.waitForAbort();
    expect(completed.count).toBe(0);
    // A stream cut short is never stored.
    await a.watch.released.reached(1);
    expect(a.watch.releases).toEqual([false]);
  });

  it('a follower that died (its mark never taken back) holds the leader only until its mark lapses', async () => {
    const a = await instance();
    const b = await instance();
    const { leave, followers } = await ledAndFollowed(a, [b]);
    const [follower] = followers;
    leave();
    await leaderNoticed(a);
    expect(a.watch.answers[0]).toBe(1);
    steps.release();
    await follower?.until('Hello');
    // B's process dies: its mark is neither renewed nor taken back, and lapses.
    await b.watch.die();
    const askedBefore = a.watch.answers.length;
    follower?.leave();
    steps.release();
    await upstream.waitForAbort();
    expect(completed.count).toBe(0);
    // A lapsed mark never counted: the leader stopped at the next write to the mirror, and any
    // look it took meanwhile saw nobody (not a mark that only went once its whole set expired).
    expect(a.watch.answers.slice(askedBefore).every((count) => count === 0)).toBe(true);
  });
});

describe('③ cache on Redis: a followed stream that really breaks off', () => {
  it("when the leader's upstream breaks off, the follower's stream ends with an error event saying why", async () => {
    const a = await instance();
    const b = await instance();
    const { followers } = await ledAndFollowed(a, [b]);
    steps.cut();
    await expect(followers[0]?.rest()).rejects.toThrow(/another gateway instance stopped before its end/);
    // Nothing cut short is stored.
    await a.watch.released.reached(1);
    expect(a.watch.releases).toEqual([false]);
  });
});

describe('③ cache store: marks of followers elsewhere', () => {
  const hash = 'f'.repeat(64);

  it('Redis: marks are seen from every instance, counted by the leader’s appends, taken back, and lapse', async () => {
    if (!redis) throw new Error('no Redis');
    const one = new RedisStore({ target: { url: redis.url } });
    const two = new RedisStore({ target: { url: redis.url } });
    try {
      await expectMarks(one.cache, two.cache);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('memory: the same contract (single process: the cache stage never needs it)', async () => {
    const store = new MemoryCacheStore();
    try {
      await expectMarks(store, store);
    } finally {
      await store.close();
    }
  });

  async function expectMarks(leader: CacheStore, other: CacheStore): Promise<void> {
    const block = [Buffer.from('data: 1\n\n')];
    expect(await leader.claim('team:a', hash, 60_000)).toBe(true);
    expect(await leader.appendLive('team:a', hash, block, undefined, 60_000)).toBe(0);
    await other.follow('team:a', hash, 'f1', 60_000);
    await other.follow('team:a', hash, 'f2', 60_000);
    await other.follow('team:a', hash, 'f2', 60_000); // a renewal counts once
    expect(await leader.followers('team:a', hash)).toBe(2);
    expect(await leader.appendLive('team:a', hash, block, undefined, 60_000)).toBe(2);
    // Another scope's marks are its own; one who does not hold the claim writes nothing, counts none.
    expect(await leader.followers('team:b', hash)).toBe(0);
    expect(await other.appendLive('team:b', hash, block, undefined, 60_000)).toBe(0);
    await other.unfollow('team:a', hash, 'f1');
    expect(await leader.followers('team:a', hash)).toBe(1);
    // A mark not renewed lapses by itself.
    await other.follow('team:a', hash, 'f2', 1);
    expect(
      await pollUntil(
        () => leader.followers('team:a', hash),
        (count) => count === 0,
      ),
    ).toBe(0);
    // A new claim starts with no followers: the last leader's never keep the next one going.
    await other.follow('team:a', hash, 'f3', 60_000);
    await leader.release('team:a', hash, false);
    expect(await other.claim('team:a', hash, 60_000)).toBe(true);
    expect(await leader.followers('team:a', hash)).toBe(0);
    await other.release('team:a', hash, false);
  }
});
