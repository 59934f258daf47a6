import type { ServerResponse } from 'node:http';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messagesUsageOf } from '../src/backends/messages-translation/messages-usage.js';
import {
  response as mockResponse,
  responseEvents as mockResponseEvents,
} from '../src/backends/mock/mock-responses.js';
import { StreamUsage, usageFromJson, usageOfAnswer } from '../src/pipeline/usage.js';
import { countTextTokens } from '../src/usage/token-counter.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, type RecordedRequest, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import {
  countedRecord,
  newRequestId,
  providerRecord,
  recordOf,
  recordsOf,
  withRequestId,
} from './support/usage-records.js';

/**
 * Usage that does not say what the prompt took (`prompt_tokens` / `input_tokens` missing or null),
 * or, for an answer the model generated, what the output took, is no usage: the gateway counts
 * the answer itself and records it estimated, as it does usage that is not counts. Charged as
 * given, the prompt (or the output) was free. An explicit 0 is a count and is taken as given.
 */

type Json = Record<string, unknown>;

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('usage without a count the answer must have', () => {
  it('chat and legacy completions: no prompt count, or no completion count, reads as none', () => {
    for (const endpoint of ['chat.completions', 'completions'] as const) {
      for (const usage of [
        { completion_tokens: 5, total_tokens: 5 },
        { prompt_tokens: null, completion_tokens: 5, total_tokens: 5 },
        { prompt_tokens: 11, total_tokens: 11 },
        { prompt_tokens: 11, completion_tokens: null, total_tokens: 11 },
        { total_tokens: 16 },
      ]) {
        expect(usageOfAnswer(endpoint, json({ choices: [], usage }))).toBeUndefined();
        expect(new StreamUsage(endpoint).read({ choices: [], usage })).toBeUndefined();
      }
      // A 0 is a count: an answer that said nothing.
      const silent = { prompt_tokens: 11, completion_tokens: 0, total_tokens: 11 };
      expect(usageOfAnswer(endpoint, json({ choices: [], usage: silent }))).toEqual(silent);
      expect(new StreamUsage(endpoint).read({ choices: [], usage: silent })).toEqual(silent);
    }
  });

  it('the Responses API: no input_tokens, or no output_tokens, reads as none; JSON and response.completed', () => {
    for (const usage of [
      { output_tokens: 5, total_tokens: 5 },
      { input_tokens: null, output_tokens: 5, total_tokens: 5 },
      { input_tokens: 11, total_tokens: 11 },
    ]) {
      expect(usageOfAnswer('responses', json({ object: 'response', usage }))).toBeUndefined();
      expect(
        new StreamUsage('responses').read({ type: 'response.completed', response: { usage } }),
      ).toBeUndefined();
    }
    const whole = { input_tokens: 11, output_tokens: 7, total_tokens: 18 };
    expect(usageOfAnswer('responses', json({ object: 'response', usage: whole }))).toEqual(whole);
  });

  it('embeddings: a prompt count is needed, and no completion count (they have none)', () => {
    for (const usage of [{ total_tokens: 5 }, { prompt_tokens: null, total_tokens: 5 }]) {
      expect(usageOfAnswer('embeddings', json({ data: [], usage }))).toBeUndefined();
      // As the per-item embeddings cache reads an answer: no endpoint, the prompt count required.
      expect(usageFromJson(json({ data: [], usage }))).toBeUndefined();
    }
    const usage = { prompt_tokens: 11, total_tokens: 11 };
    expect(usageOfAnswer('embeddings', json({ data: [], usage }))).toEqual(usage);
    expect(usageFromJson(json({ data: [], usage }))).toEqual(usage);
  });

  it("Anthropic's Messages: a JSON answer needs input_tokens and output_tokens", () => {
    for (const usage of [{ output_tokens: 4 }, { input_tokens: null, output_tokens: 4 }, { input_tokens: 3 }])
      expect(usageOfAnswer('messages', json({ type: 'message', usage }))).toBeUndefined();
    expect(
      usageOfAnswer('messages', json({ type: 'message', usage: { input_tokens: 3, output_tokens: 4 } })),
    ).toMatchObject({ prompt_tokens: 3, completion_tokens: 4 });
  });

  it("Anthropic's Messages stream: the prompt from message_start, the output from a message_delta carrying only it", () => {
    const start = (usage: Json) => ({ type: 'message_start', message: { usage } });
    const delta = (usage: Json) => ({ type: 'message_delta', usage });
    // As Anthropic sends it: the parts are merged, the delta's lone output_tokens is enough.
    const whole = new StreamUsage('messages');
    expect(whole.read(start({ input_tokens: 3, output_tokens: 1 }))).toMatchObject({ prompt_tokens: 3 });
    expect(whole.read(delta({ output_tokens: 4 }))).toMatchObject({ prompt_tokens: 3, completion_tokens: 4 });
    expect(whole.final).toBe(true);
    // The input counts only at the end (newer API versions repeat them there): taken then.
    const late = new StreamUsage('messages');
    expect(late.read(start({ output_tokens: 1 }))).toBeUndefined();
    expect(late.read(delta({ input_tokens: 3, output_tokens: 4 }))).toMatchObject({
      prompt_tokens: 3,
      completion_tokens: 4,
    });
    // No part ever says the prompt: none.
    const promptless = new StreamUsage('messages');
    expect(promptless.read(start({ output_tokens: 1 }))).toBeUndefined();
    expect(promptless.read(delta({ output_tokens: 4 }))).toBeUndefined();
    // The last part without the output: none, and nothing after it is taken either.
    const outputless = new StreamUsage('messages');
    expect(outputless.read(start({ input_tokens: 3, output_tokens: 1 }))).toBeDefined();
    expect(outputless.read(delta({ input_tokens: 3 }))).toBeUndefined();
    expect(outputless.withOutput(9)).toBeUndefined();
  });

  it('the Messages translation of a chat answer: both counts, as counts, or the gateway counts', () => {
    for (const usage of [
      { completion_tokens: 5, total_tokens: 5 },
      { prompt_tokens: null, completion_tokens: 5, total_tokens: 5 },
      { prompt_tokens: 11, total_tokens: 11 },
      { prompt_tokens: -50, completion_tokens: 7, total_tokens: -43 },
      { prompt_tokens: 1e15, completion_tokens: 7, total_tokens: 1e15 },
    ])
      expect(messagesUsageOf(usage)).toBeUndefined();
    expect(
      messagesUsageOf({
        prompt_tokens: 11,
        completion_tokens: 0,
        total_tokens: 11,
        prompt_tokens_details: { cached_tokens: 3 },
      }),
    ).toEqual({
      input_tokens: 8,
      output_tokens: 0,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 3,
    });
  });
});

/** What the upstream reports, by the upstream model asked: chat / completions, Responses, embeddings. */
const VARIANTS: Record<string, { chat: Json; responses: Json; embeddings: Json }> = {
  'no-prompt': {
    chat: { completion_tokens: 5, total_tokens: 5 },
    responses: { output_tokens: 5, total_tokens: 5 },
    embeddings: { total_tokens: 5 },
  },
  'null-prompt': {
    chat: { prompt_tokens: null, completion_tokens: 5, total_tokens: 5 },
    responses: { input_tokens: null, output_tokens: 5, total_tokens: 5 },
    embeddings: { prompt_tokens: null, total_tokens: 5 },
  },
  'no-completion': {
    chat: { prompt_tokens: 11, total_tokens: 11 },
    responses: { input_tokens: 11, total_tokens: 11 },
    // Embeddings have no completion count: this one is whole.
    embeddings: { prompt_tokens: 11, total_tokens: 11 },
  },
};
const MODELS = Object.keys(VARIANTS);
const ANSWER_PIECES = ['Counted', ' by', ' the', ' gateway.'];
const ANSWER_TEXT = ANSWER_PIECES.join('');

function variantOf(request: RecordedRequest): (typeof VARIANTS)[string] {
  const variant = VARIANTS[String(request.json?.model)];
  if (!variant) throw new Error(`no variant for ${String(request.json?.model)}`);
  return variant;
}

function chat(request: RecordedRequest, res: ServerResponse): void | Promise<void> {
  const body = request.json ?? {};
  const usage = variantOf(request).chat;
  const base = { id: 'chatcmpl-1', created: 1_700_000_000, model: String(body.model) };
  if (body.stream !== true) {
    return sendJson(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: ANSWER_TEXT, refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage,
    });
  }
  const chunk = { ...base, object: 'chat.completion.chunk' };
  return sendSse(res, [
    ...ANSWER_PIECES.map((content, i) => ({
      ...chunk,
      choices: [
        { index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null },
      ],
    })),
    { ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    { ...chunk, choices: [], usage },
  ]);
}

function completions(request: RecordedRequest, res: ServerResponse): void | Promise<void> {
  const body = request.json ?? {};
  const usage = variantOf(request).chat;
  const base = { id: 'cmpl-1', object: 'text_completion', created: 1_700_000_000, model: String(body.model) };
  if (body.stream !== true) {
    return sendJson(res, 200, {
      ...base,
      choices: [{ index: 0, text: ANSWER_TEXT, logprobs: null, finish_reason: 'stop' }],
      usage,
    });
  }
  return sendSse(res, [
    ...ANSWER_PIECES.map((text) => ({
      ...base,
      choices: [{ index: 0, text, logprobs: null, finish_reason: null }],
    })),
    { ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'stop' }] },
    { ...base, choices: [], usage },
  ]);
}

/** The mock's spec-valid Response (it echoes the input) with the variant's usage. */
function responses(request: RecordedRequest, res: ServerResponse): void {
  const body = request.json ?? {};
  const usage = variantOf(request).responses;
  const options = { model: String(body.model), chunks: 3 };
  if (body.stream !== true) {
    sendJson(res, 200, { ...mockResponse(body, options), usage });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const event of mockResponseEvents(body, options)) {
    const data = event.data as Json & { response?: Json };
    const patched =
      event.type === 'response.completed' && data.response
        ? { ...data, response: { ...data.response, usage } }
        : data;
    res.write(`event: ${event.type}\ndata: ${JSON.stringify(patched)}\n\n`);
  }
  res.end();
}

function embeddings(request: RecordedRequest, res: ServerResponse): void {
  sendJson(res, 200, {
    object: 'list',
    data: [{ object: 'embedding', index: 0, embedding: [0.25, -0.5, 0.75] }],
    model: String(request.json?.model),
    usage: variantOf(request).embeddings,
  });
}

describe('through the gateway: counted, estimated and charged', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  let admin: AdminHttp;
  let key: string;
  let openai: OpenAI;
  let anthropic: Anthropic;

  beforeAll(async () => {
    upstream = new FakeUpstream()
      .on('POST', '/v1/chat/completions', chat)
      .on('POST', '/v1/completions', completions)
      .on('POST', '/v1/responses', responses)
      .on('POST', '/v1/embeddings', embeddings);
    const base = await upstream.start();
    gw = await startGateway({
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
      backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream-123456' } },
      models: Object.fromEntries(MODELS.map((model) => [model, { backend: 'up' }])),
    });
    admin = new AdminHttp(gw.url);
    key = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
    openai = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 });
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  it.each(MODELS)(
    'chat (%s): JSON and stream counted; the usage chunk asked for is the count',
    async (model) => {
      const [whole, streamed] = [newRequestId(), newRequestId()];
      const body = { model, messages: [{ role: 'user' as const, content: 'How is this answer charged?' }] };
      await openai.chat.completions.create(body, withRequestId(whole));
      const stream = await openai.chat.completions.create(
        { ...body, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      );
      const usages: unknown[] = [];
      for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
      const counted = countedRecord(
        estimatePromptTokens('chat.completions', body),
        countTextTokens(ANSWER_TEXT),
      );
      expect(counted.prompt_tokens).toBeGreaterThan(0);
      const { prompt_tokens, completion_tokens, total_tokens } = counted;
      // The upstream's usage chunk is not relayed: the gateway's count is, once.
      expect(usages).toEqual([{ prompt_tokens, completion_tokens, total_tokens }]);
      const records = await recordsOf(admin, [whole, streamed]);
      expect(records[0]).toMatchObject({ ...counted, stream: false });
      expect(records[1]).toMatchObject({ ...counted, stream: true });
    },
  );

  it.each(MODELS)('legacy completions (%s): JSON and stream counted', async (model) => {
    const [whole, streamed] = [newRequestId(), newRequestId()];
    const body = { model, prompt: 'Count this prompt, please.' };
    await openai.completions.create(body, withRequestId(whole));
    const stream = await openai.completions.create({ ...body, stream: true }, withRequestId(streamed));
    for await (const _chunk of stream);
    const counted = countedRecord(estimatePromptTokens('completions', body), countTextTokens(ANSWER_TEXT));
    const records = await recordsOf(admin, [whole, streamed]);
    expect(records[0]).toMatchObject({ ...counted, stream: false });
    expect(records[1]).toMatchObject({ ...counted, stream: true });
  });

  it.each(MODELS)('the Responses API (%s): JSON and stream counted', async (model) => {
    const [whole, streamed] = [newRequestId(), newRequestId()];
    const input = 'Where does the usage of this response come from?';
    await openai.responses.create({ model, input }, withRequestId(whole));
    const stream = await openai.responses.create({ model, input, stream: true }, withRequestId(streamed));
    for await (const _event of stream);
    const counted = countedRecord(
      estimatePromptTokens('responses', { model, input }),
      countTextTokens(input),
    );
    const records = await recordsOf(admin, [whole, streamed]);
    expect(records[0]).toMatchObject({ ...counted, stream: false });
    expect(records[1]).toMatchObject({ ...counted, stream: true });
  });

  it('embeddings: no prompt count → the input counted; a prompt count without a completion count is whole', async () => {
    const input = 'Embed this sentence for me.';
    const ids = MODELS.map(() => newRequestId());
    for (const [i, model] of MODELS.entries())
      await openai.embeddings.create({ model, input }, withRequestId(ids[i] as string));
    const records = await recordsOf(admin, ids);
    const counted = countedRecord(estimatePromptTokens('embeddings', { input }), 0);
    expect(records[0]).toMatchObject(counted);
    expect(records[1]).toMatchObject(counted);
    expect(records[2]).toMatchObject(providerRecord({ prompt: 11, completion: 0 }));
  });

  it.each(MODELS)(
    '/v1/messages translated to chat (%s): the client gets the count, recorded estimated',
    async (model) => {
      const [whole, streamed] = [newRequestId(), newRequestId()];
      const body = { model, max_tokens: 64, messages: [{ role: 'user' as const, content: 'Count me.' }] };
      const message = await anthropic.messages.create(body, withRequestId(whole));
      const events = await anthropic.messages.create({ ...body, stream: true }, withRequestId(streamed));
      let delta: Anthropic.MessageDeltaUsage | undefined;
      for await (const event of events) if (event.type === 'message_delta') delta = event.usage;
      const [json, stream] = await recordsOf(admin, [whole, streamed]);
      for (const [record, usage] of [
        [json, message.usage],
        [stream, delta],
      ] as const) {
        expect(record).toMatchObject({ estimated: true, completion_tokens: countTextTokens(ANSWER_TEXT) });
        expect(record?.prompt_tokens).toBeGreaterThan(0);
        expect(usage).toMatchObject({
          input_tokens: record?.prompt_tokens,
          output_tokens: record?.completion_tokens,
        });
      }
    },
  );

  it('the budget is charged the counted prompt, not 0', async () => {
    const budgeted = await admin.teamKey({}, { budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: budgeted, maxRetries: 0 });
    const id = newRequestId();
    const body = { model: 'no-prompt', messages: [{ role: 'user' as const, content: 'Charge my prompt.' }] };
    await client.chat.completions.create(body, withRequestId(id));
    const record = await recordOf(admin, id);
    const prompt = estimatePromptTokens('chat.completions', body);
    expect(record).toMatchObject(countedRecord(prompt, countTextTokens(ANSWER_TEXT)));
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
      spent_tokens: record.total_tokens,
    });
  });
});
