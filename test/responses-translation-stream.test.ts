import { describe, expect, it } from 'vitest';
import { responsesStreamOf } from '../src/backends/responses-translation/stream-translation.js';
import { UsageCount } from '../src/backends/responses-translation/usage-count.js';
import { UpstreamError, UpstreamTimeoutError } from '../src/errors.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * The chat -> Responses stream state machine on hand-built chat chunk sequences: the named
 * events, their order and sequence numbers, every one validated against the OpenAI spec.
 */
type Json = Record<string, unknown>;

const BODY = { model: 'local', input: 'hi' };
const base = {
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1_700_000_000,
  model: 'local-model',
};
const USAGE = {
  prompt_tokens: 10,
  completion_tokens: 4,
  total_tokens: 14,
  prompt_tokens_details: { cached_tokens: 3 },
  completion_tokens_details: { reasoning_tokens: 1 },
};

function chunk(delta: Json, finish: string | null = null): Json {
  return { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
}

function call(index: number, fields: Json): Json {
  return chunk({ tool_calls: [{ index, ...fields }] });
}

const usageChunk = { ...base, choices: [], usage: USAGE };

function sse(payloads: unknown[], done = true): string {
  return payloads.map((p) => `data: ${JSON.stringify(p)}\n\n`).join('') + (done ? 'data: [DONE]\n\n' : '');
}

async function* bytes(...parts: Array<string | Error>): AsyncGenerator<Buffer> {
  for (const part of parts) {
    if (part instanceof Error) throw part;
    yield Buffer.from(part);
  }
}

interface Event {
  name: string;
  data: Json;
}

/** Runs the translation and parses what it wrote: `event:` name and `data:` JSON of each event. */
async function translate(
  source: AsyncIterable<Buffer>,
  count = new UsageCount(BODY),
): Promise<{ events: Event[]; error: unknown; text: string }> {
  let text = '';
  let error: unknown;
  try {
    for await (const out of responsesStreamOf(source, BODY, 'local', count)) text += out.toString('utf8');
  } catch (caught) {
    error = caught;
  }
  const events = text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const lines = block.split('\n');
      const name = lines.find((line) => line.startsWith('event: '))?.slice(7) ?? '';
      const data = JSON.parse(lines.find((line) => line.startsWith('data: '))?.slice(6) ?? '{}') as Json;
      return { name, data };
    });
  events.forEach((event, index) => {
    expectResponseStreamEvent(event.data);
    expect(event.name).toBe(event.data.type);
    expect(event.data.sequence_number).toBe(index);
  });
  return { events, error, text };
}

const types = (events: Event[]) => events.map((event) => event.name);
const last = (events: Event[]) => events.at(-1)?.data.response as Json;

describe('chat stream -> Responses events', () => {
  it('text: the full event sequence, deltas as sent, usage in the Responses shape, no [DONE]', async () => {
    const { events, error, text } = await translate(
      bytes(
        sse(
          [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hel' }), chunk({ content: 'lo' })],
          false,
        ),
        sse([chunk({}, 'stop'), usageChunk]),
      ),
    );
    expect(error).toBeUndefined();
    expect(text).not.toContain('[DONE]');
    expect(types(events)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta)).toEqual([
      'Hel',
      'lo',
    ]);
    const response = last(events);
    expectResponse(response);
    expect(response).toMatchObject({ status: 'completed', model: 'local-model', created_at: 1_700_000_000 });
    expect(response.output).toMatchObject([
      { type: 'message', content: [{ type: 'output_text', text: 'Hello' }] },
    ]);
    expect(response.usage).toEqual({
      input_tokens: 10,
      input_tokens_details: { cached_tokens: 3, cache_write_tokens: 0 },
      output_tokens: 4,
      output_tokens_details: { reasoning_tokens: 1 },
      total_tokens: 14,
    });
    const created = events[0]?.data.response as Json;
    expect(created).toMatchObject({ status: 'in_progress', output: [], usage: null });
    expect(created.id).toBe(response.id);
  });

  it('reads events however the bytes are cut, CRLF framing and a split UTF-8 character included', async () => {
    const whole = Buffer.from(
      sse([chunk({ content: 'héllo wörld' }), chunk({}, 'stop'), usageChunk]).replaceAll('\n', '\r\n'),
    );
    async function* oneByteAtATime(): AsyncGenerator<Buffer> {
      for (let at = 0; at < whole.length; at++) yield whole.subarray(at, at + 1);
    }
    const { events, error } = await translate(oneByteAtATime());
    expect(error).toBeUndefined();
    expect(last(events).output).toMatchObject([{ content: [{ text: 'héllo wörld' }] }]);
  });

  it('interleaved tool calls: one function_call item each, arguments by index, all closed at the end', async () => {
    const { events } = await translate(
      bytes(
        sse([
          chunk({ role: 'assistant', content: null }),
          call(0, { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }),
          call(1, { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"tz"' } }),
          call(0, { function: { arguments: '{"city":' } }),
          call(1, { function: { arguments: ':"UTC"}' } }),
          call(0, { function: { arguments: '"Paris"}' } }),
          chunk({}, 'tool_calls'),
          usageChunk,
        ]),
      ),
    );
    const added = events.filter((e) => e.name === 'response.output_item.added').map((e) => e.data);
    expect(added).toMatchObject([
      {
        output_index: 0,
        item: { type: 'function_call', call_id: 'call_a', name: 'get_weather', arguments: '' },
      },
      { output_index: 1, item: { type: 'function_call', call_id: 'call_b', name: 'get_time' } },
    ]);
    const deltas = events.filter((e) => e.name === 'response.function_call_arguments.delta');
    expect(deltas.map((e) => [e.data.output_index, e.data.delta])).toEqual([
      [1, '{"tz"'],
      [0, '{"city":'],
      [1, ':"UTC"}'],
      [0, '"Paris"}'],
    ]);
    const done = events.filter((e) => e.name === 'response.function_call_arguments.done').map((e) => e.data);
    expect(done).toMatchObject([
      { output_index: 0, name: 'get_weather', arguments: '{"city":"Paris"}' },
      { output_index: 1, name: 'get_time', arguments: '{"tz":"UTC"}' },
    ]);
    const response = last(events);
    expectResponse(response);
    expect(response.status).toBe('completed');
    expect(response.output).toMatchObject([
      { type: 'function_call', status: 'completed', call_id: 'call_a', arguments: '{"city":"Paris"}' },
      { type: 'function_call', status: 'completed', call_id: 'call_b', arguments: '{"tz":"UTC"}' },
    ]);
    // Items are announced with the ids their deltas and done events name.
    const ids = added.map((data) => (data.item as Json).id);
    expect(new Set(deltas.map((e) => e.data.item_id))).toEqual(new Set(ids));
  });

  it('text then a tool call: the message is closed before the call opens', async () => {
    const { events } = await translate(
      bytes(
        sse([
          chunk({ content: 'Let me check.' }),
          call(0, { id: 'call_a', type: 'function', function: { name: 'lookup', arguments: '{}' } }),
          chunk({}, 'tool_calls'),
          usageChunk,
        ]),
      ),
    );
    const sequence = types(events).filter((t) => t.includes('output_item') || t.includes('arguments'));
    expect(sequence).toEqual([
      'response.output_item.added',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
    ]);
    expect(last(events).output).toMatchObject([
      { type: 'message', content: [{ text: 'Let me check.' }] },
      { type: 'function_call', name: 'lookup', arguments: '{}' },
    ]);
  });

  it('a call whose name comes after its first arguments is announced once named, arguments kept', async () => {
    const { events } = await translate(
      bytes(
        sse([
          call(0, { id: 'call_late', function: { arguments: '{"a":' } }),
          call(0, { function: { name: 'late', arguments: '1}' } }),
          call(0, { function: { name: 'late' } }),
          chunk({}, 'tool_calls'),
        ]),
      ),
    );
    expect(events.filter((e) => e.name === 'response.output_item.added')).toHaveLength(1);
    expect(last(events).output).toMatchObject([{ call_id: 'call_late', name: 'late', arguments: '{"a":1}' }]);
  });

  it('empty content: one empty assistant message, so output_text is "" rather than missing', async () => {
    const { events } = await translate(
      bytes(sse([chunk({ role: 'assistant', content: '' }), chunk({}, 'stop')])),
    );
    expect(types(events)).toContain('response.output_item.added');
    const response = last(events);
    expect(response.output).toMatchObject([
      { type: 'message', content: [{ type: 'output_text', text: '' }] },
    ]);
  });

  it("no usage chunk: the usage is the gateway's count (what it charges), marked as counted", async () => {
    const count = new UsageCount(BODY);
    const { events } = await translate(
      bytes(sse([chunk({ content: 'Hello there, friend.' }), chunk({}, 'stop')])),
      count,
    );
    const response = last(events);
    expectResponse(response);
    expect(response.usage).toMatchObject({ output_tokens: 5, input_tokens_details: { cached_tokens: 0 } });
    const usage = response.usage as Json;
    // The prompt as the gateway counts it for the reservation: what it would have charged anyway.
    expect(usage.input_tokens).toBe(estimatePromptTokens('responses', BODY));
    expect(usage.total_tokens).toBe((usage.input_tokens as number) + 5);
    expect(count.counted.usage).toBe(true);

    const reported = new UsageCount(BODY);
    const { events: exact } = await translate(
      bytes(sse([chunk({ content: 'Hello' }), chunk({}, 'stop'), usageChunk])),
      reported,
    );
    expect(last(exact).usage).toMatchObject({ input_tokens: 10, output_tokens: 4 });
    expect(reported.counted.usage).toBe(false);
  });

  it('a stream that stops with neither finish_reason nor [DONE] is cut off: response.failed, and an error', async () => {
    const { events, error } = await translate(
      bytes(sse([chunk({ role: 'assistant', content: 'Once upon' }), chunk({ content: ' a' })], false)),
    );
    expect(error).toBeInstanceOf(UpstreamError);
    expect(types(events)).not.toContain('response.completed');
    expect(events.at(-1)?.name).toBe('response.failed');
    const response = last(events);
    expectResponse(response);
    expect(response).toMatchObject({
      status: 'failed',
      error: { code: 'server_error' },
      output: [{ type: 'message', content: [{ text: 'Once upon a' }] }],
    });
  });

  it('an empty finish_reason on every chunk (some servers send one) is no end: still cut off', async () => {
    const { events, error } = await translate(
      bytes(sse([chunk({ role: 'assistant', content: 'Once' }, ''), chunk({ content: ' upon' }, '')], false)),
    );
    expect(error).toBeInstanceOf(UpstreamError);
    expect(events.at(-1)?.name).toBe('response.failed');
  });

  it('a stream with no chat event at all is an error, with nothing written', async () => {
    const { events, error } = await translate(bytes('not a server-sent event\n'));
    expect(error).toBeInstanceOf(UpstreamError);
    expect(events).toEqual([]);
  });

  it('a finish_reason without [DONE], or [DONE] without a finish_reason, is a whole answer', async () => {
    const noDone = await translate(bytes(sse([chunk({ content: 'Hi' }), chunk({}, 'stop')], false)));
    expect(noDone.error).toBeUndefined();
    expect(noDone.events.at(-1)?.name).toBe('response.completed');
    const noFinish = await translate(bytes(sse([chunk({ content: 'Hi' })])));
    expect(noFinish.error).toBeUndefined();
    expect(noFinish.events.at(-1)?.name).toBe('response.completed');
  });

  it('a refusal streams as a refusal part: refusal.delta / refusal.done', async () => {
    const { events } = await translate(
      bytes(sse([chunk({ refusal: 'I can' }), chunk({ refusal: 'not.' }), chunk({}, 'stop')])),
    );
    expect(types(events).filter((t) => t.includes('refusal') || t.includes('content_part'))).toEqual([
      'response.content_part.added',
      'response.refusal.delta',
      'response.refusal.delta',
      'response.refusal.done',
      'response.content_part.done',
    ]);
    expect(events.find((e) => e.name === 'response.refusal.done')?.data.refusal).toBe('I cannot.');
    expect(last(events).output).toMatchObject([{ content: [{ type: 'refusal', refusal: 'I cannot.' }] }]);
  });

  it('finish_reason length: response.incomplete with reason max_output_tokens', async () => {
    const { events } = await translate(
      bytes(sse([chunk({ content: 'Once' }), chunk({}, 'length'), usageChunk])),
    );
    expect(events.at(-1)?.name).toBe('response.incomplete');
    const response = last(events);
    expectResponse(response);
    expect(response).toMatchObject({
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
    });
  });

  it('an error chunk before anything else: one `error` event, the answer the gateway reads ahead', async () => {
    const failure = {
      error: {
        message: 'Too many tokens',
        type: 'invalid_request_error',
        code: 'context_length_exceeded',
        param: 'messages',
      },
    };
    const { events, error } = await translate(bytes(sse([failure])));
    expect(error).toBeUndefined();
    expect(events.map((e) => e.data)).toEqual([
      {
        type: 'error',
        sequence_number: 0,
        code: 'context_length_exceeded',
        message: 'Too many tokens',
        param: 'messages',
      },
    ]);
  });

  it('an error chunk mid-stream: response.failed with what was generated, then the error for the gateway', async () => {
    const failure = { error: { message: 'model crashed', type: 'server_error', code: null } };
    const { events, error } = await translate(bytes(sse([chunk({ content: 'partial' }), failure])));
    expect(error).toBeInstanceOf(UpstreamError);
    expect(events.at(-1)?.name).toBe('response.failed');
    const response = last(events);
    expectResponse(response);
    expect(response).toMatchObject({
      status: 'failed',
      error: { code: 'server_error', message: "The backend's stream failed: model crashed" },
      output: [{ type: 'message', status: 'in_progress', content: [{ text: 'partial' }] }],
    });
  });

  it('a broken connection mid-stream: response.failed, then the same error rethrown', async () => {
    const lost = new UpstreamError("Backend 'local' lost the connection in the middle of its answer.");
    const { events, error } = await translate(bytes(sse([chunk({ content: 'par' })], false), lost));
    expect(error).toBe(lost);
    expect(last(events)).toMatchObject({ status: 'failed', error: { message: lost.message } });
  });

  it("the backend's stream timing out mid-way (a module's idle timeout): response.failed saying so", async () => {
    const silent = new UpstreamTimeoutError("Backend 'local' went silent in the middle of its answer.");
    const { events, error } = await translate(bytes(sse([chunk({ content: 'par' })], false), silent));
    expect(error).toBe(silent);
    expect(events.at(-1)?.name).toBe('response.failed');
    expect(last(events)).toMatchObject({
      status: 'failed',
      error: { code: 'server_error', message: silent.message },
    });
  });

  it('a failure before the first chunk is thrown as is, with nothing written', async () => {
    const lost = new UpstreamError('gone');
    const { events, error } = await translate(bytes(': keep-alive\n\n', lost));
    expect(error).toBe(lost);
    expect(events).toEqual([]);
  });
});
