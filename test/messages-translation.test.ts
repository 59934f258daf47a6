import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/backend.js';
import { chatRequestOf } from '../src/backends/messages-translation/messages-to-chat.js';
import { withMessagesTranslation } from '../src/backends/messages-translation/with-messages-translation.js';
import { InvalidRequestError } from '../src/errors.js';
import { messagesRequest } from '../src/schemas/anthropic/messages.js';
import { parseRequestBody } from '../src/schemas/parse-input.js';
import {
  type ChatOnlyBackend,
  chatOnlyMessagesBackend,
  messagesFetch,
  ScriptedChatUpstream,
} from './support/chat-only-messages-backend.js';

type Json = Record<string, unknown>;

const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

function translate(body: Json, field: 'max_tokens' | 'max_completion_tokens' = 'max_tokens') {
  return chatRequestOf(parseRequestBody(messagesRequest, body), 'gpt-test', field).body;
}

function chatAnswer(message: Json, finish: string, usage?: Json, extra: Json = {}): Json {
  return {
    id: 'chatcmpl-xyz789',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-test',
    choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: finish, ...extra }],
    ...(usage ? { usage } : {}),
  };
}

const USAGE = {
  prompt_tokens: 1200,
  completion_tokens: 35,
  total_tokens: 1235,
  prompt_tokens_details: { cached_tokens: 1024 },
};

describe('Messages request -> chat request', () => {
  it('maps system blocks, sampling, stop sequences, user id and max_tokens', () => {
    const body = translate({
      model: 'claude-x',
      max_tokens: 32000,
      system: [
        { type: 'text', text: 'You are Claude Code.', cache_control: { type: 'ephemeral' } },
        { type: 'text', text: 'Be brief.' },
      ],
      messages: [{ role: 'user', content: 'Hi' }],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      stop_sequences: ['###', 'END'],
      metadata: { user_id: 'user-42' },
      thinking: { type: 'enabled', budget_tokens: 2048 },
      context_management: { edits: [] },
    });
    expect(body).toEqual({
      model: 'gpt-test',
      messages: [
        { role: 'system', content: 'You are Claude Code.\n\nBe brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 32000,
      temperature: 0.5,
      top_p: 0.9,
      stop: ['###', 'END'],
      user: 'user-42',
    });
  });

  it('puts the cap in max_completion_tokens when told to, and asks a stream for its usage', () => {
    const body = translate(
      { model: 'm', max_tokens: 10, stream: true, system: 'Sys', messages: [{ role: 'user', content: 'x' }] },
      'max_completion_tokens',
    );
    expect(body.max_completion_tokens).toBe(10);
    expect(body.max_tokens).toBeUndefined();
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true });
    expect(body.messages).toEqual([
      { role: 'system', content: 'Sys' },
      { role: 'user', content: 'x' },
    ]);
  });

  it('turns images (base64 and URL) and documents into chat parts', () => {
    const body = translate({
      model: 'm',
      max_tokens: 5,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
            {
              type: 'document',
              source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' },
              title: 'a.pdf',
            },
            {
              type: 'document',
              source: { type: 'text', media_type: 'text/plain', data: 'Plain doc' },
              title: 'Notes',
            },
            { type: 'text', text: 'What are these?' },
          ],
        },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
          { type: 'file', file: { filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0=' } },
          { type: 'text', text: 'Notes\n\nPlain doc' },
          { type: 'text', text: 'What are these?' },
        ],
      },
    ]);
  });

  it('turns tool_use into tool_calls and tool_result into tool messages, in order, noting errors', () => {
    const body = translate({
      model: 'm',
      max_tokens: 100,
      tools: [
        {
          name: 'get_weather',
          description: 'Weather',
          input_schema: { type: 'object', properties: { city: { type: 'string' } } },
        },
        { name: 'web_search', type: 'web_search_20250305', max_uses: 3 },
      ],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Let me look.', signature: 'sig' },
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: 'Sunny' },
            {
              type: 'tool_result',
              tool_use_id: 'toolu_2',
              is_error: true,
              content: [
                { type: 'text', text: 'Service down' },
                { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
              ],
            },
            { type: 'text', text: 'Go on.' },
          ],
        },
        { role: 'system', content: 'Answer in French.' },
      ],
    });
    expect(body.tools).toEqual([
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ]);
    expect(body.tool_choice).toBe('required');
    expect(body.parallel_tool_calls).toBe(false);
    expect(body.messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          {
            id: 'toolu_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
          {
            id: 'toolu_2',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_1', content: 'Sunny' },
      { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: Service down' },
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          { type: 'text', text: 'Go on.' },
        ],
      },
      { role: 'system', content: 'Answer in French.' },
    ]);
  });

  it('maps each tool_choice and leaves tool fields out when no client tool is left', () => {
    const tools = [{ name: 'f', input_schema: { type: 'object' } }];
    const base = { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }], tools };
    expect(translate({ ...base, tool_choice: { type: 'auto' } }).tool_choice).toBe('auto');
    expect(translate({ ...base, tool_choice: { type: 'none' } }).tool_choice).toBe('none');
    expect(translate({ ...base, tool_choice: { type: 'tool', name: 'f' } }).tool_choice).toEqual({
      type: 'function',
      function: { name: 'f' },
    });
    const serverOnly = translate({
      ...base,
      tools: [{ name: 'web_search', type: 'web_search_20250305' }],
      tool_choice: { type: 'auto', disable_parallel_tool_use: true },
    });
    expect(serverOnly).not.toHaveProperty('tools');
    expect(serverOnly).not.toHaveProperty('tool_choice');
    expect(serverOnly).not.toHaveProperty('parallel_tool_calls');
    expect(() => translate({ ...base, tool_choice: { type: 'tool', name: 'web_search' } })).toThrow(
      /tool_choice names 'web_search'/,
    );
  });

  it('maps a JSON schema output format to response_format', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    const body = translate({
      model: 'm',
      max_tokens: 1,
      messages: [{ role: 'user', content: 'x' }],
      output_config: { format: { type: 'json_schema', schema }, effort: 'high' },
    });
    expect(body.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'output', schema, strict: true },
    });
  });

  it('refuses what a chat model cannot take with a 400 naming the block', () => {
    const withBlock = (block: Json) => () =>
      translate({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: [block] }] });
    expect(withBlock({ type: 'image', source: { type: 'file', file_id: 'file_1' } })).toThrow(
      expect.objectContaining({ status: 400, param: 'messages[0].content[0].source.type' }),
    );
    expect(withBlock({ type: 'document', source: { type: 'url', url: 'https://x/a.pdf' } })).toThrow(
      InvalidRequestError,
    );
    expect(withBlock({ type: 'hologram', data: 1 })).toThrow(/content block of type 'hologram'/);
  });

  it('validates the request in clear words: max_tokens required, an unknown role says "Unexpected role"', () => {
    expect(() =>
      parseRequestBody(messagesRequest, { model: 'm', messages: [{ role: 'user', content: 'x' }] }),
    ).toThrow("Missing required parameter: 'max_tokens'.");
    expect(() =>
      parseRequestBody(messagesRequest, {
        model: 'm',
        max_tokens: 1,
        messages: [{ role: 'tool', content: 'x' }],
      }),
    ).toThrow(
      expect.objectContaining({
        param: 'messages[0].role',
        message: expect.stringContaining('Unexpected role "tool"'),
      }),
    );
    expect(() =>
      parseRequestBody(messagesRequest, {
        model: 'm',
        max_tokens: 1,
        messages: [{ role: 'user', content: [{ text: 'x' }] }],
      }),
    ).toThrow(expect.objectContaining({ param: 'messages[0].content[0].type' }));
    expect(() =>
      parseRequestBody(messagesRequest, {
        model: 'm',
        max_tokens: 1,
        messages: [{ role: 'user', content: 'x' }],
        tool_choice: { type: 'tool' },
      }),
    ).toThrow(expect.objectContaining({ param: 'tool_choice.name' }));
    // Unknown fields pass: they are an Anthropic backend's business.
    expect(
      parseRequestBody(messagesRequest, {
        model: 'm',
        max_tokens: 1,
        messages: [{ role: 'user', content: 'x' }],
        context_management: { edits: [] },
      }).context_management,
    ).toEqual({ edits: [] });
  });
});

describe('withMessagesTranslation over a chat-only OpenAI-compatible backend', () => {
  const scripted = new ScriptedChatUpstream();
  let chat: ChatOnlyBackend;
  let messages: Backend;
  let client: Anthropic;
  let calls: () => number;
  let serveFetch: typeof fetch;

  beforeAll(async () => {
    const url = await scripted.start();
    ({ chat, messages } = chatOnlyMessagesBackend(url));
    const served = messagesFetch(messages);
    calls = served.calls;
    serveFetch = served.fetch;
    client = new Anthropic({
      apiKey: 'unused',
      baseURL: 'http://gateway.test',
      fetch: served.fetch,
      maxRetries: 0,
    });
  });
  afterAll(async () => {
    await messages.close();
    await scripted.stop();
  });

  it('wraps only what needs it and keeps the backend otherwise', () => {
    expect(messages.supports('messages')).toBe(true);
    expect(messages.supports('chat.completions')).toBe(true);
    expect(messages.supports('responses')).toBe(false);
    expect(messages.name).toBe(chat.name);
    expect(messages.type).toBe('openai');
    expect(withMessagesTranslation(messages)).toBe(messages);
    const noChat = { ...chat, supports: () => false } as unknown as Backend;
    expect(withMessagesTranslation(noChat)).toBe(noChat);
  });

  it('answers JSON with a Message: text, stop_reason and usage with cache reads apart', async () => {
    scripted.answer({ json: chatAnswer({ content: 'Bonjour !' }, 'stop', USAGE) });
    const message = await client.messages.create({
      model: 'claude-x',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'Say hello in French' }],
    });
    expect(message).toMatchObject({
      id: 'msg_xyz789',
      type: 'message',
      role: 'assistant',
      model: 'gpt-test',
      content: [{ type: 'text', text: 'Bonjour !' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: 176,
        output_tokens: 35,
        cache_read_input_tokens: 1024,
        cache_creation_input_tokens: 0,
      },
    });
    expect(chat.lastChatBody()).toMatchObject({ model: 'claude-x', max_tokens: 50 });
    expect(chat.lastChatBody()).not.toHaveProperty('stream');
  });

  it('round-trips a tool call with the SDK: tool_use with parsed input, then the result', async () => {
    scripted.answer({
      json: chatAnswer(
        {
          content: null,
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Ro' } },
          ],
        },
        'tool_calls',
        USAGE,
      ),
    });
    const tools: Anthropic.Tool[] = [
      { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
    ];
    const params = {
      model: 'claude-x',
      max_tokens: 50,
      tools,
      messages: [{ role: 'user' as const, content: 'Weather?' }],
    };
    const first = await client.messages.create(params);
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toEqual([
      { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
      // Broken arguments: an empty input rather than JSON no client parses.
      { type: 'tool_use', id: 'call_2', name: 'get_weather', input: {} },
    ]);

    scripted.answer({ json: chatAnswer({ content: 'Sunny in Paris.' }, 'stop', USAGE) });
    const second = await client.messages.create({
      ...params,
      messages: [
        ...params.messages,
        { role: 'assistant', content: first.content },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_1', content: '21C' },
            { type: 'tool_result', tool_use_id: 'call_2', content: 'unknown city', is_error: true },
          ],
        },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'Sunny in Paris.' }]);
    expect(chat.lastChatBody().messages).toEqual([
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
          { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '21C' },
      { role: 'tool', tool_call_id: 'call_2', content: 'Error: unknown city' },
    ]);
  });

  it("keeps the model's number texts in tool_use input: digits past 2^53, an exponent past Infinity", async () => {
    const args = '{"id": 12345678901234567890, "ratio": 1.10, "far": 4658192e1981946581, "n": [7, -0, 2.5]}';
    scripted.answer({
      json: chatAnswer(
        {
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: args } }],
        },
        'tool_calls',
        USAGE,
      ),
    });
    // The wire text, read without a client: a JavaScript client's own JSON.parse would round it.
    const response = await serveFetch('http://gateway.test/v1/messages', {
      method: 'POST',
      body: JSON.stringify({
        model: 'claude-x',
        max_tokens: 50,
        messages: [{ role: 'user', content: 'Go' }],
      }),
    });
    const text = await response.text();
    expect(text).toContain(
      '"input":{"id":12345678901234567890,"ratio":1.1,"far":4658192e1981946581,"n":[7,0,2.5]}',
    );
    const block = (JSON.parse(text) as { content: Array<{ input: Record<string, unknown> }> }).content[0];
    expect(block?.input.n).toEqual([7, 0, 2.5]);
  });

  it('maps finish reasons: length, content_filter, a matched stop sequence, reasoning', async () => {
    const ask = (stop_sequences?: string[]) =>
      client.messages.create({
        model: 'claude-x',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
        ...(stop_sequences ? { stop_sequences } : {}),
      });
    scripted.answer({ json: chatAnswer({ content: 'Once upon' }, 'length', USAGE) });
    expect((await ask()).stop_reason).toBe('max_tokens');
    scripted.answer({ json: chatAnswer({ content: null, refusal: 'I cannot help.' }, 'stop', USAGE) });
    const refused = await ask();
    expect(refused.stop_reason).toBe('refusal');
    expect(refused.content).toEqual([{ type: 'text', text: 'I cannot help.' }]);
    scripted.answer({ json: chatAnswer({ content: '' }, 'content_filter', USAGE) });
    expect((await ask()).stop_reason).toBe('refusal');
    // vLLM says which stop string ended the answer; OpenAI does not (end_turn then).
    scripted.answer({ json: chatAnswer({ content: 'A' }, 'stop', USAGE, { stop_reason: 'END' }) });
    expect(await ask(['END'])).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'END' });
    scripted.answer({ json: chatAnswer({ content: 'A' }, 'stop', USAGE) });
    expect(await ask(['END'])).toMatchObject({ stop_reason: 'end_turn', stop_sequence: null });
    scripted.answer({ json: chatAnswer({ content: '42', reasoning_content: 'Think.' }, 'stop', USAGE) });
    expect((await ask()).content).toEqual([
      { type: 'thinking', thinking: 'Think.', signature: '' },
      { type: 'text', text: '42' },
    ]);
  });

  it('counts the usage itself when the upstream reports none', async () => {
    scripted.answer({ json: chatAnswer({ content: 'Hello there, friend.' }, 'stop') });
    const message = await client.messages.create({
      model: 'claude-x',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'Greet me warmly please' }],
    });
    expect(message.usage.input_tokens).toBeGreaterThan(5);
    expect(message.usage.output_tokens).toBe(5);
    expect(message.usage.cache_read_input_tokens).toBe(0);
  });

  it("relays an upstream 4xx in Anthropic's shape, with its status and message", async () => {
    scripted.answer({
      status: 400,
      body: {
        error: {
          message: 'max_tokens is too large: 4000.',
          type: 'invalid_request_error',
          param: 'max_tokens',
          code: null,
        },
      },
    });
    const before = calls();
    const failure = await client.messages
      .create({ model: 'claude-x', max_tokens: 4000, messages: [{ role: 'user', content: 'x' }] })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Anthropic.BadRequestError);
    expect((failure as InstanceType<typeof Anthropic.BadRequestError>).error).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens is too large: 4000.' },
      request_id: `req_${before + 1}`,
    });
  });
});
