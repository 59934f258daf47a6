import type { ServerResponse } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, type RecordedRequest, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { newRequestId, providerRecord, recordOf, withRequestId } from './support/usage-records.js';

/**
 * Anthropic's Messages API served inbound, with the official Anthropic SDK as the client, in
 * front of backends that are not Anthropic: an OpenAI-compatible upstream (a real HTTP server on
 * 127.0.0.1 answering chat completions, JSON and SSE) and the mock backend. The gateway
 * translates each Messages request into a chat request and the answer back; these tests check
 * both halves (what the upstream received, what the SDK got) and what the gateway recorded for
 * the team key that asked.
 */

type Json = Record<string, unknown>;

/** Figures no count of the gateway's could produce, so the record shows whose they are. */
const UPSTREAM_USAGE = {
  prompt_tokens: 23,
  completion_tokens: 9,
  total_tokens: 32,
  prompt_tokens_details: { cached_tokens: 5 },
};
/** The same usage in Anthropic's terms: cached prompt tokens counted apart from input_tokens. */
const ANTHROPIC_USAGE = {
  input_tokens: 18,
  output_tokens: 9,
  cache_read_input_tokens: 5,
  cache_creation_input_tokens: 0,
};

const PUBLIC_MODEL = 'chat-model';
const UPSTREAM_MODEL = 'upstream-chat';
const MOCK_MODEL = 'mock-model';

/** How the upstream answers the next chat request; each test sets its own. */
type Script = (body: Json, res: ServerResponse) => void | Promise<void>;

let upstream: FakeUpstream;
let gw: TestGateway;
let admin: AdminHttp;
let key: string;
let client: Anthropic;
let script: Script;

function chatCompletion(message: Json, finishReason: string, choiceExtra: Json = {}): Json {
  return {
    id: 'chatcmpl-translated1',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: UPSTREAM_MODEL,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', refusal: null, ...message },
        logprobs: null,
        finish_reason: finishReason,
        ...choiceExtra,
      },
    ],
    usage: UPSTREAM_USAGE,
  };
}

/** A chat stream: a role chunk, the deltas, the finish, then the usage chunk when it was asked for. */
function chatChunks(body: Json, deltas: Json[], finishReason: string): Json[] {
  const base = {
    id: 'chatcmpl-streamed1',
    object: 'chat.completion.chunk',
    created: 1,
    model: UPSTREAM_MODEL,
  };
  const chunk = (delta: Json, finish: string | null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const usageAsked = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
  return [
    chunk({ role: 'assistant', content: '' }, null),
    ...deltas.map((delta) => chunk(delta, null)),
    chunk({}, finishReason),
    ...(usageAsked ? [{ ...base, choices: [], usage: UPSTREAM_USAGE }] : []),
  ];
}

/** Answers text, whole or streamed as the request asks. */
function textAnswer(pieces: string[], finishReason = 'stop', choiceExtra: Json = {}): Script {
  return (body, res) =>
    body.stream === true
      ? sendSse(
          res,
          chatChunks(
            body,
            pieces.map((content) => ({ content })),
            finishReason,
          ),
        )
      : sendJson(res, 200, chatCompletion({ content: pieces.join('') }, finishReason, choiceExtra));
}

function chatRequests(): RecordedRequest[] {
  return upstream.requests.filter((r) => r.url.startsWith('/v1/chat/completions'));
}

function lastChatBody(): Json {
  const body = chatRequests().at(-1)?.json;
  if (!body) throw new Error('the upstream received no chat request');
  return body;
}

const ask = (content: string, extra: Partial<Anthropic.MessageCreateParamsNonStreaming> = {}) => ({
  model: PUBLIC_MODEL,
  max_tokens: 64,
  messages: [{ role: 'user' as const, content }],
  ...extra,
});

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (request, res) =>
    script(request.json ?? {}, res),
  );
  const base = await upstream.start();
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: {
      up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream-secret' },
      mock: { type: 'mock' },
    },
    models: {
      [PUBLIC_MODEL]: { backend: 'up', model: UPSTREAM_MODEL },
      [MOCK_MODEL]: { backend: 'mock' },
    },
  });
  admin = new AdminHttp(gw.url);
  key = await admin.teamKey();
  client = new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 });
});

beforeEach(() => {
  script = textAnswer(['Hello', ' from', ' upstream.']);
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('messages.create through an OpenAI-compatible upstream', () => {
  it('answers a Message with the text; the upstream gets the system message first and max_tokens', async () => {
    const message = await client.messages.create(ask('Hi there', { system: 'Be brief.' }));
    expect(message).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'Hello from upstream.' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: ANTHROPIC_USAGE,
    });
    expect(message.id).toMatch(/^msg_/);
    const sent = lastChatBody();
    expect(sent.model).toBe(UPSTREAM_MODEL);
    expect(sent.max_tokens).toBe(64);
    expect(sent.stream).toBeUndefined();
    expect(sent.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi there' },
    ]);
    // The client's key stays with the gateway; the upstream gets the configured one.
    expect(chatRequests().at(-1)?.headers.authorization).toBe('Bearer sk-upstream-secret');
  });

  it('joins system blocks into one system message and leaves cache_control out', async () => {
    await client.messages.create({
      ...ask('Summarise.'),
      system: [
        { type: 'text', text: 'You are a summariser.' },
        { type: 'text', text: 'A long, cached preamble.', cache_control: { type: 'ephemeral' } },
      ],
      messages: [
        {
          role: 'user',
          content: [{ type: 'text', text: 'Summarise.', cache_control: { type: 'ephemeral' } }],
        },
      ],
    });
    const sent = lastChatBody();
    expect(sent.messages).toEqual([
      { role: 'system', content: 'You are a summariser.\n\nA long, cached preamble.' },
      { role: 'user', content: 'Summarise.' },
    ]);
    expect(JSON.stringify(sent)).not.toContain('cache_control');
  });

  it('sends stop_sequences as stop, and says stop_sequence with the sequence when the upstream names it', async () => {
    // vLLM names the stop string that ended the answer in the choice's stop_reason.
    script = textAnswer(['one, two, '], 'stop', { stop_reason: '###' });
    const message = await client.messages.create(ask('Count.', { stop_sequences: ['###', 'END'] }));
    expect(lastChatBody().stop).toEqual(['###', 'END']);
    expect(message.stop_reason).toBe('stop_sequence');
    expect(message.stop_sequence).toBe('###');
    expect(message.content).toEqual([{ type: 'text', text: 'one, two, ' }]);
  });

  it('says stop_sequence on a stream too, when the upstream names the sequence', async () => {
    script = (body, res) => {
      const chunks = chatChunks(body, [{ content: 'a, b, ' }], 'stop');
      const finish = chunks.find((c) => (c.choices as Json[])[0]?.finish_reason === 'stop');
      if (finish) (finish.choices as Json[])[0] = { ...(finish.choices as Json[])[0], stop_reason: 'END' };
      return sendSse(res, chunks);
    };
    const stream = client.messages.stream(ask('List.', { stop_sequences: ['###', 'END'] }));
    const final = await stream.finalMessage();
    expect(lastChatBody()).toMatchObject({ stop: ['###', 'END'], stream: true });
    expect(final.stop_reason).toBe('stop_sequence');
    expect(final.stop_sequence).toBe('END');
    expect(final.content).toEqual([{ type: 'text', text: 'a, b, ' }]);
  });

  it('says max_tokens when the upstream stopped at the length cap, JSON and streamed', async () => {
    script = textAnswer(['cut', ' short'], 'length');
    const message = await client.messages.create(ask('Go on.', { max_tokens: 2 }));
    expect(lastChatBody().max_tokens).toBe(2);
    expect(message.stop_reason).toBe('max_tokens');
    expect(message.stop_sequence).toBeNull();
    const streamed = await client.messages.stream(ask('Go on.', { max_tokens: 2 })).finalMessage();
    expect(lastChatBody()).toMatchObject({ max_tokens: 2, stream: true });
    expect(streamed.stop_reason).toBe('max_tokens');
    expect(streamed.content).toEqual([{ type: 'text', text: 'cut short' }]);
  });

  it('translates tools and each tool_choice for the upstream', async () => {
    const weather: Anthropic.Tool = {
      name: 'get_weather',
      description: 'The weather in a city.',
      input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    };
    const clock: Anthropic.Tool = { name: 'get_time', input_schema: { type: 'object', properties: {} } };
    await client.messages.create(
      ask('Weather?', { tools: [weather, clock], tool_choice: { type: 'tool', name: 'get_weather' } }),
    );
    const sent = lastChatBody();
    expect(sent.tools).toEqual([
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'The weather in a city.',
          parameters: weather.input_schema,
        },
      },
      { type: 'function', function: { name: 'get_time', parameters: clock.input_schema } },
    ]);
    expect(sent.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });

    const choices: Array<[Anthropic.ToolChoice, unknown]> = [
      [{ type: 'auto' }, 'auto'],
      [{ type: 'any' }, 'required'],
      [{ type: 'none' }, 'none'],
    ];
    for (const [choice, expected] of choices) {
      await client.messages.create(ask('Weather?', { tools: [weather], tool_choice: choice }));
      expect(lastChatBody().tool_choice, JSON.stringify(choice)).toEqual(expected);
    }
    await client.messages.create(
      ask('Weather?', { tools: [weather], tool_choice: { type: 'auto', disable_parallel_tool_use: true } }),
    );
    expect(lastChatBody()).toMatchObject({ tool_choice: 'auto', parallel_tool_calls: false });
  });

  it('round-trips a tool call: tool_use with parsed input, then the tool_result as a tool message', async () => {
    const weather: Anthropic.Tool = {
      name: 'get_weather',
      input_schema: { type: 'object', properties: { city: { type: 'string' } } },
    };
    script = (_body, res) =>
      sendJson(
        res,
        200,
        chatCompletion(
          {
            content: 'Let me check.',
            tool_calls: [
              {
                id: 'call_weather_1',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
              },
            ],
          },
          'tool_calls',
        ),
      );
    const question = { role: 'user' as const, content: 'Weather in Paris?' };
    const first = await client.messages.create({ ...ask(''), messages: [question], tools: [weather] });
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toEqual([
      { type: 'text', text: 'Let me check.' },
      { type: 'tool_use', id: 'call_weather_1', name: 'get_weather', input: { city: 'Paris' } },
    ]);
    const toolUse = first.content.find((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use');
    expect(toolUse?.input).toEqual({ city: 'Paris' });

    script = textAnswer(['It is 18°C in Paris.']);
    const second = await client.messages.create({
      ...ask(''),
      tools: [weather],
      messages: [
        question,
        { role: 'assistant', content: first.content },
        {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: toolUse?.id ?? '', content: '18°C, sunny' }],
        },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'It is 18°C in Paris.' }]);
    expect(second.stop_reason).toBe('end_turn');
    expect(lastChatBody().messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          {
            id: 'call_weather_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_weather_1', content: '18°C, sunny' },
    ]);
  });

  it('sends a base64 image as a data URL image_url part', async () => {
    const png = Buffer.from('fake png bytes').toString('base64');
    await client.messages.create({
      ...ask(''),
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
            { type: 'text', text: 'What is this?' },
          ],
        },
      ],
    });
    expect(lastChatBody().messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
          { type: 'text', text: 'What is this?' },
        ],
      },
    ]);
  });

  it('serves /v1/messages?beta=true (as Claude Code calls it) and client.beta.messages.create', async () => {
    const urls: string[] = [];
    const watched = new Anthropic({
      baseURL: gw.url,
      apiKey: key,
      maxRetries: 0,
      // Only watches which URL the SDK calls.
      fetch: (url, init) => {
        urls.push(String(url));
        return fetch(url, init);
      },
    });
    // This SDK's beta namespace does not add the query itself; Claude Code does.
    const message = await watched.messages.create(ask('Beta hello'), { query: { beta: 'true' } });
    expect(urls).toHaveLength(1);
    expect(new URL(urls[0] ?? '').pathname).toBe('/v1/messages');
    expect(new URL(urls[0] ?? '').searchParams.get('beta')).toBe('true');
    expect(message.content).toEqual([{ type: 'text', text: 'Hello from upstream.' }]);
    expect(message.usage).toMatchObject(ANTHROPIC_USAGE);
    expect(lastChatBody().messages).toEqual([{ role: 'user', content: 'Beta hello' }]);

    const beta = await watched.beta.messages.create(
      { ...ask('Beta namespace'), betas: ['context-management-2025-06-27'] },
      { query: { beta: 'true' } },
    );
    expect(new URL(urls[1] ?? '').searchParams.get('beta')).toBe('true');
    expect(beta.content).toEqual([{ type: 'text', text: 'Hello from upstream.' }]);
    expect(beta.usage).toMatchObject(ANTHROPIC_USAGE);
    expect(lastChatBody().messages).toEqual([{ role: 'user', content: 'Beta namespace' }]);
    // The beta header is Anthropic's; a chat upstream never sees it.
    expect(chatRequests().at(-1)?.headers['anthropic-beta']).toBeUndefined();

    const counted = await watched.messages.countTokens(
      { model: PUBLIC_MODEL, messages: [{ role: 'user', content: 'Beta count' }] },
      { query: { beta: 'true' } },
    );
    expect(new URL(urls[2] ?? '').pathname).toBe('/v1/messages/count_tokens');
    expect(new URL(urls[2] ?? '').searchParams.get('beta')).toBe('true');
    expect(counted.input_tokens).toBeGreaterThan(0);
  });

  it('gives the request id in the request-id header: _request_id and withResponse()', async () => {
    const id = newRequestId();
    const message = await client.messages.create(ask('Who am I?'), withRequestId(id));
    expect(message._request_id).toBe(id);
    const { data, response, request_id } = await client.messages.create(ask('And now?')).withResponse();
    expect(request_id).toMatch(/^req_/);
    expect(response.headers.get('request-id')).toBe(request_id);
    expect(response.headers.get('x-request-id')).toBe(request_id);
    expect(data.content).toEqual([{ type: 'text', text: 'Hello from upstream.' }]);
  });
});

describe('request-id for browser clients', () => {
  it('exposes request-id through CORS, as it exposes x-request-id', async () => {
    // The Anthropic SDK in a browser (dangerouslyAllowBrowser) reads `request-id` for
    // `_request_id` and its error's requestID; a header CORS does not expose reads as null there.
    const response = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        origin: 'http://app.example',
        'content-type': 'application/json',
        'x-api-key': key,
        'anthropic-version': '2023-06-01',
        'anthropic-dangerous-direct-browser-access': 'true',
      },
      body: JSON.stringify(ask('From a browser')),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('request-id')).toMatch(/^req_/);
    const exposed = (response.headers.get('access-control-expose-headers') ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase());
    expect(exposed).toContain('x-request-id');
    expect(exposed, 'access-control-expose-headers lacks request-id').toContain('request-id');
  });
});

describe('messages.stream through an OpenAI-compatible upstream', () => {
  it("sends Anthropic's events in order with their indices, the final text, and the usage", async () => {
    const id = newRequestId();
    const stream = client.messages.stream(ask('Stream it', { system: 'Be brief.' }), withRequestId(id));
    const events: Anthropic.MessageStreamEvent[] = [];
    // Copies: the SDK accumulates the final message into message_start's object as events come.
    for await (const event of stream) events.push(structuredClone(event));
    const final = await stream.finalMessage();

    expect(lastChatBody()).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 64,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Stream it' },
      ],
    });
    expect(events.map((e) => ('index' in e ? `${e.type}:${e.index}` : e.type))).toEqual([
      'message_start',
      'content_block_start:0',
      'content_block_delta:0',
      'content_block_delta:0',
      'content_block_delta:0',
      'content_block_stop:0',
      'message_delta',
      'message_stop',
    ]);
    const deltas = events.flatMap((e) =>
      e.type === 'content_block_delta' && e.delta.type === 'text_delta' ? [e.delta.text] : [],
    );
    expect(deltas).toEqual(['Hello', ' from', ' upstream.']);
    expect(final.content).toEqual([{ type: 'text', text: 'Hello from upstream.' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.id).toMatch(/^msg_/);

    const start = events[0] as Anthropic.RawMessageStartEvent;
    // A chat stream reports usage only at its end: message_start carries the gateway's own count
    // of the prompt (no output yet); message_delta carries the upstream's exact figures.
    expect(start.message.usage.input_tokens).toBeGreaterThan(0);
    expect(start.message.usage.output_tokens).toBe(0);
    const delta = events.find((e): e is Anthropic.RawMessageDeltaEvent => e.type === 'message_delta');
    expect(delta?.delta).toEqual({ stop_reason: 'end_turn', stop_sequence: null });
    expect(delta?.usage).toMatchObject(ANTHROPIC_USAGE);
    expect(final.usage).toMatchObject(ANTHROPIC_USAGE);
    expect(stream.request_id).toBe(id);
  });

  it('streams text then a tool call as blocks 0 and 1; the SDK assembles the tool input', async () => {
    script = (body, res) =>
      sendSse(
        res,
        chatChunks(
          body,
          [
            { content: 'Checking.' },
            {
              tool_calls: [
                {
                  index: 0,
                  id: 'call_stream_1',
                  type: 'function',
                  function: { name: 'get_weather', arguments: '' },
                },
              ],
            },
            { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
            { tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] },
          ],
          'tool_calls',
        ),
      );
    const stream = client.messages.stream(
      ask('Weather in Oslo?', {
        tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: {} } }],
      }),
    );
    const events: Anthropic.MessageStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const final = await stream.finalMessage();
    expect(events.map((e) => ('index' in e ? `${e.type}:${e.index}` : e.type))).toEqual([
      'message_start',
      'content_block_start:0',
      'content_block_delta:0',
      'content_block_stop:0',
      'content_block_start:1',
      'content_block_delta:1',
      'content_block_stop:1',
      'message_delta',
      'message_stop',
    ]);
    expect(final.content).toEqual([
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'call_stream_1', name: 'get_weather', input: { city: 'Oslo' } },
    ]);
    expect(final.stop_reason).toBe('tool_use');
    expect(final.usage).toMatchObject(ANTHROPIC_USAGE);
  });

  it('names every SSE event after its type, as Anthropic does', async () => {
    const response = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': key,
        'anthropic-version': '2023-06-01',
      },
      body: JSON.stringify({ ...ask('raw'), stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('request-id')).toMatch(/^req_/);
    const frames = (await response.text()).split('\n\n').filter((frame) => frame.trim() !== '');
    expect(frames.length).toBeGreaterThanOrEqual(7);
    for (const frame of frames) {
      const name = /^event: (.+)$/m.exec(frame)?.[1];
      const data = /^data: (.+)$/m.exec(frame)?.[1];
      expect(name, frame).toBeDefined();
      expect((JSON.parse(data ?? '{}') as { type?: string }).type, frame).toBe(name);
    }
  });
});

describe('usage conformance: what the team key is charged', () => {
  it('records the upstream figures for a JSON answer; the client gets them in Anthropic terms', async () => {
    const id = newRequestId();
    const message = await client.messages.create(ask('Count me'), withRequestId(id));
    expect(message.usage).toMatchObject(ANTHROPIC_USAGE);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({
      ...providerRecord({ prompt: 23, completion: 9, cached: 5 }),
      model: PUBLIC_MODEL,
      status: 200,
      stream: false,
    });
    // Anthropic's prompt is input + cache reads + cache writes.
    expect(
      message.usage.input_tokens +
        (message.usage.cache_read_input_tokens ?? 0) +
        (message.usage.cache_creation_input_tokens ?? 0),
    ).toBe(record.prompt_tokens);
    expect(message.usage.cache_read_input_tokens).toBe(record.cached_tokens);
    expect(message.usage.output_tokens).toBe(record.completion_tokens);
  });

  it('records the upstream figures for a streamed answer, not the estimate of message_start', async () => {
    const id = newRequestId();
    const final = await client.messages.stream(ask('Count my stream'), withRequestId(id)).finalMessage();
    expect(final.usage).toMatchObject(ANTHROPIC_USAGE);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({
      ...providerRecord({ prompt: 23, completion: 9, cached: 5 }),
      model: PUBLIC_MODEL,
      status: 200,
      stream: true,
    });
  });

  describe('an upstream that reports no usage (some OpenAI-compatible servers)', () => {
    const silent: Script = (body, res) => {
      if (body.stream !== true) {
        const { usage: _none, ...answer } = chatCompletion({ content: 'No usage here.' }, 'stop');
        sendJson(res, 200, answer);
        return;
      }
      return sendSse(res, chatChunks({}, [{ content: 'No usage here.' }], 'stop'));
    };

    it('chat completions (the control): the gateway counts, and the record says estimated', async () => {
      script = silent;
      const openai = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
      const id = newRequestId();
      await openai.chat.completions.create(
        { model: PUBLIC_MODEL, messages: [{ role: 'user', content: 'Count it yourself' }] },
        withRequestId(id),
      );
      expect((await recordOf(admin, id)).estimated).toBe(true);
    });

    it.each([
      ['JSON', false],
      ['stream', true],
    ])(
      "messages %s: the client gets the gateway's count, and the record says estimated",
      async (_name, streamed) => {
        script = silent;
        const id = newRequestId();
        const message = streamed
          ? await client.messages.stream(ask('Count it yourself'), withRequestId(id)).finalMessage()
          : await client.messages.create(ask('Count it yourself'), withRequestId(id));
        expect(message.content).toEqual([{ type: 'text', text: 'No usage here.' }]);
        expect(message.usage.input_tokens).toBeGreaterThan(0);
        expect(message.usage.output_tokens).toBeGreaterThan(0);
        const record = await recordOf(admin, id);
        expect(record).toMatchObject({
          prompt_tokens: message.usage.input_tokens,
          completion_tokens: message.usage.output_tokens,
          cached_tokens: 0,
        });
        expect(
          record.estimated,
          "the upstream reported no usage: these figures are the gateway's own count, as on /v1/chat/completions",
        ).toBe(true);
      },
    );
  });
});

describe('count_tokens', () => {
  it('answers {input_tokens} without asking the upstream, and charges the key nothing', async () => {
    const budgeted = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 100_000 }] });
    const counting = new Anthropic({ baseURL: gw.url, apiKey: budgeted, maxRetries: 0 });
    const standing = async () =>
      (
        (await (
          await fetch(`${gw.baseURL}/tollgate/key`, { headers: { authorization: `Bearer ${budgeted}` } })
        ).json()) as { standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> } }
      ).standing.budgets[0];
    expect(await standing()).toMatchObject({ spent_tokens: 0, reserved_tokens: 0 });

    const chatsBefore = chatRequests().length;
    const id = newRequestId();
    const counted = await counting.messages.countTokens(
      {
        model: PUBLIC_MODEL,
        system: 'Be brief.',
        messages: [{ role: 'user', content: 'How many tokens is this sentence?' }],
      },
      withRequestId(id),
    );
    expect(Object.keys(counted)).toEqual(['input_tokens']);
    // A chat server cannot count a prompt: the gateway counted it, and says so.
    const raw = await counting.messages
      .countTokens({ model: PUBLIC_MODEL, messages: [{ role: 'user', content: 'x' }] })
      .asResponse();
    expect(raw.headers.get('x-tollgate-token-count')).toBe('estimated');
    expect(counted.input_tokens).toBeGreaterThan(0);
    expect(chatRequests().length).toBe(chatsBefore);
    // Its record is written once its response has ended; by then anything charged would show.
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({ prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 });
    expect(await standing()).toMatchObject({ spent_tokens: 0, reserved_tokens: 0 });

    // The same key is charged for a real answer, so the standing read above can see a charge.
    await counting.messages.create(ask('Now answer'));
    const settled = await pollUntil(standing, (b) => b?.reserved_tokens === 0 && (b?.spent_tokens ?? 0) > 0);
    expect(settled).toMatchObject({ spent_tokens: UPSTREAM_USAGE.total_tokens, reserved_tokens: 0 });
  });

  it('counts more tokens for a longer prompt, and counts tools too', async () => {
    const short = await client.messages.countTokens({
      model: PUBLIC_MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
    });
    const long = await client.messages.countTokens({
      model: PUBLIC_MODEL,
      messages: [{ role: 'user', content: 'Hi, '.repeat(50) }],
    });
    const withTools = await client.messages.countTokens({
      model: PUBLIC_MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      tools: [
        {
          name: 'lookup',
          description: 'Looks a word up in a large dictionary.',
          input_schema: { type: 'object', properties: { word: { type: 'string' } } },
        },
      ],
    });
    expect(long.input_tokens).toBeGreaterThan(short.input_tokens);
    expect(withTools.input_tokens).toBeGreaterThan(short.input_tokens);
  });
});

describe('GET /v1/models', () => {
  it("answers the Anthropic SDK in Anthropic's shape: list and retrieve", async () => {
    const models: Anthropic.ModelInfo[] = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models.map((m) => m.id).sort()).toEqual([PUBLIC_MODEL, MOCK_MODEL].sort());
    for (const model of models) {
      expect(model).toMatchObject({ type: 'model', display_name: model.id });
      expect(model.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    const page = await client.models.list({ limit: 1 });
    expect(page.data).toHaveLength(1);
    expect(page.has_more).toBe(true);
    expect(page.first_id).toBe(page.data[0]?.id);

    // The SDK pages on by after_id while has_more says so.
    const paged: string[] = [];
    for await (const model of client.models.list({ limit: 1 })) paged.push(model.id);
    expect(paged).toEqual(models.map((m) => m.id));

    const one = await client.models.retrieve(PUBLIC_MODEL);
    expect(one).toMatchObject({ type: 'model', id: PUBLIC_MODEL, display_name: PUBLIC_MODEL });
    expect(Object.keys(one).sort()).toEqual(['created_at', 'display_name', 'id', 'type']);
  });

  it("still answers the OpenAI SDK in OpenAI's shape", async () => {
    const openai = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual([PUBLIC_MODEL, MOCK_MODEL].sort());
    for (const model of list.data) {
      expect(model.object).toBe('model');
      expect(typeof model.created).toBe('number');
      expect((model as unknown as Json).type).toBeUndefined();
    }
    const one = await openai.models.retrieve(PUBLIC_MODEL);
    expect(one).toMatchObject({ id: PUBLIC_MODEL, object: 'model' });
  });

  it("lists only the models the key may use, in Anthropic's shape too", async () => {
    const narrow = await admin.teamKey({}, { models: [MOCK_MODEL] });
    const narrowClient = new Anthropic({ baseURL: gw.url, apiKey: narrow, maxRetries: 0 });
    const models: string[] = [];
    for await (const model of narrowClient.models.list()) models.push(model.id);
    expect(models).toEqual([MOCK_MODEL]);
    const hidden = await narrowClient.models.retrieve(PUBLIC_MODEL).catch((e: unknown) => e);
    expect(hidden).toBeInstanceOf(Anthropic.NotFoundError);
  });
});

describe('the mock backend through the Anthropic SDK', () => {
  const mockAsk = (content: string) => ({
    model: MOCK_MODEL,
    max_tokens: 64,
    messages: [{ role: 'user' as const, content }],
  });

  it('echoes the text as a Message, and the record matches the usage the client got', async () => {
    const id = newRequestId();
    const message = await client.messages.create(mockAsk('echo this back'), withRequestId(id));
    expect(message).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'echo this back' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
    });
    expect(message.usage.input_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({
      model: MOCK_MODEL,
      prompt_tokens: message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0),
      completion_tokens: message.usage.output_tokens,
      cached_tokens: message.usage.cache_read_input_tokens ?? 0,
      estimated: false,
    });
  });

  it('streams the echo in order and the final message holds it', async () => {
    const id = newRequestId();
    const stream = client.messages.stream(mockAsk('stream this back please'), withRequestId(id));
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const final = await stream.finalMessage();
    expect(types[0]).toBe('message_start');
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(types.filter((t) => t === 'content_block_start')).toHaveLength(1);
    expect(types.filter((t) => t === 'content_block_stop')).toHaveLength(1);
    expect(final.content).toEqual([{ type: 'text', text: 'stream this back please' }]);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({
      stream: true,
      prompt_tokens: final.usage.input_tokens + (final.usage.cache_read_input_tokens ?? 0),
      completion_tokens: final.usage.output_tokens,
      estimated: false,
    });
  });

  it('calls the forced tool with parsed input (JSON and streamed)', async () => {
    const params = {
      ...mockAsk('look this up'),
      tools: [{ name: 'lookup', input_schema: { type: 'object' as const, properties: {} } }],
      tool_choice: { type: 'tool' as const, name: 'lookup' },
    };
    const message = await client.messages.create(params);
    expect(message.stop_reason).toBe('tool_use');
    const block = message.content.find((b) => b.type === 'tool_use');
    expect(block).toMatchObject({ type: 'tool_use', name: 'lookup', input: { input: 'look this up' } });
    const streamed = await client.messages.stream(params).finalMessage();
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content.find((b) => b.type === 'tool_use')).toMatchObject({
      name: 'lookup',
      input: { input: 'look this up' },
    });
  });

  it('counts tokens', async () => {
    const counted = await client.messages.countTokens({
      model: MOCK_MODEL,
      messages: [{ role: 'user', content: 'count me on the mock' }],
    });
    expect(counted.input_tokens).toBeGreaterThan(0);
  });
});
