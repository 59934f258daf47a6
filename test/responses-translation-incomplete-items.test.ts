import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { responsesStreamOf } from '../src/backends/responses-translation/stream-translation.js';
import { UsageCount } from '../src/backends/responses-translation/usage-count.js';
import { chatOnlyUpstream } from './support/chat-only-backend.js';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

/**
 * A translated answer cut short (chat's finish_reason `length`) is an `incomplete` Response, and
 * the item the model was generating when it stopped is `incomplete` too, as OpenAI marks it:
 * in JSON, in its `response.output_item.done` event and in the closing `response.incomplete`.
 * Items finished before it stay `completed`.
 */
type Json = Record<string, unknown>;

/** Every event of a stream, each validated against the spec. */
async function streamed(stream: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  for await (const event of stream) {
    expectResponseStreamEvent(event);
    events.push(event);
  }
  return events;
}

function doneItems(events: OpenAI.Responses.ResponseStreamEvent[]) {
  return events.flatMap((event) => (event.type === 'response.output_item.done' ? [event.item] : []));
}

describe('the in-process model stopped by max_output_tokens', () => {
  let gw: TinyModelGateway;
  let client: OpenAI;

  beforeAll(async () => {
    gw = await startTinyModelGateway({ backend: { model: writeTinyGguf(), contextSize: 1024 } });
    await gw.backend.loaded;
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('JSON: the message is incomplete', async () => {
    const response = await client.responses.create({
      model: 'tiny',
      input: 'hello world',
      max_output_tokens: 5,
    });
    expectResponse(response);
    expect(response).toMatchObject({
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
    });
    expect(response.output).toMatchObject([{ type: 'message', status: 'incomplete' }]);
  });

  it('stream: output_item.done and response.incomplete say the message is incomplete', async () => {
    const events = await streamed(
      await client.responses.create({
        model: 'tiny',
        input: 'hello world',
        max_output_tokens: 5,
        stream: true,
      }),
    );
    expect(doneItems(events)).toMatchObject([{ type: 'message', status: 'incomplete' }]);
    const last = events.at(-1);
    expect(last?.type).toBe('response.incomplete');
    expectResponse(last && 'response' in last ? last.response : undefined);
    expect(last).toMatchObject({ response: { output: [{ type: 'message', status: 'incomplete' }] } });
  });
});

describe('a chat upstream that cuts a function call short', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let client: OpenAI;
  const CUT_ARGUMENTS = '{"city":"Par';
  const base = { id: 'chatcmpl-cut', created: 1_700_000_000, model: 'up' };
  const usage = { prompt_tokens: 9, completion_tokens: 8, total_tokens: 17 };

  beforeAll(async () => {
    // Text, then a call whose arguments stop where max_tokens ran out.
    upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (request, res) => {
      const call = {
        id: 'call_1',
        type: 'function',
        function: { name: 'weather', arguments: CUT_ARGUMENTS },
      };
      if (request.json?.stream !== true)
        return sendJson(res, 200, {
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'Looking it up.', tool_calls: [call] },
              finish_reason: 'length',
            },
          ],
          usage,
        });
      const chunk = (delta: Json, finish: string | null = null) => ({
        ...base,
        object: 'chat.completion.chunk',
        choices: [{ index: 0, delta, finish_reason: finish }],
      });
      return sendSse(res, [
        chunk({ role: 'assistant', content: 'Looking it up.' }),
        chunk({ tool_calls: [{ index: 0, ...call, function: { name: 'weather', arguments: '' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: CUT_ARGUMENTS } }] }),
        chunk({}, 'length'),
        { ...base, object: 'chat.completion.chunk', choices: [], usage },
      ]);
    });
    const url = await upstream.start();
    gw = await startGateway(
      { backends: { local: { type: 'mock' } }, models: { 'local-model': { backend: 'local' } } },
      {},
      { registry: new BackendRegistry([chatOnlyUpstream('local', url)]) },
    );
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  const ask = {
    model: 'local-model',
    input: 'Weather in Paris?',
    max_output_tokens: 8,
    tools: [
      {
        type: 'function' as const,
        name: 'weather',
        parameters: { type: 'object', properties: { city: { type: 'string' } } },
        strict: false,
      },
    ],
  };
  const expected = [
    { type: 'message', status: 'completed' },
    { type: 'function_call', status: 'incomplete', arguments: CUT_ARGUMENTS },
  ];

  it('JSON: the text before it is completed, the call incomplete', async () => {
    const response = await client.responses.create(ask);
    expectResponse(response);
    expect(response.status).toBe('incomplete');
    expect(response.output).toMatchObject(expected);
  });

  it('stream: the same, in output_item.done and in response.incomplete', async () => {
    const events = await streamed(await client.responses.create({ ...ask, stream: true }));
    expect(doneItems(events)).toMatchObject(expected);
    const last = events.at(-1);
    expect(last?.type).toBe('response.incomplete');
    expectResponse(last && 'response' in last ? last.response : undefined);
    expect(last).toMatchObject({ response: { output: expected } });
  });
});

describe('the stream translation', () => {
  it('a whole thinking block, then text cut short: the reasoning stays completed, the message is not', async () => {
    const base = { id: 'chatcmpl-t', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'up' };
    const chunk = (delta: Json, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    async function* chat() {
      yield Buffer.from(
        chunk({ thinking_blocks: [{ type: 'thinking', thinking: 'Hmm.', signature: 'c2ln' }] }),
      );
      yield Buffer.from(chunk({ content: 'Once upon' }));
      yield Buffer.from(chunk({}, 'length'));
    }
    const body = { model: 'up', input: 'Tell a story' };
    let text = '';
    for await (const out of responsesStreamOf(chat(), body, 'up', new UsageCount(body))) text += String(out);
    const events = text
      .split('\n\n')
      .filter(Boolean)
      .map((block) => JSON.parse(block.slice(block.indexOf('data: ') + 6)) as Json);
    for (const event of events) expectResponseStreamEvent(event);
    const expected = [
      { type: 'reasoning', status: 'completed' },
      { type: 'message', status: 'incomplete' },
    ];
    const done = events
      .filter((event) => event.type === 'response.output_item.done')
      .map((event) => event.item);
    expect(done).toMatchObject(expected);
    expect(events.at(-1)).toMatchObject({ type: 'response.incomplete', response: { output: expected } });
  });
});
