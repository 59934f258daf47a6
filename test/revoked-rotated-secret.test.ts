import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests, type TestRedis } from './support/redis.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

/**
 * After a key is revoked, every secret it ever had is refused for good: the current one and an
 * old one rotated out (still in its grace period, or past it) both get 401 with
 * `x-should-retry: false`, and the official SDK, with its default retries, sends each request
 * once. An old secret still in its grace is told the key was revoked, like the new one.
 */

const stores = [{ store: 'memory' as const }, { store: 'redis' as const }];

describe.each(stores)('a revoked key and its rotated secrets ($store store)', ({ store }) => {
  let redis: TestRedis | undefined;
  let gw: TestGateway;
  let admin: AdminHttp;
  let teamId: string;
  let unavailable = false;

  beforeAll(async () => {
    if (store === 'redis') {
      redis = await redisForTests();
      if (!redis) {
        unavailable = true;
        return;
      }
    }
    gw = await startGateway({
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
      // cacheTtlMs 0: each request asks the store, so the revocation is seen at once.
      auth: { cacheTtlMs: 0, failedAttempts: { max: 10_000, windowSeconds: 60 } },
      admin: { key: TEST_ADMIN_KEY },
      ...(redis ? { redis: { url: redis.url } } : {}),
    });
    admin = new AdminHttp(gw.url);
    teamId = (await admin.createTeam({ name: `revoked-rotated-${store}` })).id;
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  beforeEach((context) => {
    if (unavailable) context.skip('no Redis available (see the notice above)');
  });

  const requestLines = () => gw.logs.filter((line) => line.msg === 'request' && line.status === 401).length;

  /** The refusal as the SDK (default retries) sees it, and how many requests reached the gateway. */
  async function refusal(apiKey: string): Promise<{ error: ApiError; sent: number }> {
    const before = requestLines();
    const error = await new OpenAI({ baseURL: gw.baseURL, apiKey }).chat.completions
      .create({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    const refused = error as ApiError;
    expectEnvelope(
      { error: refused.error },
      { type: 'invalid_request_error', code: 'invalid_api_key', param: null },
    );
    // The request line is written when the response closes, which can trail the client by a tick.
    for (let i = 0; i < 1_000 && requestLines() === before; i++) await new Promise((r) => setTimeout(r, 10));
    return { error: refused, sent: requestLines() - before };
  }

  it('an old secret still in its grace period: "revoked", x-should-retry: false, sent once', async () => {
    const issued = await admin.createKey({ team_id: teamId });
    const rotated = await admin.rotateKey(issued.id, { grace_seconds: 3_600 });
    const old = new OpenAI({ baseURL: gw.baseURL, apiKey: issued.key, maxRetries: 0 });
    await expect(old.models.list()).resolves.toBeDefined(); // in grace: still works
    await admin.revokeKey(issued.id);

    for (const secret of [rotated.key, issued.key]) {
      const { error, sent } = await refusal(secret);
      expect(error.headers?.get('x-should-retry')).toBe('false');
      expect((error.error as { message: string }).message).toBe('This API key has been revoked.');
      expect(sent).toBe(1);
    }
  });

  it('an old secret whose grace had already ended: x-should-retry: false too, sent once', async () => {
    const issued = await admin.createKey({ team_id: teamId });
    const rotated = await admin.rotateKey(issued.id); // no grace: the old secret ends at once
    await admin.revokeKey(issued.id);

    const current = await refusal(rotated.key);
    expect(current.error.headers?.get('x-should-retry')).toBe('false');
    const old = await refusal(issued.key);
    expect(old.error.headers?.get('x-should-retry')).toBe('false');
    expect(old.sent).toBe(1);
  });
});
