import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendResponse } from '../src/backends/backend.js';
import { chatStreamEvents } from '../src/backends/messages-translation/chat-sse-events.js';
import { UpstreamClientError, UpstreamError } from '../src/errors.js';
import { inBandError } from '../src/pipeline/in-band-error.js';
import {
  anthropicEvents,
  bodyText,
  type ChatOnlyBackend,
  chatChunk,
  chatOnlyMessagesBackend,
  messagesFetch,
  ScriptedChatUpstream,
  usageChunk,
} from './support/chat-only-messages-backend.js';

type Json = Record<string, unknown>;
type Event = { event: string; data: Json };

const USAGE = {
  prompt_tokens: 900,
  completion_tokens: 12,
  total_tokens: 912,
  prompt_tokens_details: { cached_tokens: 512 },
  completion_tokens_details: { reasoning_tokens: 3 },
};
const EXACT = {
  input_tokens: 388,
  output_tokens: 12,
  cache_read_input_tokens: 512,
  cache_creation_input_tokens: 0,
};

/**
 * Anthropic's stream grammar: message_start first; blocks one at a time with indices 0, 1, 2...
 * each start, deltas of its own index and kind, stop; then message_delta and message_stop last.
 * Every event is named after its type (the SDK's reader skips unnamed events).
 */
function expectAnthropicOrder(events: Event[]): void {
  for (const { event, data } of events) expect(data.type).toBe(event);
  expect(events[0]?.event).toBe('message_start');
  expect(events.at(-2)?.event).toBe('message_delta');
  expect(events.at(-1)?.event).toBe('message_stop');
  let open: { index: number; type: string } | undefined;
  let next = 0;
  for (const { event, data } of events.slice(1, -2)) {
    if (event === 'content_block_start') {
      expect(open).toBeUndefined();
      expect(data.index).toBe(next++);
      open = { index: data.index as number, type: (data.content_block as Json).type as string };
    } else if (event === 'content_block_delta') {
      expect(data.index).toBe(open?.index);
      const kind = { text: 'text_delta', thinking: 'thinking_delta', tool_use: 'input_json_delta' }[
        open?.type ?? ''
      ];
      expect((data.delta as Json).type).toBe(kind);
    } else {
      expect(event).toBe('content_block_stop');
      expect(data.index).toBe(open?.index);
      open = undefined;
    }
  }
  expect(open).toBeUndefined();
}

function call(body: Json) {
  return {
    kind: 'json' as const,
    endpoint: 'messages' as const,
    model: 'claude-x',
    signal: new AbortController().signal,
    requestId: 'req_stream',
    body: { model: 'claude-x', max_tokens: 100, stream: true, ...body },
    stream: true,
  };
}

const HELLO = { messages: [{ role: 'user', content: 'Say hello' }] };

describe('chatStreamEvents', () => {
  it('reads the same events however the bytes are cut (CRLF and multi-byte characters split too)', async () => {
    const chunks = [chatChunk({ content: 'héllo → 世界' }), chatChunk({}, { finish_reason: 'stop' })];
    const wire = Buffer.from(
      `: hi\r\n\r\ndata: ${JSON.stringify(chunks[0])}\r\n\r\ndata: ${JSON.stringify(chunks[1])}\n\ndata: [DONE]\n\n`,
    );
    const read = async (parts: Buffer[]) => {
      const out: unknown[] = [];
      for await (const event of chatStreamEvents(parts)) out.push(event);
      return out;
    };
    const expected = [...chunks.map((chunk) => ({ kind: 'chunk', chunk })), { kind: 'done' }];
    expect(await read([wire])).toEqual(expected);
    const bytes = [...wire].map((byte) => Buffer.from([byte]));
    expect(await read(bytes)).toEqual(expected);
  });
});

describe('withMessagesTranslation: streams', () => {
  const scripted = new ScriptedChatUpstream();
  let chat: ChatOnlyBackend;
  let messages: Backend;
  let client: Anthropic;

  beforeAll(async () => {
    const url = await scripted.start();
    ({ chat, messages } = chatOnlyMessagesBackend(url));
    client = new Anthropic({
      apiKey: 'unused',
      baseURL: 'http://gateway.test',
      fetch: messagesFetch(messages).fetch,
      maxRetries: 0,
    });
  });
  afterAll(async () => {
    await messages.close();
    await scripted.stop();
  });

  const events = async (response: BackendResponse) => anthropicEvents(await bodyText(response));

  it('streams text as Anthropic events in order: an estimate in message_start, the exact usage in message_delta', async () => {
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: '' }),
        chatChunk({ content: 'Hel' }),
        chatChunk({ content: 'lo!' }),
        chatChunk({}, { finish_reason: 'stop' }),
        usageChunk(USAGE),
      ],
    });
    const response = await messages.send(call(HELLO));
    expect(response.contentType).toBe('text/event-stream; charset=utf-8');
    const got = await events(response);
    expectAnthropicOrder(got);
    expect(got.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const start = got[0]?.data.message as Json;
    expect(start).toMatchObject({
      id: 'msg_abc123',
      type: 'message',
      role: 'assistant',
      model: 'gpt-test',
      content: [],
    });
    const startUsage = start.usage as Json;
    expect(startUsage.input_tokens).toBeGreaterThan(0);
    expect(startUsage).toMatchObject({
      output_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
    });
    expect(got[1]?.data.content_block).toEqual({ type: 'text', text: '' });
    expect(got[2]?.data.delta).toEqual({ type: 'text_delta', text: 'Hel' });
    expect(got[5]?.data).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: EXACT,
    });
    expect(chat.lastChatBody()).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("gives the SDK's final message the upstream's exact usage (message_delta over message_start)", async () => {
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: 'Hi' }),
        chatChunk({}, { finish_reason: 'stop' }),
        usageChunk(USAGE),
      ],
    });
    const stream = client.messages.stream({
      model: 'claude-x',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'x' }],
    });
    const texts: string[] = [];
    stream.on('text', (text) => texts.push(text));
    const final = await stream.finalMessage();
    expect(texts).toEqual(['Hi']);
    expect(final.content).toEqual([{ type: 'text', text: 'Hi' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage).toMatchObject(EXACT);
  });

  it('streams reasoning, text and tool calls as blocks 0..n, each tool call whole with its checked input', async () => {
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', reasoning_content: 'The user ' }),
        chatChunk({ reasoning_content: 'wants weather.' }),
        chatChunk({ content: 'Checking both.' }),
        chatChunk({
          tool_calls: [
            { index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } },
          ],
        }),
        chatChunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
        chatChunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
        chatChunk({
          tool_calls: [
            {
              index: 1,
              id: 'call_b',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city": "Ro' },
            },
          ],
        }),
        chatChunk({}, { finish_reason: 'tool_calls' }),
        usageChunk(USAGE),
      ],
    });
    const got = await events(
      await messages.send(
        call({ ...HELLO, tools: [{ name: 'get_weather', input_schema: { type: 'object' } }] }),
      ),
    );
    expectAnthropicOrder(got);
    const starts = got.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block);
    expect(starts).toEqual([
      { type: 'thinking', thinking: '', signature: '' },
      { type: 'text', text: '' },
      { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} },
      { type: 'tool_use', id: 'call_b', name: 'get_weather', input: {} },
    ]);
    const inputs = got
      .filter((e) => (e.data.delta as Json | undefined)?.type === 'input_json_delta')
      .map((e) => [e.data.index, (e.data.delta as Json).partial_json]);
    expect(inputs).toEqual([
      [2, '{"city":"Paris"}'],
      [3, '{}'],
    ]);
    expect(got.at(-2)?.data.delta).toMatchObject({ stop_reason: 'tool_use' });
  });

  it('lets the SDK assemble a streamed tool use and its input', async () => {
    scripted.answer({
      chunks: [
        chatChunk({
          role: 'assistant',
          tool_calls: [
            { index: 0, id: 'call_z', type: 'function', function: { name: 'lookup', arguments: '{"q":' } },
          ],
        }),
        chatChunk({ tool_calls: [{ index: 0, function: { arguments: '"tollgate"}' } }] }),
        chatChunk({}, { finish_reason: 'tool_calls' }),
        usageChunk(USAGE),
      ],
    });
    const final = await client.messages
      .stream({
        model: 'claude-x',
        max_tokens: 100,
        tools: [{ name: 'lookup', input_schema: { type: 'object' } }],
        messages: [{ role: 'user', content: 'find it' }],
      })
      .finalMessage();
    expect(final.content).toEqual([
      { type: 'tool_use', id: 'call_z', name: 'lookup', input: { q: 'tollgate' } },
    ]);
    expect(final.stop_reason).toBe('tool_use');
  });

  it('keeps the estimate and counts the output when the upstream reports no usage', async () => {
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: 'Hello there, friend.' }),
        chatChunk({}, { finish_reason: 'length' }),
      ],
    });
    const got = await events(await messages.send(call(HELLO)));
    expectAnthropicOrder(got);
    const startUsage = (got[0]?.data.message as Json | undefined)?.usage as Json;
    const delta = got.at(-2)?.data as Json;
    expect(delta.delta).toEqual({ stop_reason: 'max_tokens', stop_sequence: null });
    expect(delta.usage).toEqual({
      input_tokens: startUsage.input_tokens,
      output_tokens: 5,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
    });
  });

  it('reads CRLF framing, comments and a last event without its blank line', async () => {
    scripted.answer({
      chunks: [],
      raw:
        ': keep-alive\r\n\r\n' +
        `data: ${JSON.stringify(chatChunk({ role: 'assistant', content: 'A' }))}\r\n\r\n` +
        `data: ${JSON.stringify(chatChunk({ content: 'B' }, { finish_reason: 'stop' }))}\r\n\r\n` +
        `data: ${JSON.stringify(usageChunk(USAGE))}`,
      done: false,
    });
    const got = await events(await messages.send(call(HELLO)));
    expectAnthropicOrder(got);
    const text = got.filter((e) => e.event === 'content_block_delta').map((e) => (e.data.delta as Json).text);
    expect(text).toEqual(['A', 'B']);
    expect(got.at(-2)?.data.usage).toEqual(EXACT);
  });

  it('turns an error as the first chunk into an error event the read-ahead fails the attempt with', async () => {
    scripted.answer({
      chunks: [
        {
          error: {
            message: 'Context too long.',
            type: 'invalid_request_error',
            code: 'context_length_exceeded',
          },
        },
      ],
    });
    const text = await bodyText(await messages.send(call(HELLO)));
    expect(anthropicEvents(text)).toEqual([
      {
        event: 'error',
        data: { type: 'error', error: { type: 'invalid_request_error', message: 'Context too long.' } },
      },
    ]);
    const failure = inBandError(Buffer.from(text));
    expect(failure).toBeInstanceOf(UpstreamClientError);
    expect((failure as UpstreamClientError).status).toBe(400);
  });

  it('ends with an error event the SDK throws when the upstream fails mid-stream', async () => {
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: 'Partial' }),
        { error: { message: 'The server is overloaded.', type: 'server_error', code: 'overloaded' } },
      ],
    });
    const got = await events(await messages.send(call(HELLO)));
    expect(got.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'error',
    ]);
    expect(got.at(-1)?.data.error).toEqual({
      type: 'overloaded_error',
      message: 'The server is overloaded.',
    });

    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: 'Partial' }),
        { error: { message: 'The server is overloaded.', type: 'server_error', code: 'overloaded' } },
      ],
    });
    const failure = await client.messages
      .stream({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
      .finalMessage()
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Anthropic.APIError);
    expect((failure as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({
      error: { type: 'overloaded_error' },
    });
  });

  it('fails the body (for the relay to report) when the upstream breaks off', async () => {
    scripted.answer({ chunks: [chatChunk({ role: 'assistant', content: 'Par' })], hold: true });
    const response = await messages.send(call(HELLO));
    const iterator = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.toString()).toContain('"text":"Par"');
    scripted.breakHeld();
    await expect(iterator.next()).rejects.toThrow(UpstreamError);
  });

  it('fails the body when the upstream stops with neither finish_reason nor [DONE]: a cut answer', async () => {
    scripted.answer({
      chunks: [chatChunk({ role: 'assistant', content: 'Once upon' }), chatChunk({ content: ' a' })],
      done: false,
    });
    const response = await messages.send(call(HELLO));
    let text = '';
    const failure = await (async () => {
      for await (const chunk of response.body) text += chunk.toString();
    })().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(UpstreamError);
    const got = anthropicEvents(text);
    expect(got.map((e) => e.event)).not.toContain('message_stop');
    expect(got.map((e) => e.event)).not.toContain('message_delta');
    expect(
      got.filter((e) => e.event === 'content_block_delta').map((e) => (e.data.delta as Json).text),
    ).toEqual(['Once upon', ' a']);

    // An empty finish_reason on every chunk (some servers send one) is no end either.
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: 'Once' }, { finish_reason: '' }),
        chatChunk({ content: ' upon' }, { finish_reason: '' }),
      ],
      done: false,
    });
    const empty = await messages.send(call(HELLO));
    await expect(bodyText(empty)).rejects.toThrow(UpstreamError);

    // Nothing at all (bytes that are no event): the attempt fails before the client sees one.
    scripted.answer({ chunks: [], raw: 'this is not a server-sent event\n', done: false });
    await expect(bodyText(await messages.send(call(HELLO)))).rejects.toThrow(UpstreamError);
  });

  it('a finish_reason without [DONE], or [DONE] without a finish_reason, is a whole answer', async () => {
    scripted.answer({
      chunks: [chatChunk({ role: 'assistant', content: 'Hi' }), chatChunk({}, { finish_reason: 'stop' })],
      done: false,
    });
    const noDone = await events(await messages.send(call(HELLO)));
    expectAnthropicOrder(noDone);
    expect(noDone.at(-2)?.data.delta).toMatchObject({ stop_reason: 'end_turn' });
    scripted.answer({ chunks: [chatChunk({ role: 'assistant', content: 'Hi' })] });
    expectAnthropicOrder(await events(await messages.send(call(HELLO))));
  });

  it('stops reading the upstream when the client goes', async () => {
    scripted.answer({ chunks: [chatChunk({ role: 'assistant', content: 'Wait for it' })], hold: true });
    const response = await messages.send(call(HELLO));
    const iterator = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.toString()).toContain('message_start');
    await iterator.return?.();
    await scripted.upstream.waitForAbort();
  });

  it('says stop_sequence when the upstream names the stop string that ended the stream (vLLM)', async () => {
    scripted.answer({
      chunks: [
        chatChunk({ role: 'assistant', content: 'Step 1' }),
        chatChunk({}, { finish_reason: 'stop', stop_reason: '###' }),
        usageChunk(USAGE),
      ],
    });
    const got = await events(await messages.send(call({ ...HELLO, stop_sequences: ['###'] })));
    expect(got.at(-2)?.data.delta).toEqual({ stop_reason: 'stop_sequence', stop_sequence: '###' });
    expect(chat.lastChatBody().stop).toEqual(['###']);
  });

  it('refuses a stream answered to a request that asked for JSON', async () => {
    scripted.answer({ chunks: [chatChunk({ role: 'assistant', content: 'x' })] });
    await expect(messages.send({ ...call(HELLO), stream: false })).rejects.toThrow(UpstreamError);
  });

  it('passes every other call to the backend untouched', async () => {
    scripted.answer({ json: { id: 'chatcmpl-1', object: 'chat.completion', choices: [], usage: USAGE } });
    const body = { model: 'gpt-test', messages: [{ role: 'user', content: 'x' }], n: 1 };
    const response = await messages.send({ ...call({}), endpoint: 'chat.completions', body, stream: false });
    expect(JSON.parse(await bodyText(response))).toMatchObject({ id: 'chatcmpl-1', usage: USAGE });
    expect(chat.lastChatBody()).toBe(body);
  });

  it('streams an answer the upstream sent whole to a streamed request', async () => {
    scripted.answer({
      json: {
        id: 'chatcmpl-whole',
        object: 'chat.completion',
        model: 'gpt-test',
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: 'Done.',
              tool_calls: [{ id: 'call_w', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }],
            },
            finish_reason: 'tool_calls',
          },
        ],
        usage: USAGE,
      },
    });
    const got = await events(
      await messages.send(call({ ...HELLO, tools: [{ name: 'f', input_schema: { type: 'object' } }] })),
    );
    expectAnthropicOrder(got);
    expect(
      got.filter((e) => e.event === 'content_block_start').map((e) => (e.data.content_block as Json).type),
    ).toEqual(['text', 'tool_use']);
    expect(got.at(-2)?.data).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: EXACT });
  });
});
