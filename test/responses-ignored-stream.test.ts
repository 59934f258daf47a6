import { createOpenAI } from '@ai-sdk/openai';
import { streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * A native Responses upstream that ignores `stream: true` and answers the whole Response as JSON:
 * the client that asked for a stream gets one (the events that end in that Response), as the
 * chat path replays a whole chat completion; a client that asked for JSON still gets the JSON.
 */
const TEXT = 'Hello from a whole answer.';
const USAGE = {
  input_tokens: 7,
  input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
  output_tokens: 5,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 12,
};
const WHOLE = {
  id: 'resp_whole',
  object: 'response',
  created_at: 1_700_000_000,
  status: 'completed',
  completed_at: 1_700_000_001,
  error: null,
  incomplete_details: null,
  instructions: null,
  max_output_tokens: null,
  model: 'up',
  output: [
    {
      id: 'msg_1',
      type: 'message',
      status: 'completed',
      role: 'assistant',
      content: [{ type: 'output_text', text: TEXT, annotations: [], logprobs: [] }],
    },
  ],
  parallel_tool_calls: true,
  previous_response_id: null,
  reasoning: null,
  store: false,
  temperature: 1,
  text: { format: { type: 'text' } },
  tool_choice: 'auto',
  tools: [],
  top_p: 1,
  truncation: 'disabled',
  user: null,
  metadata: {},
  usage: USAGE,
};

let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/responses', async (_request, res) =>
    sendJson(res, 200, WHOLE),
  );
  const url = await upstream.start();
  gw = await startGateway({
    backends: { up: { type: 'openai', baseUrl: `${url}/v1` } },
    models: { whole: { backend: 'up' } },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('a Responses upstream that ignored stream: true', () => {
  it('the official SDK streams spec-valid events ending in the Response', async () => {
    const stream = client.responses.stream({ model: 'whole', input: 'hi' });
    const types: string[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      types.push(event.type);
    }
    expect(types[0]).toBe('response.created');
    expect(types).toContain('response.output_text.delta');
    expect(types.at(-1)).toBe('response.completed');
    const final = await stream.finalResponse();
    expect(final.output_text).toBe(TEXT);
    expect(final.usage).toEqual(USAGE);
  });

  it("the AI SDK's streamText gets the text", async () => {
    const result = streamText({
      model: createOpenAI({ baseURL: gw.baseURL, apiKey: 'unused' })('whole'),
      prompt: 'hi',
    });
    expect(await result.text).toBe(TEXT);
    expect(await result.finishReason).toBe('stop');
  });

  it('a JSON request still gets the JSON', async () => {
    const response = await client.responses.create({ model: 'whole', input: 'hi' });
    expectResponse(response);
    expect(response.output_text).toBe(TEXT);
  });
});
