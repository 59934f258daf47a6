import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';
import { newRequestId, providerRecord, recordsOf, withRequestId } from './support/usage-records.js';

/**
 * docs/usage-conformance.md, the in-process llama-cpp backend: its usage is the model's own
 * tokenizer count (test/llama-cpp-endpoints.test.ts checks the counts against the tokenizer);
 * here, that the detail fields are present as 0 (chat, and the Responses translation's names)
 * and that the gateway records exactly what the client was told, as provider usage. The model is
 * loaded once; tests run at once, each waiting for its usage record, which is written in batches.
 */

let gw: TinyModelGateway;
let admin: AdminHttp;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTinyModelGateway({
    backend: { model: writeTinyGguf(), contextSize: 1024 },
    extra: { auth: {}, admin: { key: TEST_ADMIN_KEY } },
  });
  await gw.backend.loaded;
  admin = new AdminHttp(gw.url);
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: await admin.teamKey(), maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
});

const ZERO_CHAT_DETAILS = {
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
};

/** The record a provider usage of these counts makes, no cached or reasoning tokens. */
function recordOfUsage(usage: { prompt_tokens: number; completion_tokens: number } | undefined | null) {
  expect(usage?.prompt_tokens).toBeGreaterThan(0);
  return providerRecord({ prompt: usage?.prompt_tokens ?? -1, completion: usage?.completion_tokens ?? -1 });
}

describe.concurrent('usage of the in-process model', () => {
  it('llama-cpp chat JSON and stream: details present as 0; recorded as told', async () => {
    const request = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'hello world' }],
      max_tokens: 5,
      temperature: 0,
    };
    const [json, streamed] = [newRequestId(), newRequestId()];
    const answer = await client.chat.completions.create(request, withRequestId(json));
    expect(answer.usage).toMatchObject({ completion_tokens: 5, ...ZERO_CHAT_DETAILS });
    const stream = await client.chat.completions.create(
      { ...request, stream: true, stream_options: { include_usage: true } },
      withRequestId(streamed),
    );
    const usages: OpenAI.CompletionUsage[] = [];
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toEqual([answer.usage]);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...recordOfUsage(answer.usage), stream: false });
    expect(records[1]).toMatchObject({ ...recordOfUsage(answer.usage), stream: true });
  });

  it('llama-cpp completions JSON and stream: recorded as told', async () => {
    const request = { model: 'tiny', prompt: 'the lazy dog', max_tokens: 4, temperature: 0 };
    const [json, streamed] = [newRequestId(), newRequestId()];
    const answer = await client.completions.create(request, withRequestId(json));
    expect(answer.usage?.completion_tokens).toBe(4);
    const stream = await client.completions.create(
      { ...request, stream: true, stream_options: { include_usage: true } },
      withRequestId(streamed),
    );
    const usages: OpenAI.CompletionUsage[] = [];
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toEqual([answer.usage]);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...recordOfUsage(answer.usage), stream: false });
    expect(records[1]).toMatchObject({ ...recordOfUsage(answer.usage), stream: true });
  });

  it('llama-cpp responses (translation) JSON and stream: details present as 0; recorded', async () => {
    const chat = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'hello world' }],
      max_tokens: 6,
      temperature: 0,
    });
    const expected = {
      input_tokens: chat.usage?.prompt_tokens,
      input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      output_tokens: 6,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: chat.usage?.total_tokens,
    };
    const request = { model: 'tiny', input: 'hello world', max_output_tokens: 6, temperature: 0 };
    const [json, streamed] = [newRequestId(), newRequestId()];
    const response = await client.responses.create(request, withRequestId(json));
    expect(response.usage).toEqual(expected);
    const stream = await client.responses.create({ ...request, stream: true }, withRequestId(streamed));
    let last: OpenAI.Responses.ResponseStreamEvent | undefined;
    for await (const event of stream) last = event;
    // Cut at max_output_tokens: the stream ends with response.incomplete, which carries the usage.
    expect(last?.type).toBe('response.incomplete');
    expect(last && 'response' in last ? last.response.usage : undefined).toEqual(expected);
    const records = await recordsOf(admin, [json, streamed]);
    expect(records[0]).toMatchObject({ ...recordOfUsage(chat.usage), stream: false });
    expect(records[1]).toMatchObject({ ...recordOfUsage(chat.usage), stream: true });
  });

  it('llama-cpp embeddings: recorded as told', async () => {
    const id = newRequestId();
    const answer = await client.embeddings.create(
      { model: 'tiny', input: ['hello world', 'the quick brown fox'] },
      withRequestId(id),
    );
    expect(answer.usage.total_tokens).toBe(answer.usage.prompt_tokens);
    const [record] = await recordsOf(admin, [id]);
    expect(record).toMatchObject({
      ...recordOfUsage({ ...answer.usage, completion_tokens: 0 }),
      stream: false,
    });
  });
});
