import { randomInt } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { AdminHttp, type AdminResponse, TEST_ADMIN_KEY } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests, type TestRedis } from './support/redis.js';

/**
 * The admin API's brute-force guard (`admin.failedAttempts`): failed admin authentications are
 * counted per client IP, apart from /v1's, in Redis when configured, so every instance sees
 * every other's failures. Past the limit the address gets 429 in OpenAI's envelope with
 * retry-after, whatever it presents, until the window ends.
 */

const MAX = 5;
const WINDOW_SECONDS = 60;

/** One address per test (X-Forwarded-For, trusted here): a shared Redis keeps counts for a window. */
const freshIp = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

function config(redis: TestRedis | undefined): ConfigInput {
  return {
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
    auth: { failedAttempts: { max: 10_000, windowSeconds: WINDOW_SECONDS } },
    admin: { key: TEST_ADMIN_KEY, failedAttempts: { max: MAX, windowSeconds: WINDOW_SECONDS } },
    server: { trustProxy: true },
    ...(redis ? { redis: { url: redis.url } } : {}),
  };
}

function adminFrom(gw: TestGateway, ip: string, key: string | null, path = '/teams'): Promise<AdminResponse> {
  return new AdminHttp(gw.url, key).call('GET', path, undefined, { 'x-forwarded-for': ip });
}

function expectTooMany(response: AdminResponse): void {
  expect(response.status).toBe(429);
  expectEnvelope(response.body, { type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null });
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
}

const stores = [{ store: 'memory' as const }, { store: 'redis' as const }];

describe.each(stores)('admin brute-force guard ($store store)', ({ store }) => {
  let redis: TestRedis | undefined;
  let gw: TestGateway;
  let unavailable = false;

  beforeAll(async () => {
    if (store === 'redis') {
      redis = await redisForTests();
      if (!redis) {
        unavailable = true;
        return;
      }
    }
    gw = await startGateway(config(redis));
  });

  beforeEach((context) => {
    if (unavailable) context.skip('no Redis available (see the notice above)');
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('200 wrong admin keys in a burst: the first max get 401, every other one 429 with retry-after', async () => {
    const ip = freshIp();
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => adminFrom(gw, ip, `wrong-admin-key-${i}-0123456789`)),
    );
    const unauthorized = answers.filter((answer) => answer.status === 401);
    expect(unauthorized).toHaveLength(MAX);
    for (const answer of unauthorized)
      expectEnvelope(answer.body, { type: 'invalid_request_error', code: 'invalid_admin_key', param: null });
    const refused = answers.filter((answer) => answer.status !== 401);
    expect(refused).toHaveLength(200 - MAX);
    for (const answer of refused) expectTooMany(answer);
  });

  it('a blocked address gets 429 even with the admin key; other addresses and /v1 are unaffected', async () => {
    const ip = freshIp();
    for (let attempt = 1; attempt <= MAX; attempt++) {
      expect((await adminFrom(gw, ip, null)).status, `attempt ${attempt} (no key)`).toBe(401);
    }
    expectTooMany(await adminFrom(gw, ip, 'still-not-the-admin-key-0123'));
    // Answering the right key differently would tell a guesser when it hit.
    expectTooMany(await adminFrom(gw, ip, TEST_ADMIN_KEY));
    // The API description stays public.
    expect((await adminFrom(gw, ip, null, '/openapi.json')).status).toBe(200);
    expect((await adminFrom(gw, freshIp(), TEST_ADMIN_KEY)).status).toBe(200);

    // /v1 counts its own failures: the blocked address can still use a team key.
    const admin = new AdminHttp(gw.url);
    const team = await admin.createTeam({ name: `brute-force-v1-${store}` });
    const { key } = await admin.createKey({ team_id: team.id });
    const models = await fetch(`${gw.baseURL}/models`, {
      headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': ip },
    });
    expect(models.status).toBe(200);
  });

  it('failed /v1 authentications do not count against the admin API', async () => {
    const ip = freshIp();
    for (let i = 0; i < MAX * 3; i++) {
      const refused = await fetch(`${gw.baseURL}/models`, {
        headers: {
          authorization: `Bearer tg-zzzzzzzz0000-${'B'.repeat(42)}${i % 10}`,
          'x-forwarded-for': ip,
        },
      });
      expect(refused.status).toBe(401);
    }
    expect((await adminFrom(gw, ip, TEST_ADMIN_KEY)).status).toBe(200);
  });
});

describe('admin brute-force guard across two instances on one Redis', () => {
  let redis: TestRedis | undefined;
  let client: Redis;
  let a: TestGateway;
  let b: TestGateway;

  beforeAll(async () => {
    redis = await redisForTests();
    if (!redis) return;
    client = new Redis(redis.url);
    a = await startGateway(config(redis));
    b = await startGateway(config(redis));
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    client?.disconnect();
    await redis?.stop();
  });

  beforeEach((context) => {
    if (!redis) context.skip('no Redis available (see the notice above)');
  });

  it('counts the failures of both instances together, under its own key in Redis', async () => {
    const ip = freshIp();
    // Alternate instances: neither alone reaches MAX.
    for (let attempt = 1; attempt <= MAX; attempt++) {
      const gw = attempt % 2 ? a : b;
      expect(
        (await adminFrom(gw, ip, `wrong-${attempt}-0123456789abcdef`)).status,
        `attempt ${attempt}`,
      ).toBe(401);
    }
    expectTooMany(await adminFrom(b, ip, 'wrong-again-0123456789abcdef'));
    expectTooMany(await adminFrom(a, ip, 'wrong-once-more-0123456789ab'));

    const counter = `tg:rate:auth-failures:admin:${ip}`;
    expect(Number(await client.get(counter))).toBe(MAX + 2);
    const ttl = await client.pttl(counter);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(WINDOW_SECONDS * 1000);
    // No counter named after a route the limiter never had (`...undefinedundefined-<ip>`).
    const stray = await client.keys(`*undefined*${ip}`);
    expect(stray).toEqual([]);
  });
});
