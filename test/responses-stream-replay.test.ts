import { createOpenAI } from '@ai-sdk/openai';
import { streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  functionCallItem,
  messageItem,
  outputText,
  reasoningItem,
  responseObject,
} from '../src/backends/responses-translation/response-object.js';
import { responseStreamReplay } from '../src/backends/responses-translation/response-stream-replay.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { expectResponse, expectResponseStreamEvent } from './support/spec-validator.js';

/**
 * A whole Response object (what a native Responses upstream that ignored `stream: true` answers)
 * replayed as the stream that would have produced it: every event spec-valid and numbered, the
 * closing event carrying the Response as it came, and both SDKs reading from it what they would
 * have read from the JSON.
 */
type Json = Record<string, unknown>;

const REQUEST = { model: 'up', input: 'Weather in Paris?' };
const TEXT = 'It is sunny in Paris, says the forecast.';
const CITATION = {
  type: 'url_citation',
  url: 'https://example.com/paris',
  title: 'Paris',
  start_index: 0,
  end_index: 5,
};
const USAGE = {
  input_tokens: 12,
  input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
  output_tokens: 20,
  output_tokens_details: { reasoning_tokens: 4 },
  total_tokens: 32,
};

function whole(status: 'completed' | 'incomplete', output: Json[]): Json {
  return responseObject(REQUEST, {
    id: 'resp_whole',
    createdAt: 1_700_000_000,
    model: 'up',
    status,
    incompleteReason: status === 'incomplete' ? 'max_output_tokens' : undefined,
    output,
    usage: USAGE,
  });
}

const ANSWER = whole('completed', [
  reasoningItem('rs_1', 'completed', { text: 'The user wants the weather.', encryptedContent: null }),
  {
    id: 'ws_1',
    type: 'web_search_call',
    status: 'completed',
    action: { type: 'search', query: 'Paris weather' },
  },
  messageItem('msg_1', 'completed', [{ ...outputText(TEXT), annotations: [CITATION] }]),
  functionCallItem('fc_1', 'completed', { callId: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' }),
]);

/** The replay's events: `event:` name and `data:` JSON. */
function eventsOf(bytes: Buffer | undefined): Array<{ name: string; data: Json }> {
  expect(bytes).toBeInstanceOf(Buffer);
  return String(bytes)
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const lines = block.split('\n');
      return {
        name: lines.find((line) => line.startsWith('event: '))?.slice(7) ?? '',
        data: JSON.parse(lines.find((line) => line.startsWith('data: '))?.slice(6) ?? '{}') as Json,
      };
    });
}

describe('responseStreamReplay', () => {
  it("spec-valid events in OpenAI's order, closing with the Response as it came", () => {
    expectResponse(ANSWER);
    const events = eventsOf(responseStreamReplay(ANSWER));
    events.forEach((event, index) => {
      expectResponseStreamEvent(event.data);
      expect(event.name).toBe(event.data.type);
      expect(event.data.sequence_number).toBe(index);
    });
    expect(events.map((event) => event.name)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.reasoning_summary_part.added',
      'response.reasoning_summary_text.delta',
      'response.reasoning_summary_text.done',
      'response.reasoning_summary_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.output_item.done',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.annotation.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events[0]?.data.response).toMatchObject({ id: 'resp_whole', status: 'in_progress', output: [] });
    expect(events.at(-1)?.data.response).toEqual(ANSWER);
    const output = ANSWER.output as Json[];
    const done = events.filter((event) => event.name === 'response.output_item.done');
    expect(done.map((event) => event.data.item)).toEqual(output);
    expect(events.find((event) => event.name === 'response.output_text.delta')?.data).toMatchObject({
      item_id: 'msg_1',
      output_index: 2,
      content_index: 0,
      delta: TEXT,
    });
  });

  it('an incomplete Response ends with response.incomplete', () => {
    const cut = whole('incomplete', [messageItem('msg_1', 'incomplete', [outputText('Once upon')])]);
    const events = eventsOf(responseStreamReplay(cut));
    for (const event of events) expectResponseStreamEvent(event.data);
    expect(events.at(-1)).toMatchObject({ name: 'response.incomplete', data: { response: cut } });
  });

  it('nothing for what no stream ends with: a queued Response, an object that is none', () => {
    expect(responseStreamReplay({ ...ANSWER, status: 'queued' })).toBeUndefined();
    expect(responseStreamReplay({ object: 'chat.completion', status: 'completed' })).toBeUndefined();
  });
});

describe('the SDKs reading a replayed stream', () => {
  let server: FakeUpstream;
  let baseURL: string;

  beforeAll(async () => {
    server = new FakeUpstream().on('POST', '/v1/responses', async (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(responseStreamReplay(ANSWER));
    });
    baseURL = `${await server.start()}/v1`;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('the official SDK: the same Response, its text and its call', async () => {
    const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
    const stream = client.responses.stream(REQUEST);
    const deltas: string[] = [];
    stream.on('response.output_text.delta', (event) => deltas.push(event.delta));
    const final = await stream.finalResponse();
    expect(deltas.join('')).toBe(TEXT);
    expect(final.output_text).toBe(TEXT);
    expect(final.output).toMatchObject(ANSWER.output as Json[]);
    expect(final.usage).toEqual(USAGE);
  });

  it("the AI SDK's streamText: text, reasoning, sources and usage", async () => {
    const result = streamText({ model: createOpenAI({ baseURL, apiKey: 'unused' })('up'), prompt: 'hi' });
    expect(await result.text).toBe(TEXT);
    expect(await result.reasoningText).toBe('The user wants the weather.');
    expect(await result.sources).toMatchObject([{ sourceType: 'url', url: CITATION.url, title: 'Paris' }]);
    expect(await result.usage).toMatchObject({ inputTokens: 12, outputTokens: 20 });
  });
});
