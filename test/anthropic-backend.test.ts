import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import { DEFAULT_USAGE, echoScript, FakeAnthropic, type MessageFixture } from './support/fake-anthropic.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectCompletionChunk,
} from './support/spec-validator.js';

/**
 * `type: anthropic` through the official OpenAI SDK: what the Messages API receives (recorded by
 * the fake upstream) and what the client gets back, JSON and streamed.
 */

const ANTHROPIC_KEY = 'sk-ant-gateway-secret-42';
let fake: FakeAnthropic;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  fake = new FakeAnthropic();
  const url = await fake.start();
  gw = await startGateway({
    backends: {
      claude: {
        type: 'anthropic',
        baseUrl: url,
        apiKey: ANTHROPIC_KEY,
        maxTokens: 1000,
        modelMaxTokens: { 'claude-opus-4-1': 2000 },
      },
    },
    models: {
      claude: { backend: 'claude', model: 'claude-sonnet-4-5' },
      opus: { backend: 'claude', model: 'claude-opus-4-1-20250805' },
    },
  });
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'client-key', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await fake?.stop();
});

afterEach(() => {
  fake.script = echoScript;
  fake.requests.length = 0;
});

/** Anthropic's stream of one call to a tool that takes no parameters. */
function noArgumentToolEvents(): Array<Record<string, unknown>> {
  return [
    {
      type: 'message_start',
      message: {
        id: 'msg_now',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 11, output_tokens: 1 },
      },
    },
    {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'tool_use', id: 'toolu_now', name: 'now', input: {} },
    },
    { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } },
    { type: 'content_block_stop', index: 0 },
    {
      type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null },
      usage: { output_tokens: 5 },
    },
    { type: 'message_stop' },
  ];
}

function reply(message: MessageFixture): void {
  fake.script = () => ({ kind: 'message', message });
}

/** Every chunk of a streamed chat, each validated against the spec. */
async function streamChunks(params: OpenAI.ChatCompletionCreateParamsStreaming) {
  const stream = await client.chat.completions.create(params);
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) {
    expectChatCompletionChunk(chunk);
    chunks.push(chunk);
  }
  return chunks;
}

describe('the request as the Messages API receives it', () => {
  it('sends x-api-key and anthropic-version, never the client key', async () => {
    await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] });
    const request = fake.requests.at(-1);
    expect(request?.url).toBe('/v1/messages');
    expect(request?.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(request?.headers['anthropic-version']).toBe('2023-06-01');
    expect(request?.headers.authorization).toBeUndefined();
    expect(JSON.stringify(request?.headers)).not.toContain('client-key');
  });

  it('moves system and developer messages to system and applies the default max_tokens', async () => {
    await client.chat.completions.create({
      model: 'claude',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'hello' },
      ],
    });
    expect(fake.lastBody()).toEqual({
      model: 'claude-sonnet-4-5',
      system: [
        { type: 'text', text: 'Be brief.' },
        { type: 'text', text: 'Answer in French.' },
      ],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }],
      max_tokens: 1000,
    });
  });

  it('takes the per-model max_tokens default by prefix, and the client max_completion_tokens first', async () => {
    await client.chat.completions.create({ model: 'opus', messages: [{ role: 'user', content: 'a' }] });
    expect(fake.lastBody().max_tokens).toBe(2000);
    await client.chat.completions.create({
      model: 'opus',
      messages: [{ role: 'user', content: 'a' }],
      max_tokens: 50,
      max_completion_tokens: 70,
    });
    expect(fake.lastBody().max_tokens).toBe(70);
  });

  it('translates sampling fields, stop, user, and drops what the Messages API has no field for', async () => {
    await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'x' }],
      temperature: 0.3,
      top_p: 0.9,
      stop: ['END', 'STOP'],
      user: 'user-17',
      seed: 4,
      presence_penalty: 0.5,
      frequency_penalty: 0.5,
      logit_bias: { '12': 1 },
      store: false,
      metadata: { a: 'b' },
      n: 1,
    });
    expect(fake.lastBody()).toEqual({
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }] }],
      max_tokens: 1000,
      temperature: 0.3,
      top_p: 0.9,
      stop_sequences: ['END', 'STOP'],
      metadata: { user_id: 'user-17' },
    });
    await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'x' }],
      stop: 'END',
    });
    expect(fake.lastBody().stop_sequences).toEqual(['END']);
  });

  it('translates images: data URLs to base64 sources, http(s) URLs to url sources', async () => {
    await client.chat.completions.create({
      model: 'claude',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in these?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
          ],
        },
      ],
    });
    expect(fake.lastBody().messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in these?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
        ],
      },
    ]);
  });

  it('translates tools, tool_choice and parallel_tool_calls', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
      { type: 'function', function: { name: 'now' } },
    ];
    const cases: Array<[OpenAI.ChatCompletionToolChoiceOption | undefined, boolean | undefined, unknown]> = [
      [undefined, undefined, undefined],
      ['auto', false, { type: 'auto', disable_parallel_tool_use: true }],
      ['none', undefined, { type: 'none' }],
      ['required', undefined, { type: 'any' }],
      [{ type: 'function', function: { name: 'now' } }, undefined, { type: 'tool', name: 'now' }],
    ];
    for (const [toolChoice, parallel, expected] of cases) {
      await client.chat.completions.create({
        model: 'claude',
        messages: [{ role: 'user', content: 'weather?' }],
        tools,
        ...(toolChoice === undefined ? {} : { tool_choice: toolChoice }),
        ...(parallel === undefined ? {} : { parallel_tool_calls: parallel }),
      });
      const body = fake.lastBody();
      expect(body.tools).toEqual([
        {
          name: 'get_weather',
          description: 'Weather for a city',
          input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
        { name: 'now', input_schema: { type: 'object', properties: {} } },
      ]);
      expect(body.tool_choice).toEqual(expected);
    }
  });

  it('turns assistant tool_calls into tool_use and merges consecutive tool results into one user turn', async () => {
    await client.chat.completions.create({
      model: 'claude',
      messages: [
        { role: 'user', content: 'Weather in Paris and Oslo?' },
        {
          role: 'assistant',
          content: 'Checking both.',
          tool_calls: [
            {
              id: 'toolu_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
            {
              id: 'toolu_2',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_1', content: '21C' },
        { role: 'tool', tool_call_id: 'toolu_2', content: [{ type: 'text', text: '9C' }] },
        { role: 'user', content: 'Which is warmer?' },
      ],
    });
    expect(fake.lastBody().messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Oslo?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking both.' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Oslo' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '21C' }] },
          { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: '9C' }] },
          { type: 'text', text: 'Which is warmer?' },
        ],
      },
    ]);
  });

  it('sends a json_schema response_format as output_config.format', async () => {
    const schema = {
      type: 'object',
      properties: { n: { type: 'integer' } },
      required: ['n'],
      additionalProperties: false,
    };
    await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'a number' }],
      response_format: { type: 'json_schema', json_schema: { name: 'num', schema, strict: true } },
    });
    expect(fake.lastBody().output_config).toEqual({ format: { type: 'json_schema', schema } });
  });

  it('asks for extended thinking with reasoning_effort (budget inside max_tokens)', async () => {
    await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'think' }],
      reasoning_effort: 'medium',
    });
    expect(fake.lastBody().thinking).toEqual({ type: 'enabled', budget_tokens: 4096 });
    expect(fake.lastBody().max_tokens).toBe(1000 + 4096);
    await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'think' }],
      reasoning_effort: 'high',
      max_completion_tokens: 3000,
    });
    expect(fake.lastBody().thinking).toEqual({ type: 'enabled', budget_tokens: 2999 });
    expect(fake.lastBody().max_tokens).toBe(3000);
  });
});

describe('requests the Messages API cannot express are refused with a 400 naming the field', () => {
  it.each([
    ['n', { n: 2 }],
    ['logprobs', { logprobs: true }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['temperature', { temperature: 1.5 }],
    ['max_tokens', { max_tokens: 500, reasoning_effort: 'low' }],
    [
      'messages[0].content[1].image_url.url',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'x' },
              { type: 'image_url', image_url: { url: 'ftp://x/y.png' } },
            ],
          },
        ],
      },
    ],
    [
      'messages[0].content[0].type',
      {
        messages: [
          { role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] },
        ],
      },
    ],
    [
      'messages[1].tool_calls[0].function.arguments',
      {
        messages: [
          { role: 'user', content: 'x' },
          {
            role: 'assistant',
            tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{oops' } }],
          },
        ],
      },
    ],
  ])('%s', async (param, extra) => {
    const error = await client.chat.completions
      .create({
        model: 'claude',
        messages: [{ role: 'user', content: 'x' }],
        ...(extra as object),
      } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const apiError = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(apiError.status).toBe(400);
    expect(apiError.param).toBe(param);
    expect(apiError.type).toBe('invalid_request_error');
    expect(fake.requests).toHaveLength(0);
  });

  it('embeddings on a Claude model: 400 unsupported_endpoint', async () => {
    const error = await client.embeddings.create({ model: 'claude', input: 'x' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('unsupported_endpoint');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('JSON answers', () => {
  it('text, finish_reason stop, usage with cache reads and writes counted in the prompt', async () => {
    reply({
      content: [{ type: 'text', text: 'Hello there.' }],
      stop_reason: 'end_turn',
      usage: {
        input_tokens: 20,
        output_tokens: 5,
        cache_read_input_tokens: 1000,
        cache_creation_input_tokens: 300,
        cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 100 },
      },
    });
    const completion = await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expectChatCompletion(completion);
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('claude-sonnet-4-5');
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]?.message).toMatchObject({ role: 'assistant', content: 'Hello there.' });
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage).toMatchObject({
      prompt_tokens: 1320,
      completion_tokens: 5,
      total_tokens: 1325,
      prompt_tokens_details: { cached_tokens: 1000 },
      cache_read_input_tokens: 1000,
      cache_creation_input_tokens: 300,
      cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 100 },
    });
  });

  it.each([
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['refusal', 'content_filter'],
  ] as const)('stop_reason %s -> finish_reason %s', async (stopReason, finish) => {
    reply({ content: [{ type: 'text', text: 'x' }], stop_reason: stopReason, usage: DEFAULT_USAGE });
    const completion = await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expectChatCompletion(completion);
    expect(completion.choices[0]?.finish_reason).toBe(finish);
  });

  it('tool_use -> tool_calls, and the round trip back to tool_result', async () => {
    reply({
      content: [
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Paris', units: 'C' } },
      ],
      stop_reason: 'tool_use',
      usage: DEFAULT_USAGE,
    });
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } },
    ];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await client.chat.completions.create({ model: 'claude', messages, tools });
    expectChatCompletion(first);
    const choice = first.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBe('Let me check.');
    expect(choice?.message.tool_calls).toEqual([
      {
        id: 'toolu_9',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris","units":"C"}' },
      },
    ]);
    fake.script = echoScript;
    messages.push(choice?.message as OpenAI.ChatCompletionMessageParam, {
      role: 'tool',
      tool_call_id: 'toolu_9',
      content: 'sunny',
    });
    await client.chat.completions.create({ model: 'claude', messages, tools });
    expect(fake.lastBody().messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Paris', units: 'C' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_9', content: [{ type: 'text', text: 'sunny' }] },
        ],
      },
    ]);
  });

  it('thinking -> reasoning_content, with the signed blocks in thinking_blocks that go back as they came', async () => {
    reply({
      content: [
        { type: 'thinking', thinking: 'The user greets me.', signature: 'sig-abc' },
        { type: 'text', text: 'Hi!' },
      ],
      stop_reason: 'end_turn',
      usage: DEFAULT_USAGE,
    });
    const completion = await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'hi' }],
      reasoning_effort: 'low',
    });
    expectChatCompletion(completion);
    const message = completion.choices[0]?.message as OpenAI.ChatCompletionMessage & {
      reasoning_content?: string;
      thinking_blocks?: unknown[];
    };
    expect(message.content).toBe('Hi!');
    expect(message.reasoning_content).toBe('The user greets me.');
    expect(message.thinking_blocks).toEqual([
      { type: 'thinking', thinking: 'The user greets me.', signature: 'sig-abc' },
    ]);
    fake.script = echoScript;
    await client.chat.completions.create({
      model: 'claude',
      messages: [
        { role: 'user', content: 'hi' },
        message as OpenAI.ChatCompletionMessageParam,
        { role: 'user', content: 'again' },
      ],
    });
    expect((fake.lastBody().messages as Array<{ content: unknown }>)[1]?.content).toEqual([
      { type: 'thinking', thinking: 'The user greets me.', signature: 'sig-abc' },
      { type: 'text', text: 'Hi!' },
    ]);
  });
});

describe('streams', () => {
  it('role first, content deltas, finish_reason, the usage chunk when asked, then [DONE]', async () => {
    reply({
      content: [{ type: 'text', text: 'Streaming is fun.' }],
      stop_reason: 'end_turn',
      usage: {
        input_tokens: 9,
        output_tokens: 4,
        cache_read_input_tokens: 100,
        cache_creation_input_tokens: 50,
      },
    });
    const chunks = await streamChunks({
      model: 'claude',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(fake.lastBody().stream).toBe(true);
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe('Streaming is fun.');
    expect(chunks.filter((chunk) => chunk.choices[0]?.delta.content).length).toBeGreaterThan(1);
    const finishes = chunks.flatMap((chunk) =>
      chunk.choices[0]?.finish_reason ? [chunk.choices[0].finish_reason] : [],
    );
    expect(finishes).toEqual(['stop']);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toMatchObject({
      prompt_tokens: 159,
      completion_tokens: 4,
      total_tokens: 163,
      prompt_tokens_details: { cached_tokens: 100 },
    });
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
  });

  it('without include_usage the client gets no usage chunk, and accounting still sees the usage', async () => {
    reply({
      content: [{ type: 'text', text: 'ok' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 31, output_tokens: 3 },
    });
    const chunks = await streamChunks({
      model: 'claude',
      messages: [{ role: 'user', content: 'count me' }],
      stream: true,
    });
    expect(chunks.every((chunk) => chunk.usage === undefined || chunk.usage === null)).toBe(true);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    await vi.waitFor(() => {
      const line = gw.logs.find((entry) => entry.msg === 'request' && entry.prompt_tokens === 31);
      expect(line).toMatchObject({ completion_tokens: 3, stream: true });
    });
  });

  it('tool calls stream as index / id / name, then argument fragments that join to the input', async () => {
    reply({
      content: [
        { type: 'text', text: 'Looking.' },
        { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_b', name: 'get_time', input: { zone: 'Europe/Oslo' } },
      ],
      stop_reason: 'tool_use',
      usage: DEFAULT_USAGE,
    });
    const chunks = await streamChunks({
      model: 'claude',
      messages: [{ role: 'user', content: 'weather and time' }],
      tools: [
        { type: 'function', function: { name: 'get_weather' } },
        { type: 'function', function: { name: 'get_time' } },
      ],
      stream: true,
    });
    const calls = new Map<number, { id?: string; name?: string; args: string }>();
    for (const chunk of chunks) {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) {
        const entry = calls.get(call.index) ?? { args: '' };
        if (call.id) {
          expect(entry.id, 'the id comes once').toBeUndefined();
          entry.id = call.id;
          entry.name = call.function?.name;
        }
        entry.args += call.function?.arguments ?? '';
        calls.set(call.index, entry);
      }
    }
    expect([...calls.entries()]).toEqual([
      [0, { id: 'toolu_a', name: 'get_weather', args: '{"city":"Paris"}' }],
      [1, { id: 'toolu_b', name: 'get_time', args: '{"zone":"Europe/Oslo"}' }],
    ]);
    const argumentChunks = chunks.filter(
      (chunk) => chunk.choices[0]?.delta.tool_calls?.[0]?.function?.arguments,
    );
    expect(argumentChunks.length).toBeGreaterThan(2);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('the SDK stream helper assembles the tool call of a streamed answer', async () => {
    reply({
      content: [{ type: 'tool_use', id: 'toolu_c', name: 'lookup', input: { q: 'tollgate', n: 3 } }],
      stop_reason: 'tool_use',
      usage: DEFAULT_USAGE,
    });
    const stream = client.chat.completions.stream({
      model: 'claude',
      messages: [{ role: 'user', content: 'look it up' }],
      tools: [{ type: 'function', function: { name: 'lookup' } }],
    });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]?.message.tool_calls?.[0]).toMatchObject({
      id: 'toolu_c',
      function: { name: 'lookup', arguments: '{"q":"tollgate","n":3}' },
    });
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('a streamed tool call without arguments says "{}", as the JSON answer and OpenAI do', async () => {
    // What Anthropic streams for a tool without parameters: `input: {}`, then one empty partial_json.
    fake.script = () => ({ kind: 'events', events: noArgumentToolEvents() });
    const stream = client.chat.completions.stream({
      model: 'claude',
      messages: [{ role: 'user', content: 'what time is it' }],
      tools: [{ type: 'function', function: { name: 'now' } }],
    });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]?.message.tool_calls?.[0]).toMatchObject({
      id: 'toolu_now',
      function: { name: 'now', arguments: '{}' },
    });
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');

    fake.script = () => ({ kind: 'events', events: noArgumentToolEvents() });
    const responses = client.responses.stream({
      model: 'claude',
      input: 'what time is it',
      tools: [{ type: 'function', name: 'now', parameters: {}, strict: false }],
    });
    const response = await responses.finalResponse();
    expect(response.output).toMatchObject([{ type: 'function_call', call_id: 'toolu_now', arguments: '{}' }]);
  });

  it('thinking streams as reasoning_content deltas before the text', async () => {
    reply({
      content: [
        { type: 'thinking', thinking: 'Short thought here.', signature: 'sig-xyz' },
        { type: 'text', text: 'Answer.' },
      ],
      stop_reason: 'end_turn',
      usage: DEFAULT_USAGE,
    });
    const chunks = await streamChunks({
      model: 'claude',
      messages: [{ role: 'user', content: 'hi' }],
      reasoning_effort: 'low',
      stream: true,
    });
    type Delta = { reasoning_content?: string; content?: string; thinking_blocks?: unknown[] };
    const deltas = chunks.map((chunk) => (chunk.choices[0]?.delta ?? {}) as Delta);
    expect(deltas.map((delta) => delta.reasoning_content ?? '').join('')).toBe('Short thought here.');
    const firstText = deltas.findIndex((delta) => delta.content);
    const lastThought = deltas.findLastIndex((delta) => delta.reasoning_content);
    expect(lastThought).toBeLessThan(firstText);
    expect(deltas.flatMap((delta) => delta.thinking_blocks ?? [])).toEqual([
      { type: 'thinking', thinking: 'Short thought here.', signature: 'sig-xyz' },
    ]);
  });
});

describe('legacy completions', () => {
  it('the prompt goes as one user message; the answer comes back as a text_completion', async () => {
    reply({
      content: [{ type: 'text', text: 'Once upon a time.' }],
      stop_reason: 'max_tokens',
      usage: { input_tokens: 4, output_tokens: 5, cache_read_input_tokens: 2 },
    });
    const completion = await client.completions.create({
      model: 'claude',
      prompt: 'Tell a story',
      max_tokens: 5,
      stop: '\n',
    });
    expectCompletion(completion);
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]).toMatchObject({
      text: 'Once upon a time.',
      finish_reason: 'length',
      index: 0,
    });
    expect(completion.usage).toMatchObject({ prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 });
    expect(fake.lastBody()).toEqual({
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Tell a story' }] }],
      max_tokens: 5,
      stop_sequences: ['\n'],
    });
  });

  it('streams text_completion chunks, the usage chunk when asked, then [DONE]', async () => {
    reply({
      content: [{ type: 'text', text: 'Streamed legacy text.' }],
      stop_reason: 'end_turn',
      usage: DEFAULT_USAGE,
    });
    const stream = await client.completions.create({
      model: 'claude',
      prompt: ['Go'],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) {
      expectCompletionChunk(chunk);
      chunks.push(chunk);
    }
    expect(chunks.map((chunk) => chunk.choices[0]?.text ?? '').join('')).toBe('Streamed legacy text.');
    expect(
      chunks.flatMap((chunk) => (chunk.choices[0]?.finish_reason ? [chunk.choices[0].finish_reason] : [])),
    ).toEqual(['stop']);
    expect(chunks.at(-1)?.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 7 });
  });

  it.each([
    ['prompt', { prompt: ['one', 'two'] }],
    ['echo', { prompt: 'x', echo: true }],
    ['best_of', { prompt: 'x', best_of: 3 }],
    ['suffix', { prompt: 'x', suffix: 'end' }],
  ])('refuses %s with a 400', async (param, extra) => {
    const error = await client.completions.create({ model: 'claude', ...(extra as { prompt: string }) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(param);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('config', () => {
  it('defaults: the public API, version 2023-06-01, 4096 max tokens', () => {
    const config = parseConfig(
      { backends: { a: { type: 'anthropic', apiKey: 'k' } }, models: {} },
      {},
      'test',
    );
    expect(config.backends.a).toMatchObject({
      type: 'anthropic',
      baseUrl: 'https://api.anthropic.com',
      anthropicVersion: '2023-06-01',
      maxTokens: 4096,
      thinkingBudgets: { low: 1024, medium: 4096, high: 16384 },
    });
  });

  it('lists every problem of an anthropic section', () => {
    expect(() =>
      parseConfig(
        {
          backends: {
            a: { type: 'anthropic', maxTokens: 0, apiKey: 'k', apiKeys: [{ key: 'j' }], bogus: 1 },
          },
          models: {},
        },
        {},
        'test',
      ),
    ).toThrow(/maxTokens[\s\S]*bogus|bogus[\s\S]*maxTokens/);
  });
});

describe('the Responses API', () => {
  it('reaches a Claude model through the gateway’s Responses-to-Chat translation', async () => {
    reply({
      content: [{ type: 'text', text: 'Via responses.' }],
      stop_reason: 'end_turn',
      usage: DEFAULT_USAGE,
    });
    const response = await client.responses.create({
      model: 'claude',
      input: 'hello',
      instructions: 'Be kind.',
    });
    expect(response.output_text).toBe('Via responses.');
    expect(fake.lastBody()).toMatchObject({
      system: [{ type: 'text', text: 'Be kind.' }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }],
    });
  });
});
