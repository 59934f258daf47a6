import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type ErrorObject, expectEnvelope } from './support/error-envelope.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { chatCompletionFixture } from './support/openai-fixtures.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

/**
 * One rule for models a key may not use: outside the key's (or its team's) allowlist a model
 * does not exist for that key. It gets the same 404 `model_not_found` as a name the gateway does
 * not serve ("does not exist or you do not have access to it", OpenAI's own answer to both), on
 * every endpoint that takes a model, so a key cannot probe which models the gateway has.
 */

let upstream: FakeUpstream;
let gw: TestGateway;
let key: string;

beforeAll(async () => {
  upstream = new FakeUpstream();
  upstream.on('POST', '/v1/chat/completions', (request, res) => {
    sendJson(res, 200, chatCompletionFixture(String(request.json?.model), 'hello'));
  });
  upstream.on('GET', '/v1/models', (_request, res) => {
    sendJson(res, 200, {
      object: 'list',
      data: [{ id: 'wild-one', object: 'model', created: 0, owned_by: 'x' }],
    });
  });
  const url = await upstream.start();
  gw = await startGateway({
    ...upstreamConfig(url),
    models: {
      ...upstreamConfig(url).models,
      // Any `wild/<name>` exists as far as the router can tell.
      'wild/*': { backend: 'upstream' },
    },
    auth: { failedAttempts: { max: 10_000, windowSeconds: 60 } },
    admin: { key: TEST_ADMIN_KEY },
  });
  const admin = new AdminHttp(gw.url);
  // `ghost` is on the lists but no route serves it.
  const team = await admin.createTeam({ name: 'access-rule', models: ['mock', 'gpt-test', 'ghost'] });
  key = (await admin.createKey({ team_id: team.id, models: ['mock', 'ghost'] })).key;
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

/** What a model name gets, seen exactly as a client sees it (SDK defaults: retries on). */
async function refusal(call: (client: OpenAI) => Promise<unknown>): Promise<ApiError> {
  const error = await call(new OpenAI({ baseURL: gw.baseURL, apiKey: key })).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the call should have failed').toBeInstanceOf(OpenAI.NotFoundError);
  return error as ApiError;
}

const CASES = [
  ['exists but is not allowed', 'gpt-test'],
  ['exists through a wildcard route but is not allowed', 'wild/wild-one'],
  ['does not exist and is not allowed', 'no-such-model'],
  ['is allowed but does not exist', 'ghost'],
] as const;

/** The body with the model's name taken out: what must not differ between the cases. */
function shape(error: ErrorObject, model: string): ErrorObject {
  return { ...error, message: error.message.replaceAll(model, '<model>') };
}

describe('a model outside the allowlist gets the same answer whether it exists or not', () => {
  it.each(CASES)(
    'chat.completions: a model that %s -> 404 model_not_found, never sent upstream',
    async (_, model) => {
      const upstreamBefore = upstream.requests.length;
      const error = await refusal((client) =>
        client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }),
      );
      const body = expectEnvelope(
        { error: error.error },
        { type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
      );
      expect(body.message).toBe(`The model '${model}' does not exist or you do not have access to it.`);
      // Nothing names where the request would have gone.
      expect(error.headers?.get('x-tollgate-backend')).toBeNull();
      expect(upstream.requests.length).toBe(upstreamBefore);
    },
  );

  it('every case answers the same status, headers that matter and body (but for the name)', async () => {
    const answers = await Promise.all(
      CASES.map(async ([, model]) => {
        const response = await fetch(`${gw.baseURL}/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
        });
        const body = (await response.json()) as { error: ErrorObject };
        return {
          status: response.status,
          backend: response.headers.get('x-tollgate-backend'),
          body: shape(body.error, model),
        };
      }),
    );
    for (const answer of answers.slice(1)) expect(answer).toEqual(answers[0]);
  });

  it.each(CASES)('models.retrieve: a model that %s -> the same 404', async (_, model) => {
    const error = await refusal((client) => client.models.retrieve(model));
    const body = expectEnvelope(
      { error: error.error },
      { type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
    );
    expect(body.message).toBe(`The model '${model}' does not exist or you do not have access to it.`);
  });

  it.each(CASES)('embeddings: a model that %s -> the same 404', async (_, model) => {
    const error = await refusal((client) => client.embeddings.create({ model, input: 'hi' }));
    expect(error.code).toBe('model_not_found');
  });

  it('an allowed model that exists is served, and is all the key lists', async () => {
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: 'mock',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion.choices[0]?.message.content).toBe('hi');
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['mock']);
  });
});
