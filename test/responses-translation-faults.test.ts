import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { chatOnlyUpstream } from './support/chat-only-backend.js';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * `/v1/responses` translated onto a chat upstream that misbehaves in ways a client cannot see
 * for itself: a stream that stops mid-answer with a clean close (no finish_reason, no [DONE]),
 * and answers without usage. Through the real gateway, so what is recorded is checked too.
 */
const ADMIN = 'test-admin-key-0123456789';

type Json = Record<string, unknown>;

const base = { id: 'chatcmpl-f', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'up' };
const chunk = (delta: Json, finish: string | null = null) => ({
  ...base,
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
});

let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;

async function admin<T>(path: string): Promise<T> {
  const response = await fetch(`${gw.url}/admin${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return (await response.json()) as T;
}

/** The request log entry of a request id, once recorded (recording is off the client's path). */
async function recorded(requestId: string): Promise<Json> {
  const log = await pollUntil(
    () => admin<{ data: Json[] }>('/requests?limit=100'),
    (read) => read.data.some((row) => row.request_id === requestId),
  );
  const entry = log.data.find((row) => row.request_id === requestId);
  expect(entry, `no record of ${requestId}`).toBeDefined();
  return entry as Json;
}

function parseSse(text: string): Json[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      return JSON.parse(data?.slice(6) ?? '{}') as Json;
    });
}

beforeAll(async () => {
  // The prompt says how to answer: `cut` stops after two chunks, anything else answers without usage.
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
    const body = request.json ?? {};
    const cut = JSON.stringify(body.messages).includes('cut');
    if (body.stream !== true)
      return sendJson(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'Hello there, friend.' },
            finish_reason: 'stop',
          },
        ],
      });
    if (cut)
      return sendSse(res, [chunk({ role: 'assistant', content: 'Once upon' }), chunk({ content: ' a' })], {
        done: false,
      });
    return sendSse(res, [chunk({ role: 'assistant', content: 'Hello there, friend.' }), chunk({}, 'stop')]);
  });
  const url = await upstream.start();
  gw = await startGateway(
    {
      auth: {},
      admin: { key: ADMIN },
      backends: { local: { type: 'mock' } },
      models: { 'local-model': { backend: 'local' } },
    },
    {},
    { registry: new BackendRegistry([chatOnlyUpstream('local', url)]) },
  );
  const team = await fetch(`${gw.url}/admin/teams`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'faults' }),
  }).then((r) => r.json() as Promise<{ id: string }>);
  const key = await fetch(`${gw.url}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ team_id: team.id }),
  }).then((r) => r.json() as Promise<{ key: string }>);
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: key.key, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('/v1/responses on a chat upstream that misbehaves', () => {
  it('a stream cut off with a clean close ends with response.failed and is recorded as failed', async () => {
    const response = await fetch(`${gw.baseURL}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'local-model', input: 'cut', stream: true }),
    });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    expect(events.map((event) => event.type)).not.toContain('response.completed');
    const failed = events.find((event) => event.type === 'response.failed');
    expectResponseStreamEvent(failed);
    expect(failed?.response).toMatchObject({ status: 'failed', error: { code: 'server_error' } });
    expect(await recorded(String(response.headers.get('x-request-id')))).toMatchObject({ outcome: 'failed' });
  });

  it("no usage from the backend: the Response's usage is the gateway's count, recorded as estimated", async () => {
    const { data: json, request_id } = await client.responses
      .create({ model: 'local-model', input: 'Say hello' })
      .withResponse();
    expectResponse(json);
    expect(json.usage).toMatchObject({ output_tokens: 5 });
    expect(json.usage?.input_tokens).toBe(
      estimatePromptTokens('responses', { model: 'local-model', input: 'Say hello' }),
    );
    expect(await recorded(String(request_id))).toMatchObject({
      outcome: 'served',
      prompt_tokens: json.usage?.input_tokens,
      completion_tokens: 5,
      estimated: true,
    });

    const stream = client.responses.stream({ model: 'local-model', input: 'Say hello' });
    for await (const event of stream) expectResponseStreamEvent(event);
    const final = await stream.finalResponse();
    expect(final.usage).toEqual(json.usage);
  });
});
