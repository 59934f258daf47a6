import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type ErrorObject, expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

/**
 * A refused credential says what is wrong with it: missing, wrong, or the right kind of key on
 * the wrong API (a team key on /admin, the admin key on /v1), with the way to the right one.
 */

const MODELS: Pick<ConfigInput, 'backends' | 'models'> = {
  backends: { mock: { type: 'mock' } },
  models: { mock: { backend: 'mock' } },
};
const auth = { failedAttempts: { max: 10_000, windowSeconds: 60 } };
const admin = { failedAttempts: { max: 10_000, windowSeconds: 60 } };

async function adminCall(gw: TestGateway, key: string | null) {
  const response = await new AdminHttp(gw.url, key).call('GET', '/teams');
  expect(response.status).toBe(401);
  expect(response.headers.get('x-should-retry')).toBe('false');
  return expectEnvelope(response.body, {
    type: 'invalid_request_error',
    code: 'invalid_admin_key',
    param: null,
  });
}

async function v1Refusal(gw: TestGateway, apiKey: string): Promise<ErrorObject> {
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey, maxRetries: 0 });
  const error = await client.models.list().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
  const refused = error as ApiError;
  expect(refused.headers?.get('x-should-retry')).toBe('false');
  return expectEnvelope(
    { error: refused.error },
    { type: 'invalid_request_error', code: 'invalid_api_key', param: null },
  );
}

describe('with a configured admin key', () => {
  let gw: TestGateway;
  let teamKey: string;

  beforeAll(async () => {
    gw = await startGateway({ ...MODELS, auth, admin: { key: TEST_ADMIN_KEY, ...admin } });
    const team = await new AdminHttp(gw.url).createTeam({ name: 'hints' });
    teamKey = (await new AdminHttp(gw.url).createKey({ team_id: team.id })).key;
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('/admin without a key: says the admin key is missing and how to send it', async () => {
    const error = await adminCall(gw, null);
    expect(error.message).toMatch(/didn't provide the admin key/);
    expect(error.message).toContain('Authorization: Bearer');
  });

  it('/admin with a wrong key: "Incorrect admin key provided."', async () => {
    const error = await adminCall(gw, 'not-the-admin-key-0123456789');
    expect(error.message).toBe('Incorrect admin key provided.');
  });

  it('/admin with a team key: says it is a team API key and that the admin key (tga-...) is needed', async () => {
    const error = await adminCall(gw, teamKey);
    expect(error.message).toMatch(
      /^Incorrect admin key provided: this is a team API key; the admin API needs the admin key \(tga-/,
    );
    expect(error.message).not.toContain(teamKey);
  });

  it('/v1 with a configured admin key of its own shape: the plain answer, the same as for a wrong one', async () => {
    // Comparing it with the admin key here would tell a guesser, outside the admin guard, that it hit.
    expect(TEST_ADMIN_KEY.startsWith('tga-')).toBe(false);
    const right = await v1Refusal(gw, TEST_ADMIN_KEY);
    const wrong = await v1Refusal(gw, `${TEST_ADMIN_KEY}x`);
    expect(right.message).toBe(wrong.message);
    expect(right.message).toBe('Incorrect API key provided. Ask your Tollgate admin for a key.');
  });

  it('/v1 with something that is neither: the plain "Incorrect API key" answer, no hint', async () => {
    const error = await v1Refusal(gw, 'sk-some-openai-key-0123456789');
    expect(error.message).toBe('Incorrect API key provided. Ask your Tollgate admin for a key.');
  });
});

describe('with a generated admin key (tga-...)', () => {
  let gw: TestGateway;
  let generated: string | undefined;

  beforeAll(async () => {
    gw = await startGateway(
      { ...MODELS, auth, admin },
      {},
      { onAdminKeyGenerated: (key) => (generated = key) },
    );
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('/v1 with it: the admin-key hint; /admin with it: accepted', async () => {
    expect(generated).toMatch(/^tga-/);
    const error = await v1Refusal(gw, generated ?? '');
    expect(error.message).toMatch(/this is an admin key; \/v1 needs a team API key \(tg-\.\.\.\)/);
    expect((await new AdminHttp(gw.url, generated ?? '').call('GET', '/teams')).status).toBe(200);
  });
});
