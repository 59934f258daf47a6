import type { ServerResponse } from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countTextTokens } from '../src/usage/token-counter.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { sendAnthropicSse } from './support/fake-anthropic.js';
import { FakeUpstream, type RecordedRequest, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import {
  countedRecord,
  newRequestId,
  providerRecord,
  recordsOf,
  withRequestId,
} from './support/usage-records.js';

/**
 * The anthropic backend reached with OpenAI's API (chat, legacy completions, and the Responses
 * translation on top of its chat): Anthropic usage without `input_tokens`, or without the output
 * count (the JSON answer's `output_tokens`, a stream's `message_delta` one), or no usage at all,
 * is no usage. The chat answer carries none (no usage chunk either), so the gateway counts the
 * answer itself, records it estimated and charges that. Made chat usage, what it lacked was a 0
 * the gateway charged as given. message_start says the prompt and message_delta the output: a
 * stream needs the two together, wherever each came from.
 */

type Json = Record<string, unknown>;

interface Variant {
  /** The JSON message's `usage`; undefined: none at all. */
  json: Json | undefined;
  /** A stream's message_start usage, and its message_delta usage; undefined: the event has none. */
  start: Json | undefined;
  delta: Json | undefined;
}

/** Usage that does not say what the answer cost, by the upstream model asked. */
const MISSING: Record<string, Variant> = {
  'no-input': { json: { output_tokens: 4 }, start: { output_tokens: 1 }, delta: { output_tokens: 4 } },
  'null-input': {
    json: { input_tokens: null, output_tokens: 4 },
    start: { input_tokens: null, output_tokens: 1 },
    delta: { output_tokens: 4 },
  },
  'no-output': {
    json: { input_tokens: 3 },
    start: { input_tokens: 3, output_tokens: 1 },
    delta: { input_tokens: 3 },
  },
  // message_start's `output_tokens: 1` is no count of the answer: only the end says that.
  'no-delta-usage': {
    json: { input_tokens: 3, output_tokens: null },
    start: { input_tokens: 3, output_tokens: 1 },
    delta: undefined,
  },
  'no-usage': { json: undefined, start: undefined, delta: undefined },
};
/** Usage that does: as Anthropic sends it, and with the input counts only at the end. */
const WHOLE: Record<string, Variant> = {
  anthropic: {
    json: { input_tokens: 3, output_tokens: 4 },
    start: { input_tokens: 3, output_tokens: 1 },
    delta: { output_tokens: 4 },
  },
  'late-input': {
    json: { input_tokens: 3, output_tokens: 4 },
    start: { output_tokens: 1 },
    delta: { input_tokens: 3, output_tokens: 4 },
  },
};
const VARIANTS = { ...MISSING, ...WHOLE };
const ANSWER_TEXT = 'Counted by the gateway.';

function variantOf(request: RecordedRequest): Variant {
  const variant = VARIANTS[String(request.json?.model)];
  if (!variant) throw new Error(`no variant for ${String(request.json?.model)}`);
  return variant;
}

function messages(request: RecordedRequest, res: ServerResponse): void {
  const variant = variantOf(request);
  const message = {
    id: 'msg_usage_1',
    type: 'message',
    role: 'assistant',
    model: String(request.json?.model),
    content: [{ type: 'text', text: ANSWER_TEXT }],
    stop_reason: 'end_turn',
    stop_sequence: null,
  };
  if (request.json?.stream !== true) {
    sendJson(res, 200, { ...message, ...(variant.json ? { usage: variant.json } : {}) });
    return;
  }
  const text = (delta: string) => ({
    type: 'content_block_delta',
    index: 0,
    delta: { type: 'text_delta', text: delta },
  });
  sendAnthropicSse(res, [
    {
      type: 'message_start',
      message: {
        ...message,
        content: [],
        stop_reason: null,
        ...(variant.start ? { usage: variant.start } : {}),
      },
    },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    text('Counted by'),
    text(' the gateway.'),
    { type: 'content_block_stop', index: 0 },
    {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      ...(variant.delta ? { usage: variant.delta } : {}),
    },
    { type: 'message_stop' },
  ]);
}

describe('anthropic on the chat surface: usage without both counts is counted', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let admin: AdminHttp;
  let openai: OpenAI;

  beforeAll(async () => {
    upstream = new FakeUpstream()
      .on('POST', '/v1/messages', messages)
      .on('GET', '/v1/models', (_request, res) => sendJson(res, 200, { data: [], has_more: false }));
    const base = await upstream.start();
    gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: { claude: { type: 'anthropic', baseUrl: base, apiKey: 'sk-ant-usage-123', maxTokens: 256 } },
      models: Object.fromEntries(Object.keys(VARIANTS).map((model) => [model, { backend: 'claude' }])),
    });
    admin = new AdminHttp(gw.url);
    const key = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
    openai = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  it.each(Object.keys(MISSING))(
    'chat (%s): no usage in the answer, the usage chunk asked for is the count; recorded estimated',
    async (model) => {
      const [whole, streamed, unasked] = [newRequestId(), newRequestId(), newRequestId()];
      const body = { model, messages: [{ role: 'user' as const, content: 'How is this answer charged?' }] };
      const answer = await openai.chat.completions.create(body, withRequestId(whole));
      expect(answer.choices[0]?.message.content).toBe(ANSWER_TEXT);
      expect(answer.usage).toBeUndefined();
      const stream = await openai.chat.completions.create(
        { ...body, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      );
      const usages: unknown[] = [];
      for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
      // The gateway asks for the usage chunk itself when the client does not.
      for await (const _chunk of await openai.chat.completions.create(
        { ...body, stream: true },
        withRequestId(unasked),
      ));
      const counted = countedRecord(
        estimatePromptTokens('chat.completions', body),
        countTextTokens(ANSWER_TEXT),
      );
      expect(counted.prompt_tokens).toBeGreaterThan(0);
      const { prompt_tokens, completion_tokens, total_tokens } = counted;
      expect(usages).toEqual([{ prompt_tokens, completion_tokens, total_tokens }]);
      const records = await recordsOf(admin, [whole, streamed, unasked]);
      expect(records[0]).toMatchObject({ ...counted, stream: false });
      expect(records[1]).toMatchObject({ ...counted, stream: true });
      expect(records[2]).toMatchObject({ ...counted, stream: true });
    },
  );

  it.each(Object.keys(MISSING))('legacy completions (%s): JSON and stream counted', async (model) => {
    const [whole, streamed] = [newRequestId(), newRequestId()];
    const body = { model, prompt: 'Count this prompt, please.' };
    const answer = await openai.completions.create(body, withRequestId(whole));
    expect(answer.usage).toBeUndefined();
    for await (const _chunk of await openai.completions.create(
      { ...body, stream: true },
      withRequestId(streamed),
    ));
    const counted = countedRecord(estimatePromptTokens('completions', body), countTextTokens(ANSWER_TEXT));
    const records = await recordsOf(admin, [whole, streamed]);
    expect(records[0]).toMatchObject({ ...counted, stream: false });
    expect(records[1]).toMatchObject({ ...counted, stream: true });
  });

  it.each(Object.keys(MISSING))('/v1/responses (%s): the Response carries the count', async (model) => {
    const [whole, streamed] = [newRequestId(), newRequestId()];
    const input = 'Where does the usage of this response come from?';
    const answer = await openai.responses.create({ model, input }, withRequestId(whole));
    let last: OpenAI.Responses.ResponseStreamEvent | undefined;
    for await (const event of await openai.responses.create(
      { model, input, stream: true },
      withRequestId(streamed),
    ))
      last = event;
    const prompt = estimatePromptTokens('responses', { model, input });
    const output = countTextTokens(ANSWER_TEXT);
    const usage = { input_tokens: prompt, output_tokens: output, total_tokens: prompt + output };
    expect(answer.usage).toMatchObject(usage);
    expect(last?.type).toBe('response.completed');
    expect(last && 'response' in last ? last.response.usage : undefined).toMatchObject(usage);
    const records = await recordsOf(admin, [whole, streamed]);
    expect(records[0]).toMatchObject({ ...countedRecord(prompt, output), stream: false });
    expect(records[1]).toMatchObject({ ...countedRecord(prompt, output), stream: true });
  });

  it.each(Object.keys(WHOLE))('chat (%s): both counts, taken as given', async (model) => {
    const [whole, streamed] = [newRequestId(), newRequestId()];
    const body = { model, messages: [{ role: 'user' as const, content: 'Whose figures are these?' }] };
    const answer = await openai.chat.completions.create(body, withRequestId(whole));
    expect(answer.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    const usages: unknown[] = [];
    for await (const chunk of await openai.chat.completions.create(
      { ...body, stream: true, stream_options: { include_usage: true } },
      withRequestId(streamed),
    ))
      if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toEqual([
      expect.objectContaining({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }),
    ]);
    const provider = providerRecord({ prompt: 3, completion: 4 });
    const records = await recordsOf(admin, [whole, streamed]);
    expect(records[0]).toMatchObject({ ...provider, stream: false });
    expect(records[1]).toMatchObject({ ...provider, stream: true });
  });

  it('the budget is charged the counted prompt and output, not 0', async () => {
    const budgeted = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: budgeted, maxRetries: 0 });
    const [whole, streamed] = [newRequestId(), newRequestId()];
    const body = { model: 'no-input', messages: [{ role: 'user' as const, content: 'Charge my prompt.' }] };
    await client.chat.completions.create(body, withRequestId(whole));
    for await (const _chunk of await client.chat.completions.create(
      { ...body, model: 'no-delta-usage', stream: true },
      withRequestId(streamed),
    ));
    const counted = countedRecord(
      estimatePromptTokens('chat.completions', body),
      countTextTokens(ANSWER_TEXT),
    );
    const records = await recordsOf(admin, [whole, streamed]);
    for (const record of records) expect(record).toMatchObject(counted);
    const standing = async () => {
      const response = await fetch(`${gw.baseURL}/tollgate/key`, {
        headers: { authorization: `Bearer ${budgeted}` },
      });
      return (
        (await response.json()) as {
          standing: { budgets: Array<{ spent_tokens: number; reserved_tokens: number }> };
        }
      ).standing.budgets[0];
    };
    expect(await pollUntil(standing, (budget) => budget?.reserved_tokens === 0)).toMatchObject({
      spent_tokens: 2 * (counted.total_tokens ?? 0),
    });
  });
});
