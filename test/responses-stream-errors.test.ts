import { createOpenAI } from '@ai-sdk/openai';
import { streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A Responses API stream that fails after its 200 (here: the upstream's connection drops after its
 * first event) ends with the Responses API's own `error` event, which the official SDK throws as an
 * APIError and the AI SDK reports as the error it is, not with a chat-shaped `data: {"error":...}`
 * the AI SDK cannot read.
 */
let upstream: FakeUpstream;
let gw: TestGateway;
let key: string;

const created = {
  type: 'response.created',
  sequence_number: 0,
  response: {
    id: 'resp_1',
    object: 'response',
    created_at: 1_700_000_000,
    status: 'in_progress',
    model: 'gpt-test',
    output: [],
    error: null,
    incomplete_details: null,
    usage: null,
  },
};

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/responses', (_request, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: response.created\ndata: ${JSON.stringify(created)}\n\n`, () => res.destroy());
  });
  const base = await upstream.start();
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
    models: { 'gpt-test': { backend: 'up' } },
  });
  key = await new AdminHttp(gw.url).teamKey({ name: 'responses-errors' });
});
afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('a Responses stream that fails after its 200', () => {
  it('ends with the Responses API error event, with OpenAI’s error object in it', async () => {
    const response = await fetch(`${gw.baseURL}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test', input: 'hi', stream: true }),
    });
    expect(response.status).toBe(200);
    const blocks = (await response.text()).split('\n\n').filter((block) => block.includes('data: '));
    const last = blocks.at(-1) ?? '';
    expect(last.startsWith('event: error\n')).toBe(true);
    const data = JSON.parse(last.slice(last.indexOf('data: ') + 6)) as Record<string, unknown>;
    expect(data).toMatchObject({
      type: 'error',
      code: expect.any(String),
      message: expect.any(String),
      sequence_number: expect.any(Number),
    });
    expect(data.error).toMatchObject({ type: expect.any(String), message: expect.any(String) });
  });

  it('the official SDK throws it as an APIError', async () => {
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const read = async () => {
      for await (const _event of client.responses.stream({ model: 'gpt-test', input: 'hi' })) {
        // Only the failure matters here.
      }
    };
    await expect(read()).rejects.toBeInstanceOf(OpenAI.APIError);
  });

  it('the AI SDK reports the error itself, not a chunk it cannot read', async () => {
    const provider = createOpenAI({ baseURL: gw.baseURL, apiKey: key });
    const errors: unknown[] = [];
    const result = streamText({
      model: provider('gpt-test'),
      prompt: 'hi',
      maxRetries: 0,
      onError: ({ error }) => {
        errors.push(error);
      },
    });
    for await (const _part of result.fullStream) {
      // Drained: the error arrives as a part and through onError.
    }
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message ?? errors[0])).not.toMatch(/Type validation failed/);
  });
});
