import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countTextTokens } from '../src/usage/token-counter.js';
import { estimatePromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type AnthropicUsageFixture, FakeAnthropic, type MessageFixture } from './support/fake-anthropic.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import {
  countedRecord,
  newRequestId,
  providerRecord,
  recordsOf,
  withRequestId,
} from './support/usage-records.js';

/**
 * docs/usage-conformance.md, the backends whose answers the gateway (or the backend) builds:
 * user modules (with and without their own usage, chat, legacy completions, embeddings and the
 * Responses translation) and Anthropic reached with OpenAI's API (reasoning from thinking, cache
 * reads on legacy completions, the Responses translation). Each test asserts what the official
 * SDK receives and what the gateway recorded and charged. Tests run at once: each waits for its
 * usage record, which the gateway writes in batches.
 */

/** What the module reports when it reports usage: figures no count of the gateway's would give. */
const MODULE_USAGE = {
  prompt_tokens: 11,
  completion_tokens: 7,
  total_tokens: 18,
  prompt_tokens_details: { cached_tokens: 3 },
  completion_tokens_details: { reasoning_tokens: 2 },
};
const MODULE_PIECES = ['A module', ' answered', ' this.'];
const MODULE_TEXT = MODULE_PIECES.join('');

/**
 * A module backend serving chat, legacy completions and embeddings, JSON and streamed. With
 * `options.usage` it reports that usage (the usage chunk on streams when asked); without, none.
 */
const MODULE_SOURCE = `
const PIECES = ${JSON.stringify(MODULE_PIECES)};
const sse = (chunks) => [...chunks.map((chunk) => 'data: ' + JSON.stringify(chunk) + '\\n\\n'), 'data: [DONE]\\n\\n'];
const json = (body) => ({ status: 200, contentType: 'application/json', headers: {}, body: [JSON.stringify(body)] });
const stream = (chunks) => ({ status: 200, contentType: 'text/event-stream', headers: {}, body: sse(chunks) });

export default function createBackend(name, options) {
  const usage = options.usage;
  const usageChunk = (base, body) =>
    usage && body.stream_options?.include_usage === true ? [{ ...base, choices: [], usage }] : [];
  return {
    supports: (endpoint) => ['chat.completions', 'completions', 'embeddings'].includes(endpoint),
    async send({ endpoint, model, body, stream: streamed }) {
      if (endpoint === 'embeddings') {
        const inputs = Array.isArray(body.input) ? body.input : [body.input];
        return json({
          object: 'list',
          data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: [0.6, 0.8] })),
          model,
          ...(usage ? { usage: { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens } } : {}),
        });
      }
      const text = PIECES.join('');
      if (endpoint === 'completions') {
        const base = { id: 'cmpl-module', object: 'text_completion', created: 1, model };
        if (!streamed)
          return json({ ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: 'stop' }], ...(usage ? { usage } : {}) });
        return stream([
          ...PIECES.map((piece, i) => ({
            ...base,
            choices: [{ index: 0, text: piece, logprobs: null, finish_reason: i === PIECES.length - 1 ? 'stop' : null }],
          })),
          ...usageChunk(base, body),
        ]);
      }
      const base = { id: 'chatcmpl-module', created: 1, model };
      if (!streamed)
        return json({
          ...base,
          object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
          ...(usage ? { usage } : {}),
        });
      const chunk = { ...base, object: 'chat.completion.chunk' };
      return stream([
        { ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
        ...PIECES.map((piece) => ({ ...chunk, choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }] })),
        { ...chunk, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] },
        ...usageChunk(chunk, body),
      ]);
    },
  };
}
`;

/** USD per 1M tokens for the Claude model: reads at a tenth of input, writes at 1.25x. */
const CLAUDE_PRICE = { input: 1000, cachedInput: 100, cacheWriteInput: 1250, output: 2000 };
/** What the fake Anthropic answers a user text with (keyed by the text, so tests can run at once). */
const claudeReplies = new Map<string, MessageFixture>();

let anthropic: FakeAnthropic;
let gw: TestGateway;
let admin: AdminHttp;
let client: OpenAI;

beforeAll(async () => {
  const folder = mkdtempSync(join(tmpdir(), 'tollgate-usage-module-'));
  const module = join(folder, 'usage-module.mjs');
  writeFileSync(module, MODULE_SOURCE);
  anthropic = new FakeAnthropic();
  anthropic.script = (request) => {
    const messages = (request.json?.messages ?? []) as Array<{ content: Array<{ text?: string }> }>;
    const text = messages.at(-1)?.content.at(-1)?.text ?? '';
    const message = claudeReplies.get(text);
    return message
      ? { kind: 'message', message }
      : {
          kind: 'error',
          status: 400,
          type: 'invalid_request_error',
          message: `no reply scripted for ${text}`,
        };
  };
  const claudeUrl = await anthropic.start();
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    quota: { prices: { 'claude-sonnet-4-5': CLAUDE_PRICE } },
    backends: {
      reporting: { type: 'module', module, options: { usage: MODULE_USAGE } },
      silent: { type: 'module', module, options: {} },
      claude: { type: 'anthropic', baseUrl: claudeUrl, apiKey: 'sk-ant-usage', maxTokens: 1000 },
    },
    models: {
      'module-reporting': { backend: 'reporting' },
      'module-silent': { backend: 'silent' },
      claude: { backend: 'claude', model: 'claude-sonnet-4-5' },
    },
  });
  admin = new AdminHttp(gw.url);
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: await admin.teamKey(), maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await anthropic?.stop();
});

/** A streamed chat or completion, read whole: its text and the usage chunks that came. */
async function drain<T extends { usage?: unknown }>(stream: AsyncIterable<T>, text: (chunk: T) => string) {
  let all = '';
  const usages: unknown[] = [];
  for await (const chunk of stream) {
    all += text(chunk);
    if (chunk.usage) usages.push(chunk.usage);
  }
  return { text: all, usages };
}

const chatText = (chunk: OpenAI.ChatCompletionChunk) => chunk.choices[0]?.delta.content ?? '';
const completionText = (chunk: OpenAI.Completion) => chunk.choices[0]?.text ?? '';

/** A streamed response read whole: its text, its last event's type and that event's usage. */
async function streamResponse(body: OpenAI.Responses.ResponseCreateParamsStreaming, id: string) {
  const stream = await client.responses.create(body, withRequestId(id));
  let text = '';
  let last: OpenAI.Responses.ResponseStreamEvent | undefined;
  for await (const event of stream) {
    if (event.type === 'response.output_text.delta') text += event.delta;
    last = event;
  }
  const usage = last && 'response' in last ? last.response.usage : undefined;
  return { text, lastType: last?.type, usage };
}

describe.concurrent('module backends', () => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Who counts this?' }];
  const MODULE_RECORD = providerRecord({ prompt: 11, completion: 7, cached: 3, reasoning: 2 });

  it('module chat without usage: JSON and stream counted, estimated', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const body = { model: 'module-silent', messages };
    const answer = await client.chat.completions.create(body, withRequestId(json));
    expect(answer.choices[0]?.message.content).toBe(MODULE_TEXT);
    expect(answer.usage).toBeUndefined();
    const stream = await drain(
      await client.chat.completions.create(
        { ...body, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      ),
      chatText,
    );
    const counted = countedRecord(
      estimatePromptTokens('chat.completions', body),
      countTextTokens(MODULE_TEXT),
    );
    // The client asked for the usage chunk; none came from the module, so the gateway sends its count.
    const { prompt_tokens, completion_tokens, total_tokens } = counted;
    expect(stream).toEqual({
      text: MODULE_TEXT,
      usages: [{ prompt_tokens, completion_tokens, total_tokens }],
    });
    expect(counted.prompt_tokens).toBeGreaterThan(0);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...counted, stream: false });
    expect(records[1]).toMatchObject({ ...counted, stream: true });
  });

  it('module chat with usage: verbatim with details; recorded', async () => {
    const [json, streamed] = [newRequestId(), newRequestId()];
    const answer = await client.chat.completions.create(
      { model: 'module-reporting', messages },
      withRequestId(json),
    );
    expect(answer.usage).toEqual(MODULE_USAGE);
    const stream = await drain(
      await client.chat.completions.create(
        { model: 'module-reporting', messages, stream: true },
        withRequestId(streamed),
      ),
      chatText,
    );
    // The gateway asked the module for the usage chunk, used it, and kept it from this client.
    expect(stream).toEqual({ text: MODULE_TEXT, usages: [] });
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...MODULE_RECORD, stream: false });
    expect(records[1]).toMatchObject({ ...MODULE_RECORD, stream: true });
  });

  it('module completions: its usage, or counted and estimated without', async () => {
    const prompt = 'Complete this for a module';
    const ids = [newRequestId(), newRequestId(), newRequestId(), newRequestId()] as const;
    const reporting = await client.completions.create(
      { model: 'module-reporting', prompt },
      withRequestId(ids[0]),
    );
    expect(reporting.choices[0]?.text).toBe(MODULE_TEXT);
    expect(reporting.usage).toEqual(MODULE_USAGE);
    const reportingStream = await drain(
      await client.completions.create(
        { model: 'module-reporting', prompt, stream: true, stream_options: { include_usage: true } },
        withRequestId(ids[1]),
      ),
      completionText,
    );
    expect(reportingStream).toEqual({ text: MODULE_TEXT, usages: [MODULE_USAGE] });
    const silent = await client.completions.create({ model: 'module-silent', prompt }, withRequestId(ids[2]));
    expect(silent.usage).toBeUndefined();
    const silentStream = await drain(
      await client.completions.create(
        { model: 'module-silent', prompt, stream: true },
        withRequestId(ids[3]),
      ),
      completionText,
    );
    expect(silentStream).toEqual({ text: MODULE_TEXT, usages: [] });
    const counted = countedRecord(
      estimatePromptTokens('completions', { prompt }),
      countTextTokens(MODULE_TEXT),
    );
    const records = await recordsOf(admin, ids);
    expect(records[0]).toMatchObject({ ...MODULE_RECORD, stream: false });
    expect(records[1]).toMatchObject({ ...MODULE_RECORD, stream: true });
    expect(records[2]).toMatchObject({ ...counted, stream: false });
    expect(records[3]).toMatchObject({ ...counted, stream: true });
  });

  it('module embeddings: its usage, or the prompt counted and estimated without', async () => {
    const input = ['embed me', 'and me'];
    const [reportingId, silentId] = [newRequestId(), newRequestId()];
    const reporting = await client.embeddings.create(
      { model: 'module-reporting', input },
      withRequestId(reportingId),
    );
    expect(reporting.data).toHaveLength(2);
    expect(reporting.usage).toEqual({ prompt_tokens: 11, total_tokens: 11 });
    const silent = await client.embeddings.create({ model: 'module-silent', input }, withRequestId(silentId));
    expect(silent.usage).toBeUndefined();
    const records = await recordsOf(admin, [reportingId, silentId]);
    expect(records[0]).toMatchObject(providerRecord({ prompt: 11, completion: 0 }));
    expect(records[1]).toMatchObject(countedRecord(estimatePromptTokens('embeddings', { input }), 0));
  });

  it('module responses (translation): its usage renamed, or counted and estimated without', async () => {
    const input = 'Respond through a module';
    const ids = [newRequestId(), newRequestId(), newRequestId(), newRequestId()] as const;
    const translated = {
      input_tokens: 11,
      input_tokens_details: { cached_tokens: 3, cache_write_tokens: 0 },
      output_tokens: 7,
      output_tokens_details: { reasoning_tokens: 2 },
      total_tokens: 18,
    };
    const json = await client.responses.create({ model: 'module-reporting', input }, withRequestId(ids[0]));
    expect(json.usage).toEqual(translated);
    const stream = await streamResponse({ model: 'module-reporting', input, stream: true }, ids[1]);
    expect(stream).toEqual({ text: MODULE_TEXT, lastType: 'response.completed', usage: translated });
    const silentJson = await client.responses.create(
      { model: 'module-silent', input },
      withRequestId(ids[2]),
    );
    expect(silentJson.output_text).toBe(MODULE_TEXT);
    // Without the module's usage, the Response carries the gateway's count: the one it records.
    const prompt = estimatePromptTokens('responses', { input });
    const output = countTextTokens(MODULE_TEXT);
    expect(silentJson.usage).toMatchObject({
      input_tokens: prompt,
      output_tokens: output,
      total_tokens: prompt + output,
    });
    const silentStream = await streamResponse({ model: 'module-silent', input, stream: true }, ids[3]);
    expect(silentStream).toMatchObject({ text: MODULE_TEXT, lastType: 'response.completed' });
    expect(silentStream.usage).toEqual(silentJson.usage);
    const counted = countedRecord(prompt, output);
    const records = await recordsOf(admin, ids);
    expect(records[0]).toMatchObject({ ...MODULE_RECORD, stream: false });
    expect(records[1]).toMatchObject({ ...MODULE_RECORD, stream: true });
    expect(records[2]).toMatchObject({ ...counted, stream: false });
    expect(records[3]).toMatchObject({ ...counted, stream: true });
  });
});

describe.concurrent('anthropic, reached with OpenAI’s API', () => {
  /** Scripts the fake's answer to `prompt`: thinking (when given) then text, with this usage. */
  function scriptClaude(
    prompt: string,
    usage: AnthropicUsageFixture & { output_tokens_details?: { thinking_tokens: number } },
    thinking?: string,
  ): void {
    claudeReplies.set(prompt, {
      content: [
        ...(thinking ? [{ type: 'thinking' as const, thinking, signature: 'sig-usage' }] : []),
        { type: 'text', text: `Answer to ${prompt}` },
      ],
      stop_reason: 'end_turn',
      usage,
    });
  }

  it('anthropic chat JSON and stream: reasoning_tokens from thinking_tokens, cached_tokens from cache reads; recorded', async () => {
    const prompt = 'think about usage';
    // Anthropic counts cache reads and writes apart from input_tokens; OpenAI's prompt holds all.
    scriptClaude(
      prompt,
      {
        input_tokens: 20,
        output_tokens: 9,
        cache_read_input_tokens: 5,
        cache_creation_input_tokens: 0,
        output_tokens_details: { thinking_tokens: 4 },
      },
      'Let me count the tokens.',
    );
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: prompt }];
    const [json, streamed] = [newRequestId(), newRequestId()];
    const expected = {
      prompt_tokens: 25,
      completion_tokens: 9,
      total_tokens: 34,
      prompt_tokens_details: { cached_tokens: 5 },
      completion_tokens_details: { reasoning_tokens: 4 },
    };
    const answer = await client.chat.completions.create({ model: 'claude', messages }, withRequestId(json));
    expect(answer.usage).toMatchObject(expected);
    const stream = await drain(
      await client.chat.completions.create(
        { model: 'claude', messages, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      ),
      chatText,
    );
    expect(stream.text).toBe(`Answer to ${prompt}`);
    expect(stream.usages).toEqual([expect.objectContaining(expected)]);
    const records = await recordsOf(admin, [json, streamed]);
    const reported = providerRecord({ prompt: 25, completion: 9, cached: 5, reasoning: 4 });
    expect(records[0]).toMatchObject({ ...reported, stream: false });
    expect(records[1]).toMatchObject({ ...reported, stream: true });
  });

  it('anthropic completions JSON and stream: cache reads as cached_tokens; recorded and priced', async () => {
    const prompt = 'complete with a cache';
    scriptClaude(prompt, { input_tokens: 4, output_tokens: 5, cache_read_input_tokens: 2 });
    const [json, streamed] = [newRequestId(), newRequestId()];
    const expected = {
      prompt_tokens: 6,
      completion_tokens: 5,
      total_tokens: 11,
      prompt_tokens_details: { cached_tokens: 2 },
    };
    const answer = await client.completions.create({ model: 'claude', prompt }, withRequestId(json));
    expect(answer.usage).toMatchObject(expected);
    const stream = await drain(
      await client.completions.create(
        { model: 'claude', prompt, stream: true, stream_options: { include_usage: true } },
        withRequestId(streamed),
      ),
      completionText,
    );
    expect(stream.text).toBe(`Answer to ${prompt}`);
    expect(stream.usages).toEqual([expect.objectContaining(expected)]);
    const records = await recordsOf(admin, [json, streamed]);
    const reported = providerRecord({ prompt: 6, completion: 5, cached: 2 });
    expect(records[0]).toMatchObject({ ...reported, stream: false });
    expect(records[1]).toMatchObject({ ...reported, stream: true });
    // 4 x 1000 + 2 x 100 + 5 x 2000 micro-dollars: the cache reads at their own rate.
    for (const record of records) expect(record.cost_usd).toBeCloseTo(0.0142, 10);
  });

  it('anthropic responses (translation) JSON and stream: cache reads and thinking mapped; recorded', async () => {
    const prompt = 'respond about usage';
    scriptClaude(
      prompt,
      {
        input_tokens: 20,
        output_tokens: 9,
        cache_read_input_tokens: 5,
        cache_creation_input_tokens: 0,
        output_tokens_details: { thinking_tokens: 4 },
      },
      'Thinking first.',
    );
    const [json, streamed] = [newRequestId(), newRequestId()];
    const expected = {
      input_tokens: 25,
      input_tokens_details: { cached_tokens: 5, cache_write_tokens: 0 },
      output_tokens: 9,
      output_tokens_details: { reasoning_tokens: 4 },
      total_tokens: 34,
    };
    const response = await client.responses.create({ model: 'claude', input: prompt }, withRequestId(json));
    expect(response.output_text).toBe(`Answer to ${prompt}`);
    expect(response.usage).toEqual(expected);
    const stream = await streamResponse({ model: 'claude', input: prompt, stream: true }, streamed);
    expect(stream).toEqual({ text: `Answer to ${prompt}`, lastType: 'response.completed', usage: expected });
    const records = await recordsOf(admin, [json, streamed]);
    const reported = providerRecord({ prompt: 25, completion: 9, cached: 5, reasoning: 4 });
    expect(records[0]).toMatchObject({ ...reported, stream: false });
    expect(records[1]).toMatchObject({ ...reported, stream: true });
  });

  it('anthropic cache writes: priced as writes on chat and through the Responses translation', async () => {
    const chatPrompt = 'write the cache by chat';
    const responsesPrompt = 'write the cache by responses';
    const usage = {
      input_tokens: 10,
      output_tokens: 2,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 100,
    };
    scriptClaude(chatPrompt, usage);
    scriptClaude(responsesPrompt, usage);
    const [chat, responses] = [newRequestId(), newRequestId()];
    const answer = await client.chat.completions.create(
      { model: 'claude', messages: [{ role: 'user', content: chatPrompt }] },
      withRequestId(chat),
    );
    expect(answer.usage).toMatchObject({ prompt_tokens: 110, cache_creation_input_tokens: 100 });
    const response = await client.responses.create(
      { model: 'claude', input: responsesPrompt },
      withRequestId(responses),
    );
    // The renamed usage says how many of the input tokens wrote the cache.
    expect(response.usage).toMatchObject({
      input_tokens: 110,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 100 },
    });
    const [chatRecord, responsesRecord] = await recordsOf(admin, [chat, responses]);
    expect(chatRecord).toMatchObject(providerRecord({ prompt: 110, completion: 2 }));
    expect(responsesRecord).toMatchObject(providerRecord({ prompt: 110, completion: 2 }));
    // Both: 10 x 1000 + 100 x 1250 + 2 x 2000 (micro-dollars).
    expect(chatRecord?.cost_usd).toBeCloseTo(0.139, 10);
    expect(responsesRecord?.cost_usd).toBeCloseTo(0.139, 10);
  });
});
