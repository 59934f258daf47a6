import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';

/**
 * Redis goes away under a running gateway and comes back. Always a redis-server of this
 * suite's own (never REDIS_URL's: this suite kills it). While it is down, keys this instance
 * validated recently keep working (staleOkSeconds) and anything else fails closed with 503;
 * once it is back, the gateway resumes on its own, without a restart.
 */

interface Readiness {
  ready: boolean;
  store: { kind: string; ok: boolean; error?: string };
}

const available = hasRedisServerBinary();
if (!available) {
  process.stderr.write('\n!!! REDIS OUTAGE SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
}

let redis: RestartableRedis;
let gw: TestGateway;

beforeAll(async () => {
  if (!available) return;
  redis = await startRestartableRedisServer();
  gw = await startGateway({
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
    redis: { url: redis.url },
    admin: { key: TEST_ADMIN_KEY },
    // No key cache, so every request below really asks the store (or falls back to stale-ok);
    // no readiness cache, so /readyz reports the store as it is at that moment.
    auth: { cacheTtlMs: 0, staleOkSeconds: 60 },
    readiness: { cacheMs: 0 },
    cache: { enabled: true },
  });
});

afterAll(async () => {
  await gw?.close();
  await redis?.stop();
});

async function readiness(): Promise<{ status: number; body: Readiness }> {
  const response = await fetch(`${gw.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness };
}

async function apiError(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the call should have failed').toBeInstanceOf(OpenAI.APIError);
  return error as InstanceType<typeof OpenAI.APIError>;
}

const client = (key: string) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
const hello = { model: 'mock', messages: [{ role: 'user' as const, content: 'still here' }] };
/** Cacheable (temperature 0): the response cache lives in Redis too. */
const cacheable = { ...hello, temperature: 0 };

/**
 * One story in order: the tests share the gateway and the Redis, which the second kills and
 * the last restarts.
 */
describe.skipIf(!available)('a Redis outage under a running gateway', () => {
  let admin: AdminHttp;
  let teamId: string;
  let validated: string;
  let unseen: string;

  it('is ready while Redis is up, with one key validated on this instance', async () => {
    admin = new AdminHttp(gw.url);
    teamId = (await admin.createTeam({ name: 'outage' })).id;
    validated = (await admin.createKey({ team_id: teamId, name: 'validated' })).key;
    unseen = (await admin.createKey({ team_id: teamId, name: 'never-used-here' })).key;
    await expect(client(validated).models.list()).resolves.toBeDefined();
    expect((await readiness()).status).toBe(200);
  });

  it('while Redis is down: not ready, recently validated keys work, any other key gets 503', async () => {
    await redis.kill();

    const down = await readiness();
    expect(down.status).toBe(503);
    expect(down.body.ready).toBe(false);
    expect(down.body.store).toMatchObject({ kind: 'redis', ok: false });

    // Validated on this instance a moment ago: within staleOkSeconds it keeps working.
    const completion = await client(validated).chat.completions.create(hello);
    expect(completion.choices[0]?.message.content).toBe('still here');
    // The response cache cannot be read: identical cacheable requests (which would wait for
    // each other) go upstream instead of failing or hanging.
    const answers = await Promise.all(
      [1, 2, 3].map(() => client(validated).chat.completions.create(cacheable).withResponse()),
    );
    for (const { data, response } of answers) {
      expect(data.choices[0]?.message.content).toBe('still here');
      expect(response.headers.get('x-tollgate-cache')).toBe('MISS');
    }

    // Never validated here: the gateway cannot tell, so it fails closed and says when to retry.
    const error = await apiError(client(unseen).models.list());
    expect(error.status).toBe(503);
    expectEnvelope(
      { error: error.error },
      { type: 'server_error', code: 'service_unavailable', param: null },
    );
    expect(Number(error.headers?.get('retry-after'))).toBeGreaterThan(0);
  });

  it('while Redis is down, the admin API says 503 service_unavailable too, not an unexpected error', async () => {
    // DESIGN.md section 3: "store (Redis) unavailable -> 503 server_error / service_unavailable, retry-after".
    for (const [method, path, body] of [
      ['GET', '/teams', undefined],
      ['POST', '/keys', { team_id: teamId }],
    ] as const) {
      const response = await admin.call(method, path, body);
      expect(response.status, `${method} ${path}: ${JSON.stringify(response.body)}`).toBe(503);
      expectEnvelope(response.body, { type: 'server_error', code: 'service_unavailable', param: null });
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });

  it('once Redis is back on the same port, service resumes without restarting the gateway', async () => {
    await redis.restart();

    // ioredis reconnects on its own (its backoff is at most 2 s between attempts).
    let back = await readiness();
    for (let i = 0; i < 50 && back.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      back = await readiness();
    }
    expect(back.status).toBe(200);
    expect(back.body.store).toEqual({ kind: 'redis', ok: true });

    // The data survived the restart, and every key is checked against the store again.
    await expect(client(unseen).models.list()).resolves.toBeDefined();
    await expect(client(validated).chat.completions.create(hello)).resolves.toBeDefined();
    const fresh = await admin.createKey({ team_id: teamId, name: 'after-the-outage' });
    const answer = await client(fresh.key).chat.completions.create(hello);
    expect(answer.choices[0]?.message.content).toBe('still here');
    // And the response cache works again.
    const first = await client(fresh.key).chat.completions.create(cacheable).withResponse();
    const second = await client(fresh.key).chat.completions.create(cacheable).withResponse();
    expect(first.response.headers.get('x-tollgate-cache')).toBe('MISS');
    expect(second.response.headers.get('x-tollgate-cache')).toBe('HIT');
  });
});
