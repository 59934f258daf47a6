import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, Output, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import {
  CHAT_USAGE,
  type ChatOnlyBackend,
  chatOnlyMock,
  chatOnlyUpstream,
  IN_BAND_ERROR,
  IN_BAND_ERROR_PROMPT,
  JSON_ANSWER,
  PLAIN_ANSWER,
  scriptedChatUpstream,
  TRUNCATED_ANSWER,
  WEATHER_ANSWER,
  WEATHER_ARGUMENTS,
} from './support/chat-only-backend.js';
import type { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectErrorResponse, expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * `/v1/responses` on backends that only speak chat completions, through the real gateway: the
 * official SDK's `responses.create` / `responses.stream` and the Vercel AI SDK's default
 * (Responses) provider, against a chat-only OpenAI-compatible upstream (scripted answers, known
 * usage) and the chat-only mock. Answers and events are validated against the OpenAI spec; the
 * usage the gateway records must be the inner chat usage.
 */
const ADMIN = 'test-admin-key-0123456789';
const RESPONSE_USAGE = {
  input_tokens: CHAT_USAGE.prompt_tokens,
  input_tokens_details: { cached_tokens: 5, cache_write_tokens: 0 },
  output_tokens: CHAT_USAGE.completion_tokens,
  output_tokens_details: { reasoning_tokens: 2 },
  total_tokens: CHAT_USAGE.total_tokens,
};

let upstream: FakeUpstream;
let local: ChatOnlyBackend;
let echo: ChatOnlyBackend;
let gw: TestGateway;
let keyId: string;
let client: OpenAI;
let provider: ReturnType<typeof createOpenAI>;

async function admin<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return (await response.json()) as T;
}

type Json = Record<string, unknown>;

/** The chat requests the scripted upstream received since `from`. */
function chatRequests(from: number): Json[] {
  return upstream.requests.slice(from).map((request) => request.json ?? {});
}

/** The request log entry of a request id, once recorded (recording is off the client's path). */
async function recorded(requestId: string): Promise<Json> {
  for (;;) {
    const log = await admin<{ data: Json[] }>('GET', '/requests?limit=100');
    const entry = log.data.find((row) => row.request_id === requestId);
    if (entry) return entry;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** POST /v1/responses by hand, to see the raw status and bytes. */
function post(body: Json): Promise<Response> {
  return fetch(`${gw.baseURL}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

interface SseEvent {
  name: string | undefined;
  data: Json;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const lines = block.split('\n');
      return {
        name: lines.find((line) => line.startsWith('event: '))?.slice(7),
        data: JSON.parse(lines.find((line) => line.startsWith('data: '))?.slice(6) ?? '{}') as Json,
      };
    });
}

beforeAll(async () => {
  upstream = scriptedChatUpstream();
  const base = await upstream.start();
  local = chatOnlyUpstream('local', base);
  echo = chatOnlyMock('echo');
  gw = await startGateway(
    {
      auth: {},
      admin: { key: ADMIN },
      // The injected registry below replaces these (same names).
      backends: { local: { type: 'mock' }, echo: { type: 'mock' } },
      models: { 'local-model': { backend: 'local' }, echo: { backend: 'echo' } },
    },
    {},
    { registry: new BackendRegistry([local, echo]) },
  );
  const team = await admin<{ id: string }>('POST', '/teams', { name: 'responses-translation' });
  const key = await admin<{ id: string; key: string }>('POST', '/keys', { team_id: team.id });
  keyId = key.id;
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: key.key, maxRetries: 0 });
  provider = createOpenAI({ baseURL: gw.baseURL, apiKey: key.key });
});
afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('the official SDK against a chat-only backend', () => {
  it('responses.create: a spec-valid Response with the text, instructions as a system message', async () => {
    const from = upstream.requests.length;
    const { data: response, request_id } = await client.responses
      .create({ model: 'local-model', instructions: 'Be brief.', input: 'Say hello', temperature: 0.2 })
      .withResponse();
    expectResponse(response);
    expect(response.id).toMatch(/^resp_/);
    expect(response).toMatchObject({ object: 'response', status: 'completed', temperature: 0.2 });
    expect(response.output_text).toBe(PLAIN_ANSWER);
    expect(response.output[0]).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'output_text', text: PLAIN_ANSWER, annotations: [] }],
    });
    expect(response.usage).toEqual(RESPONSE_USAGE);
    // What the backend was asked: chat completions, never /v1/responses.
    expect(upstream.requests.slice(from).map((r) => r.url)).toEqual(['/v1/chat/completions']);
    expect(chatRequests(from)[0]).toEqual({
      model: 'local-model',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello' },
      ],
      temperature: 0.2,
    });
    expect(local.calls.at(-1)).toMatchObject({ endpoint: 'chat.completions', stream: false });
    // The gateway's accounting sees the inner chat usage.
    expect(await recorded(String(request_id))).toMatchObject({
      key_id: keyId,
      model: 'local-model',
      outcome: 'served',
      stream: false,
      prompt_tokens: 42,
      completion_tokens: 7,
      total_tokens: 49,
      cached_tokens: 5,
      reasoning_tokens: 2,
      estimated: false,
    });
  });

  it('responses.stream: named events the SDK assembles, usage on response.completed, recorded', async () => {
    const from = upstream.requests.length;
    const stream = client.responses.stream({
      model: 'local-model',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'Say hello' }] }],
    });
    const types: string[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      types.push(event.type);
    }
    const final = await stream.finalResponse();
    expectResponse(final);
    expect(final.output_text).toBe(PLAIN_ANSWER);
    expect(final.usage).toEqual(RESPONSE_USAGE);
    expect(types.slice(0, 4)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
    ]);
    expect(types.filter((type) => type === 'response.output_text.delta')).toHaveLength(3);
    expect(types.at(-1)).toBe('response.completed');
    expect(chatRequests(from)[0]).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Say hello' }] }],
    });
  });

  it('a stream carries no [DONE] and is recorded with the inner usage', async () => {
    const response = await post({ model: 'local-model', input: 'Say hello', stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const text = await response.text();
    expect(text).not.toContain('[DONE]');
    const events = parseSse(text);
    for (const event of events) {
      expectResponseStreamEvent(event.data);
      expect(event.name).toBe(event.data.type);
    }
    expect(events.map((event) => event.data.sequence_number)).toEqual(events.map((_, index) => index));
    expect(await recorded(String(response.headers.get('x-request-id')))).toMatchObject({
      stream: true,
      outcome: 'served',
      prompt_tokens: 42,
      completion_tokens: 7,
      total_tokens: 49,
      cached_tokens: 5,
      reasoning_tokens: 2,
      estimated: false,
    });
  });

  it("a team's token budget is charged the inner chat usage, JSON and stream", async () => {
    const team = await admin<{ id: string }>('POST', '/teams', {
      name: 'responses-translation-budget',
      // Large enough for what is reserved before the answer (the default output allowance).
      budgets: [{ period: 'day', max_tokens: 100_000 }],
    });
    const key = await admin<{ key: string }>('POST', '/keys', { team_id: team.id });
    const budgeted = new OpenAI({ baseURL: gw.baseURL, apiKey: key.key, maxRetries: 0 });
    await budgeted.responses.create({ model: 'local-model', input: 'Say hello' });
    const stream = budgeted.responses.stream({ model: 'local-model', input: 'Say hello' });
    for await (const _event of stream) {
      // drain
    }
    type Standing = {
      team: { standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> } };
    };
    const standing = async () =>
      (
        (await (
          await fetch(`${gw.baseURL}/tollgate/key`, { headers: { authorization: `Bearer ${key.key}` } })
        ).json()) as Standing
      ).team.standing.budgets[0];
    // Reservations settle just after each response goes out: wait until none is outstanding.
    let budget = await standing();
    while ((budget?.reserved_tokens ?? 1) > 0) budget = await standing();
    expect(budget).toMatchObject({ spent_tokens: 2 * CHAT_USAGE.total_tokens, reserved_tokens: 0 });
  });

  it('a tool call round trip: function_call out, function_call_output back in, then the answer', async () => {
    const from = upstream.requests.length;
    const tools: OpenAI.Responses.Tool[] = [
      {
        type: 'function',
        name: 'get_weather',
        description: 'Weather in a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        strict: true,
      },
    ];
    const first = await client.responses.create({
      model: 'local-model',
      input: 'Weather in Paris?',
      tools,
      tool_choice: { type: 'function', name: 'get_weather' },
    });
    expectResponse(first);
    const call = first.output.find((item) => item.type === 'function_call');
    expect(call).toMatchObject({ call_id: 'call_one', name: 'get_weather', arguments: WEATHER_ARGUMENTS });
    expect(first.tools).toMatchObject([{ type: 'function', name: 'get_weather', strict: true }]);
    if (call?.type !== 'function_call') throw new Error('no function call');
    const second = await client.responses.create({
      model: 'local-model',
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        call,
        { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21C' },
      ],
      tools,
    });
    expectResponse(second);
    expect(second.output_text).toBe(WEATHER_ANSWER);
    const [askChat, answerChat] = chatRequests(from);
    expect(askChat).toMatchObject({
      tools: [
        {
          type: 'function',
          function: { name: 'get_weather', description: 'Weather in a city', strict: true },
        },
      ],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    expect(answerChat?.messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_one',
            type: 'function',
            function: { name: 'get_weather', arguments: WEATHER_ARGUMENTS },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_one', content: 'sunny, 21C' },
    ]);
  });

  it('parallel tool calls stream as one function_call item each, with their argument deltas', async () => {
    const stream = client.responses.stream({
      model: 'local-model',
      input: 'Weather in both cities?',
      tools: [{ type: 'function', name: 'get_weather', parameters: null, strict: false }],
    });
    const argumentDeltas: number[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      if (event.type === 'response.function_call_arguments.delta') argumentDeltas.push(event.output_index);
    }
    const final = await stream.finalResponse();
    expect(final.output).toMatchObject([
      { type: 'function_call', call_id: 'call_one', arguments: WEATHER_ARGUMENTS },
      { type: 'function_call', call_id: 'call_two', arguments: '{"city":"Rome"}' },
    ]);
    // Interleaved as the chat stream sent them.
    expect(argumentDeltas.slice(0, 2)).toEqual([0, 1]);
  });

  it('max_output_tokens: max_tokens upstream; a length finish is status incomplete (JSON and stream)', async () => {
    const from = upstream.requests.length;
    const response = await client.responses.create({
      model: 'local-model',
      input: 'Tell a story',
      max_output_tokens: 16,
    });
    expectResponse(response);
    expect(response).toMatchObject({
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
      max_output_tokens: 16,
      output_text: TRUNCATED_ANSWER,
    });
    expect(chatRequests(from)[0]).toMatchObject({ max_tokens: 16 });
    const stream = client.responses.stream({
      model: 'local-model',
      input: 'Tell a story',
      max_output_tokens: 16,
    });
    const types: string[] = [];
    for await (const event of stream) {
      expectResponseStreamEvent(event);
      types.push(event.type);
    }
    expect(types.at(-1)).toBe('response.incomplete');
  });

  it('text.format json_schema becomes response_format and is echoed', async () => {
    const from = upstream.requests.length;
    const format = {
      type: 'json_schema' as const,
      name: 'weather',
      strict: true,
      schema: {
        type: 'object',
        properties: { city: { type: 'string' }, temperature: { type: 'number' } },
        required: ['city', 'temperature'],
        additionalProperties: false,
      },
    };
    const response = await client.responses.create({
      model: 'local-model',
      input: 'JSON please',
      text: { format },
    });
    expectResponse(response);
    expect(JSON.parse(response.output_text)).toEqual(JSON.parse(JSON_ANSWER));
    expect(response.text?.format).toEqual(format);
    expect(chatRequests(from)[0]?.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'weather', strict: true, schema: format.schema },
    });
  });

  it('store: true is answered (not refused) and the response says it was not stored', async () => {
    const response = await post({ model: 'local-model', input: 'Say hello', store: true });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Json;
    expectResponse(body);
    expect(body.store).toBe(false);
  });

  it.each([
    [{ previous_response_id: 'resp_123' }, 'previous_response_id'],
    [{ tools: [{ type: 'web_search' }] }, 'tools[0].type'],
    [{ background: true }, 'background'],
    [{ conversation: 'conv_1' }, 'conversation'],
    [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0]'],
  ])('refuses %j with a 400 naming %s, before calling the backend', async (extra, param) => {
    const from = upstream.requests.length;
    const response = await post({ model: 'local-model', input: 'hi', ...extra });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: Json };
    expectErrorResponse(body);
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param, code: 'unsupported_parameter' });
    expect(upstream.requests.length).toBe(from);
  });

  it("the backend's error status is the client's, JSON and stream", async () => {
    for (const stream of [false, true]) {
      const response = await post({ model: 'echo', input: 'boom [[mock:error:429]]', stream });
      expect(response.status).toBe(429);
      expectErrorResponse(await response.json());
    }
  });

  it('an error as the first event of the chat stream keeps its status (the gateway reads ahead)', async () => {
    const response = await post({
      model: 'local-model',
      input: `${IN_BAND_ERROR_PROMPT} please`,
      stream: true,
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: Json };
    expectErrorResponse(body);
    expect(body.error).toMatchObject({ message: IN_BAND_ERROR.message, code: 'context_length_exceeded' });
  });
});

describe('the Vercel AI SDK default provider (Responses API) against a chat-only backend', () => {
  it('generateText: text, finish reason and the inner usage', async () => {
    const result = await generateText({ model: provider('local-model'), prompt: 'Say hello' });
    expect(result.text).toBe(PLAIN_ANSWER);
    expect(result.finishReason).toBe('stop');
    expect(result.usage).toMatchObject({ inputTokens: 42, outputTokens: 7, totalTokens: 49 });
  });

  it('streamText: text, finish reason and the inner usage', async () => {
    const result = streamText({ model: provider('local-model'), prompt: 'Say hello' });
    expect(await result.text).toBe(PLAIN_ANSWER);
    expect(await result.finishReason).toBe('stop');
    expect(await result.usage).toMatchObject({ inputTokens: 42, outputTokens: 7, totalTokens: 49 });
  });

  it.each([
    ['generateText', false],
    ['streamText', true],
  ])('%s: a tool call round trip over two steps', async (_name, streaming) => {
    const from = upstream.requests.length;
    const executed: unknown[] = [];
    const options = {
      model: provider('local-model'),
      prompt: 'Weather in Paris?',
      tools: {
        get_weather: tool({
          description: 'Weather in a city',
          inputSchema: jsonSchema<{ city: string }>({
            type: 'object',
            properties: { city: { type: 'string' } },
            required: ['city'],
          }),
          execute: async (input) => {
            executed.push(input);
            return 'sunny, 21C';
          },
        }),
      },
      stopWhen: stepCountIs(2),
    };
    const text = streaming ? await streamText(options).text : (await generateText(options)).text;
    expect(executed).toEqual([{ city: 'Paris' }]);
    expect(text).toBe(WEATHER_ANSWER);
    const second = chatRequests(from)[1];
    expect(second?.messages).toMatchObject([
      { role: 'user' },
      { role: 'assistant', tool_calls: [{ id: 'call_one', function: { name: 'get_weather' } }] },
      { role: 'tool', tool_call_id: 'call_one' },
    ]);
  });

  it('a second turn: sent as items with store: false; the default (item references) is a clear 400', async () => {
    const first = await generateText({ model: provider('echo'), prompt: 'first turn' });
    const messages = [
      { role: 'user' as const, content: 'first turn' },
      ...first.response.messages,
      { role: 'user' as const, content: 'second turn' },
    ];
    const unstored = { openai: { store: false } };
    const second = await generateText({ model: provider('echo'), messages, providerOptions: unstored });
    expect(second.text).toBe('second turn');
    const call = echo.calls.at(-1);
    expect(call?.kind === 'json' && call.body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'first turn' }] },
      { role: 'assistant', content: 'first turn' },
      { role: 'user', content: [{ type: 'text', text: 'second turn' }] },
    ]);
    // By default the SDK refers to its earlier answer by id, which only a stored response resolves.
    const refused = await generateText({ model: provider('echo'), messages }).catch(
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({
      statusCode: 400,
      data: { error: { param: 'input[1]', code: 'unsupported_parameter' } },
    });
    expect(String((refused as Error).message)).toContain('store = false');
  });

  it('max output tokens: finish reason length', async () => {
    const result = await generateText({
      model: provider('local-model'),
      prompt: 'Tell a story',
      maxOutputTokens: 16,
    });
    expect(result.text).toBe(TRUNCATED_ANSWER);
    expect(result.finishReason).toBe('length');
  });

  it('structured output: json_schema through to the chat backend', async () => {
    const from = upstream.requests.length;
    const result = await generateText({
      model: provider('local-model'),
      prompt: 'JSON please',
      output: Output.object({
        schema: jsonSchema<{ city: string; temperature: number }>({
          type: 'object',
          properties: { city: { type: 'string' }, temperature: { type: 'number' } },
          required: ['city', 'temperature'],
          additionalProperties: false,
        }),
      }),
    });
    expect(result.output).toEqual({ city: 'Paris', temperature: 21 });
    expect(chatRequests(from)[0]?.response_format).toMatchObject({ type: 'json_schema' });
  });
});

describe('the chat-only mock through the translation', () => {
  it('echoes the last user message, JSON and stream', async () => {
    const response = await client.responses.create({ model: 'echo', input: 'echo this back' });
    expectResponse(response);
    expect(response.output_text).toBe('echo this back');
    const stream = client.responses.stream({ model: 'echo', input: 'echo this too' });
    for await (const event of stream) expectResponseStreamEvent(event);
    expect((await stream.finalResponse()).output_text).toBe('echo this too');
    expect(echo.calls.every((call) => call.endpoint === 'chat.completions')).toBe(true);
  });

  it('a stream broken mid-way ends with response.failed and is recorded as failed', async () => {
    const response = await post({
      model: 'echo',
      input: 'a long answer [[mock:fail-after:3]]',
      stream: true,
    });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    const failed = events.find((event) => event.name === 'response.failed');
    expect(failed).toBeDefined();
    expectResponseStreamEvent(failed?.data);
    expect(failed?.data.response).toMatchObject({ status: 'failed', error: { code: 'server_error' } });
    expect(events.some((event) => event.name === 'response.completed')).toBe(false);
    expect(await recorded(String(response.headers.get('x-request-id')))).toMatchObject({ outcome: 'failed' });
  });
});
