import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminHttp, type KeyObject, TEST_ADMIN_KEY } from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { redisForTests, type TestRedis } from './support/redis.js';

/**
 * Deleting a team with ?force=true revokes its keys, then deletes the team. Such a key shows
 * `status: "revoked"` in the admin API, and /v1 says so too (README: the 401's message says why),
 * on OpenAI's surface (Bearer) and on Anthropic's (x-api-key), not "Incorrect API key".
 */

const stores = [{ store: 'memory' as const }, { store: 'redis' as const }];

describe.each(stores)('a key of a team deleted with ?force=true ($store store)', ({ store }) => {
  let redis: TestRedis | undefined;
  let gw: TestGateway;
  let admin: AdminHttp;
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
      // cacheTtlMs 0: each request asks the store, so the deletion is seen at once.
      auth: { cacheTtlMs: 0, failedAttempts: { max: 10_000, windowSeconds: 60 } },
      admin: { key: TEST_ADMIN_KEY },
      ...(redis ? { redis: { url: redis.url } } : {}),
    });
    admin = new AdminHttp(gw.url);
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  beforeEach((context) => {
    if (unavailable) context.skip('no Redis available (see the notice above)');
  });

  /** A team with one working key (`disabled`: disabled before the deletion), then deleted. */
  async function deletedTeamKey(disabled = false): Promise<{ key: string; id: string }> {
    const team = await admin.createTeam({ name: `deleted-${store}-${crypto.randomUUID().slice(0, 8)}` });
    const issued = await admin.createKey({ team_id: team.id });
    // It worked, and this instance has validated it.
    const ok = await new OpenAI({
      baseURL: gw.baseURL,
      apiKey: issued.key,
      maxRetries: 0,
    }).chat.completions.create({
      model: 'mock',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(ok.object).toBe('chat.completion');
    if (disabled) await admin.patchKey(issued.id, { disabled: true });
    await admin.ok('DELETE', `/teams/${team.id}?force=true`, undefined, 200);
    const shown = await admin.ok<KeyObject>('GET', `/keys/${issued.id}`);
    expect(shown.status).toBe('revoked');
    return { key: issued.key, id: issued.id };
  }

  async function openaiRefusal(apiKey: string): Promise<InstanceType<typeof OpenAI.APIError>> {
    const error = await new OpenAI({ baseURL: gw.baseURL, apiKey }).chat.completions
      .create({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    return error as InstanceType<typeof OpenAI.APIError>;
  }

  it('is told "revoked" on the OpenAI surface, for good', async () => {
    const { key } = await deletedTeamKey();
    const error = await openaiRefusal(key);
    expect(error.status).toBe(401);
    expect(error.headers?.get('x-should-retry')).toBe('false');
    expect(error.error).toMatchObject({
      message: 'This API key has been revoked.',
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });
  });

  it('is told "revoked" on the Anthropic surface (x-api-key)', async () => {
    const { key } = await deletedTeamKey();
    const error = await new Anthropic({ baseURL: gw.url, apiKey: key }).messages
      .create({ model: 'mock', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
    const refused = error as InstanceType<typeof Anthropic.APIError>;
    expect(refused.status).toBe(401);
    expect(refused.headers?.get('x-should-retry')).toBe('false');
    expect(refused.error).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', message: 'This API key has been revoked.' },
    });
  });

  it('a key disabled before the deletion is revoked by it, and told so', async () => {
    const { key } = await deletedTeamKey(true);
    expect((await openaiRefusal(key)).error).toMatchObject({ message: 'This API key has been revoked.' });
  });

  it('an unknown key is still only "Incorrect API key"', async () => {
    const error = await openaiRefusal('tg-0000000000000000-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    expect(error.error).toMatchObject({ message: expect.stringMatching(/^Incorrect API key provided/) });
  });
});
