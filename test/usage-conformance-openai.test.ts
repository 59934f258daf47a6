import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countTextTokens } from '../src/usage/token-counter.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import type { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import {
  countedRecord,
  newRequestId,
  providerRecord,
  recordOf,
  recordsOf,
  withRequestId,
} from './support/usage-records.js';
import {
  ANSWER_TEXT,
  REPORTED_EMBEDDING_USAGE,
  REPORTED_RESPONSE_USAGE,
  REPORTED_USAGE,
  REPORTING_MODEL,
  SILENT_MODEL,
  startUsageReportingUpstream,
} from './support/usage-reporting-upstream.js';

/**
 * docs/usage-conformance.md, the backends that speak OpenAI's wire format over HTTP (openai,
 * azure, the four local-server presets) and the mock: for chat, legacy completions, the
 * Responses API and embeddings, JSON and streamed, what the official SDK receives and what the
 * gateway recorded and charged. The upstream reports prompt 11, completion 7, cached 3,
 * reasoning 2 (or nothing at all, for the `silent` model), so the gateway's own count can
 * never pass for the upstream's. Tests within a describe run at once: each waits for its usage
 * record, which the gateway writes in batches, so run one by one they would mostly wait.
 */

/** USD per 1M tokens for the reporting model: cached tokens at a tenth, so their rate shows in the cost. */
const PRICE = { input: 1000, cachedInput: 100, output: 2000 };
/** (11 - 3) x 1000 + 3 x 100 + 7 x 2000 micro-dollars; 25,000 if cached tokens were priced as input. */
const REPORTED_COST = 0.0223;
const EMBEDDING_COST = 0.011;
const REPORTED = providerRecord({ prompt: 11, completion: 7, cached: 3, reasoning: 2 });

const HTTP_BACKENDS = ['openai', 'azure', 'ollama', 'vllm', 'llamacpp-server', 'lmstudio'] as const;
/** The ones that send the usage chunk on streams (LM Studio does not: its preset says streamUsage: false). */
const STREAM_USAGE_BACKENDS = ['openai', 'azure', 'ollama', 'vllm', 'llamacpp-server'] as const;

let upstream: FakeUpstream;
let gw: TestGateway;
let admin: AdminHttp;
let client: OpenAI;

beforeAll(async () => {
  const started = await startUsageReportingUpstream();
  upstream = started.upstream;
  const v1 = `${started.base}/v1`;
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    quota: { prices: { [REPORTING_MODEL]: PRICE } },
    backends: {
      openai: { type: 'openai', baseUrl: v1, apiKey: 'sk-upstream-usage' },
      azure: { type: 'azure', baseUrl: started.base, apiKey: 'azure-upstream-usage' },
      mock: { type: 'mock', chunks: 3 },
      ollama: { type: 'ollama', baseUrl: v1 },
      vllm: { type: 'vllm', baseUrl: v1 },
      'llamacpp-server': { type: 'llamacpp-server', baseUrl: v1 },
      lmstudio: { type: 'lmstudio', baseUrl: v1 },
    },
    models: {
      ...Object.fromEntries(HTTP_BACKENDS.map((name) => [name, { backend: name, model: REPORTING_MODEL }])),
      'openai-silent': { backend: 'openai', model: SILENT_MODEL },
      mock: { backend: 'mock' },
    },
  });
  admin = new AdminHttp(gw.url);
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: await admin.teamKey(), maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

/**
 * What the upstream received for one client request (the gateway sends its request id as
 * `x-client-request-id`), so tests that run at once each see only their own.
 */
function upstreamCalls(id: string): Array<{ path: string; body: Record<string, unknown> | undefined }> {
  return upstream.requests
    .filter((r) => r.headers['x-client-request-id'] === id)
    .map((r) => ({ path: r.url.split('?')[0] ?? '', body: r.json }));
}

/** A streamed chat or completion, read whole: its text and the usage chunk if one came. */
async function drain<T extends { usage?: unknown }>(stream: AsyncIterable<T>, text: (chunk: T) => string) {
  let all = '';
  const usages: unknown[] = [];
  for await (const chunk of stream) {
    all += text(chunk);
    if (chunk.usage) usages.push(chunk.usage);
  }
  return { text: all, usages };
}

/** The mock's documented count: one token per four characters, at least one. */
const mockTokens = (text: string) => Math.max(1, Math.ceil(text.length / 4));

describe.concurrent('chat completions', () => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'How is usage found?' }];

  it.each(HTTP_BACKENDS)(
    '%s chat JSON: upstream usage verbatim with details; recorded and charged',
    async (model) => {
      const id = newRequestId();
      const completion = await client.chat.completions.create({ model, messages }, withRequestId(id));
      expect(completion.choices[0]?.message.content).toBe(ANSWER_TEXT);
      expect(completion.usage).toEqual(REPORTED_USAGE);
      // Answered by this backend type's own request (Azure's path names the deployment).
      expect(upstreamCalls(id).map((call) => call.path)).toEqual([
        model === 'azure'
          ? `/openai/deployments/${REPORTING_MODEL}/chat/completions`
          : '/v1/chat/completions',
      ]);
      const record = await recordOf(admin, id);
      expect(record).toMatchObject({ ...REPORTED, stream: false, unpriced: false });
      expect(record.cost_usd).toBeCloseTo(REPORTED_COST, 10);
    },
  );

  it.each(STREAM_USAGE_BACKENDS)(
    '%s chat stream: usage chunk asked for, passed on only if the client asked; recorded either way',
    async (model) => {
      const [asked, unasked] = [newRequestId(), newRequestId()];
      const withUsage = await drain(
        await client.chat.completions.create(
          { model, messages, stream: true, stream_options: { include_usage: true } },
          withRequestId(asked),
        ),
        (chunk) => chunk.choices[0]?.delta.content ?? '',
      );
      expect(withUsage).toEqual({ text: ANSWER_TEXT, usages: [REPORTED_USAGE] });
      const withoutUsage = await drain(
        await client.chat.completions.create({ model, messages, stream: true }, withRequestId(unasked)),
        (chunk) => chunk.choices[0]?.delta.content ?? '',
      );
      expect(withoutUsage).toEqual({ text: ANSWER_TEXT, usages: [] });
      for (const id of [asked, unasked])
        expect(upstreamCalls(id)[0]?.body?.stream_options).toEqual({ include_usage: true });
      const records = await recordsOf(admin, [asked, unasked]);
      for (const record of records) {
        expect(record).toMatchObject({ ...REPORTED, stream: true });
        expect(record.cost_usd).toBeCloseTo(REPORTED_COST, 10);
      }
    },
  );

  it('lmstudio chat stream: no stream_options sent; counted, estimated, and the usage chunk the client asked for is the count', async () => {
    const id = newRequestId();
    const body = {
      model: 'lmstudio',
      messages,
      stream: true as const,
      stream_options: { include_usage: true },
    };
    const streamed = await drain(
      await client.chat.completions.create(body, withRequestId(id)),
      (chunk) => chunk.choices[0]?.delta.content ?? '',
    );
    expect(upstreamCalls(id)[0]?.body).not.toHaveProperty('stream_options');
    // The client asked for the usage chunk and the server sends none: the gateway sends its count.
    const prompt = estimatePromptTokens('chat.completions', body);
    const completion = countTextTokens(ANSWER_TEXT);
    expect(streamed).toEqual({
      text: ANSWER_TEXT,
      usages: [{ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }],
    });
    expect(await recordOf(admin, id)).toMatchObject({ ...countedRecord(prompt, completion), stream: true });
  });

  it('mock chat JSON and stream: its own count, details present as 0', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const prompt = mockTokens(JSON.stringify(messages));
    const completion = mockTokens('How is usage found?');
    const expected = {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    };
    const answer = await client.chat.completions.create({ model: 'mock', messages }, withRequestId(json));
    expect(answer.usage).toEqual(expected);
    const stream = await drain(
      await client.chat.completions.create(
        { model: 'mock', messages, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      ),
      (chunk) => chunk.choices[0]?.delta.content ?? '',
    );
    expect(stream.usages).toEqual([expected]);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...providerRecord({ prompt, completion }), stream: false });
    expect(records[1]).toMatchObject({ ...providerRecord({ prompt, completion }), stream: true });
  });
});

describe.concurrent('legacy completions', () => {
  const prompt = 'Usage of a legacy prompt';

  it.each(HTTP_BACKENDS)(
    '%s completions JSON: upstream usage verbatim; recorded and charged',
    async (model) => {
      const id = newRequestId();
      const completion = await client.completions.create({ model, prompt }, withRequestId(id));
      expect(completion.choices[0]?.text).toBe(ANSWER_TEXT);
      expect(completion.usage).toEqual(REPORTED_USAGE);
      const record = await recordOf(admin, id);
      expect(record).toMatchObject({ ...REPORTED, stream: false });
      expect(record.cost_usd).toBeCloseTo(REPORTED_COST, 10);
    },
  );

  it.each(STREAM_USAGE_BACKENDS)(
    '%s completions stream: usage chunk asked for, passed on only if the client asked; recorded either way',
    async (model) => {
      const [asked, unasked] = [newRequestId(), newRequestId()];
      const withUsage = await drain(
        await client.completions.create(
          { model, prompt, stream: true, stream_options: { include_usage: true } },
          withRequestId(asked),
        ),
        (chunk) => chunk.choices[0]?.text ?? '',
      );
      expect(withUsage).toEqual({ text: ANSWER_TEXT, usages: [REPORTED_USAGE] });
      const withoutUsage = await drain(
        await client.completions.create({ model, prompt, stream: true }, withRequestId(unasked)),
        (chunk) => chunk.choices[0]?.text ?? '',
      );
      expect(withoutUsage).toEqual({ text: ANSWER_TEXT, usages: [] });
      for (const id of [asked, unasked])
        expect(upstreamCalls(id)[0]?.body?.stream_options).toEqual({ include_usage: true });
      const records = await recordsOf(admin, [asked, unasked]);
      for (const record of records) {
        expect(record).toMatchObject({ ...REPORTED, stream: true });
        expect(record.cost_usd).toBeCloseTo(REPORTED_COST, 10);
      }
    },
  );

  it('lmstudio completions stream: no stream_options sent; counted, estimated, and the usage chunk the client asked for is the count', async () => {
    const id = newRequestId();
    const body = {
      model: 'lmstudio',
      prompt,
      stream: true as const,
      stream_options: { include_usage: true },
    };
    const streamed = await drain(
      await client.completions.create(body, withRequestId(id)),
      (chunk) => chunk.choices[0]?.text ?? '',
    );
    expect(upstreamCalls(id)[0]?.body).not.toHaveProperty('stream_options');
    const promptTokens = estimatePromptTokens('completions', body);
    const completion = countTextTokens(ANSWER_TEXT);
    expect(streamed).toEqual({
      text: ANSWER_TEXT,
      usages: [
        {
          prompt_tokens: promptTokens,
          completion_tokens: completion,
          total_tokens: promptTokens + completion,
        },
      ],
    });
    expect(await recordOf(admin, id)).toMatchObject({
      ...countedRecord(promptTokens, completion),
      stream: true,
    });
  });

  it('mock completions JSON and stream: its own count, no detail fields', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const tokens = mockTokens(prompt);
    const expected = { prompt_tokens: tokens, completion_tokens: tokens, total_tokens: 2 * tokens };
    const answer = await client.completions.create({ model: 'mock', prompt }, withRequestId(json));
    expect(answer.usage).toEqual(expected);
    const stream = await drain(
      await client.completions.create(
        { model: 'mock', prompt, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      ),
      (chunk) => chunk.choices[0]?.text ?? '',
    );
    expect(stream).toEqual({ text: prompt, usages: [expected] });
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({
      ...providerRecord({ prompt: tokens, completion: tokens }),
      stream: false,
    });
    expect(records[1]).toMatchObject({
      ...providerRecord({ prompt: tokens, completion: tokens }),
      stream: true,
    });
  });

  it('completions from an upstream without usage: JSON and stream counted, estimated', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const body = { model: 'openai-silent', prompt };
    const answer = await client.completions.create(body, withRequestId(json));
    expect(answer.usage).toBeUndefined();
    const stream = await drain(
      await client.completions.create(
        { ...body, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      ),
      (chunk) => chunk.choices[0]?.text ?? '',
    );
    const counted = countedRecord(estimatePromptTokens('completions', body), countTextTokens(ANSWER_TEXT));
    // The client asked for the usage chunk; the gateway sends its own count in its place.
    const { prompt_tokens, completion_tokens, total_tokens } = counted;
    expect(stream).toEqual({
      text: ANSWER_TEXT,
      usages: [{ prompt_tokens, completion_tokens, total_tokens }],
    });
    expect(counted.prompt_tokens).toBeGreaterThan(0);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...counted, stream: false });
    expect(records[1]).toMatchObject({ ...counted, stream: true });
  });
});

describe.concurrent('the Responses API', () => {
  const input = 'Where does the usage of a response come from?';

  /** A streamed response read whole: its event types and the usage of its last event. */
  async function streamResponse(model: string, id: string) {
    const stream = await client.responses.create({ model, input, stream: true }, withRequestId(id));
    const types: string[] = [];
    let usage: unknown;
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') usage = event.response.usage;
    }
    return { types, usage, text };
  }

  it.each(['openai', 'azure', 'vllm', 'lmstudio'] as const)(
    '%s responses (native) JSON and stream: upstream usage verbatim, on response.completed; recorded',
    async (model) => {
      const [json, streamed] = [newRequestId(), newRequestId()];
      const response = await client.responses.create({ model, input }, withRequestId(json));
      expect(response.output_text).toBe(input);
      expect(response.usage).toEqual(REPORTED_RESPONSE_USAGE);
      const stream = await streamResponse(model, streamed);
      expect(stream.types.at(-1)).toBe('response.completed');
      expect(stream.usage).toEqual(REPORTED_RESPONSE_USAGE);
      // Native: the upstream's own /responses answered both, no chat translation.
      for (const id of [json, streamed])
        expect(upstreamCalls(id).map((call) => call.path)).toEqual([expect.stringMatching(/\/responses$/)]);
      const records = await recordsOf(admin, [json, streamed]);
      expect(records[0]).toMatchObject({ ...REPORTED, stream: false });
      expect(records[1]).toMatchObject({ ...REPORTED, stream: true });
      expect(records[1]?.cost_usd).toBeCloseTo(REPORTED_COST, 10);
    },
  );

  it.each(['ollama', 'llamacpp-server'] as const)(
    '%s responses (chat translation) JSON and stream: chat usage renamed, details mapped; recorded',
    async (model) => {
      const [json, streamed] = [newRequestId(), newRequestId()];
      const translated = {
        input_tokens: 11,
        input_tokens_details: { cached_tokens: 3, cache_write_tokens: 0 },
        output_tokens: 7,
        output_tokens_details: { reasoning_tokens: 2 },
        total_tokens: 18,
      };
      const response = await client.responses.create({ model, input }, withRequestId(json));
      expect(response.output_text).toBe(ANSWER_TEXT);
      expect(response.usage).toEqual(translated);
      const stream = await streamResponse(model, streamed);
      expect(stream.text).toBe(ANSWER_TEXT);
      expect(stream.usage).toEqual(translated);
      const chats = [json, streamed].flatMap((id) =>
        upstreamCalls(id).map((call) => ({ path: call.path, streamOptions: call.body?.stream_options })),
      );
      expect(chats).toEqual([
        { path: '/v1/chat/completions', streamOptions: undefined },
        { path: '/v1/chat/completions', streamOptions: { include_usage: true } },
      ]);
      const records = await recordsOf(admin, [json, streamed]);
      expect(records[0]).toMatchObject({ ...REPORTED, stream: false });
      expect(records[1]).toMatchObject({ ...REPORTED, stream: true });
      expect(records[1]?.cost_usd).toBeCloseTo(REPORTED_COST, 10);
    },
  );

  it('mock responses (native) JSON and stream: its own count, details present as 0', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const inputTokens = mockTokens(JSON.stringify(input));
    const outputTokens = mockTokens(input);
    const expected = {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens + outputTokens,
    };
    const response = await client.responses.create({ model: 'mock', input }, withRequestId(json));
    expect(response.usage).toEqual(expected);
    const stream = await streamResponse('mock', streamed);
    expect(stream.types.at(-1)).toBe('response.completed');
    expect(stream.usage).toEqual(expected);
    const records = await recordsOf(admin, [json, streamed]);
    const mine = providerRecord({ prompt: inputTokens, completion: outputTokens });
    expect(records[0]).toMatchObject({ ...mine, stream: false });
    expect(records[1]).toMatchObject({ ...mine, stream: true });
  });

  it('responses from an upstream without usage: JSON and stream counted, estimated', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const response = await client.responses.create({ model: 'openai-silent', input }, withRequestId(json));
    expect(response.usage ?? undefined).toBeUndefined();
    const stream = await streamResponse('openai-silent', streamed);
    expect(stream.types.at(-1)).toBe('response.completed');
    expect(stream.usage ?? undefined).toBeUndefined();
    // The upstream echoes the input: that is the output the gateway counts.
    const counted = countedRecord(
      estimatePromptTokens('responses', { model: 'openai-silent', input }),
      countTextTokens(input),
    );
    expect(counted.prompt_tokens).toBeGreaterThan(0);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...counted, stream: false });
    expect(records[1]).toMatchObject({ ...counted, stream: true });
  });
});

describe.concurrent('embeddings', () => {
  const input = ['usage of one input', 'and of another'];

  it.each(HTTP_BACKENDS)('%s embeddings: upstream usage verbatim; recorded and charged', async (model) => {
    const id = newRequestId();
    const answer = await client.embeddings.create({ model, input }, withRequestId(id));
    expect(answer.data).toHaveLength(2);
    expect(answer.usage).toEqual(REPORTED_EMBEDDING_USAGE);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({ ...providerRecord({ prompt: 11, completion: 0 }), stream: false });
    expect(record.cost_usd).toBeCloseTo(EMBEDDING_COST, 10);
  });

  it('mock embeddings: its own count of the inputs', async () => {
    const id = newRequestId();
    const tokens = input.reduce((sum, text) => sum + mockTokens(text), 0);
    const answer = await client.embeddings.create({ model: 'mock', input }, withRequestId(id));
    expect(answer.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    expect(await recordOf(admin, id)).toMatchObject(providerRecord({ prompt: tokens, completion: 0 }));
  });

  it('embeddings from an upstream without usage: the prompt counted, estimated', async () => {
    const id = newRequestId();
    const answer = await client.embeddings.create({ model: 'openai-silent', input }, withRequestId(id));
    expect(answer.data).toHaveLength(2);
    expect(answer.usage).toBeUndefined();
    const counted = countedRecord(estimatePromptTokens('embeddings', { input }), 0);
    expect(counted.prompt_tokens).toBeGreaterThan(0);
    expect(await recordOf(admin, id)).toMatchObject(counted);
  });
});
