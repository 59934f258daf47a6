import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import {
  chatChunkFixtures,
  chatCompletionFixture,
  FIXTURE_USAGE,
  toolCallChunkFixtures,
} from './support/openai-fixtures.js';
import { expectChatCompletion, expectChatCompletionChunk } from './support/spec-validator.js';

let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  upstream = new FakeUpstream();
  upstream.on('POST', '/v1/chat/completions', async (request, res) => {
    const body = request.json ?? {};
    const messages = body.messages as Array<{ content: string }>;
    const last = messages.at(-1)?.content ?? '';
    if (body.tools) return sendSse(res, toolCallChunkFixtures(String(body.model)));
    if (body.stream) {
      const includeUsage =
        (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      return sendSse(res, chatChunkFixtures(String(body.model), ['Hel', 'lo ', last], includeUsage));
    }
    sendJson(res, 200, chatCompletionFixture(String(body.model), last, Number(body.n ?? 1)));
  });
  const base = await upstream.start();
  gw = await startGateway(upstreamConfig(base));
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'client-key', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

function lastUpstreamBody(): Record<string, unknown> {
  const body = upstream.requests.at(-1)?.json;
  if (!body) throw new Error('the upstream saw no JSON request');
  return body;
}

describe('chat completions through an OpenAI-compatible upstream', () => {
  it('answers a non-streamed chat with the upstream body, unknown fields intact', async () => {
    const completion = await client.chat.completions.create({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'ping' }],
    });
    expectChatCompletion(completion);
    expect(completion.choices[0]?.message.content).toBe('ping #0');
    expect((completion as unknown as { x_upstream_extra: unknown }).x_upstream_extra).toEqual({ kept: true });
    expect(completion.usage).toEqual(FIXTURE_USAGE);
  });

  it('rewrites model to the upstream name and forwards unknown fields untouched, without defaults', async () => {
    await client.chat.completions.create({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'hi' }],
      // @ts-expect-error: a field the SDK does not know must still reach the upstream
      vendor_option: { nested: [1, 2, { deep: 'x' }] },
      top_k: 40,
    });
    const forwarded = lastUpstreamBody();
    expect(forwarded).toEqual({
      model: 'upstream-gpt',
      messages: [{ role: 'user', content: 'hi' }],
      vendor_option: { nested: [1, 2, { deep: 'x' }] },
      top_k: 40,
    });
  });

  it('sends the configured upstream key, never the client key', async () => {
    await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'k' }] });
    const headers = upstream.requests.at(-1)?.headers ?? {};
    expect(headers.authorization).toBe('Bearer sk-upstream-secret-123');
    expect(JSON.stringify(headers)).not.toContain('client-key');
  });

  it('returns n choices', async () => {
    const completion = await client.chat.completions.create({
      model: 'gpt-test',
      n: 3,
      messages: [{ role: 'user', content: 'many' }],
    });
    expectChatCompletion(completion);
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(lastUpstreamBody().n).toBe(3);
  });

  it('streams chunks; the usage chunk the gateway asked for is stripped when the client did not ask', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'world' }],
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks) expectChatCompletionChunk(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello world');
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true);
    // The upstream was asked for usage even though the client was not.
    expect(lastUpstreamBody().stream_options).toEqual({ include_usage: true });
    // Unknown chunk fields pass through.
    expect((chunks[0] as unknown as { obfuscation?: string }).obfuscation).toBe('abc');
    // The gateway still saw the usage: it is in the request log.
    const line = gw.logs.filter((l) => l.msg === 'request' && l.stream === true).at(-1);
    expect(line?.prompt_tokens).toBe(FIXTURE_USAGE.prompt_tokens);
  });

  it('keeps the usage chunk when the client asked for it, and keeps its other stream_options', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-test',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'usage' }],
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks) expectChatCompletionChunk(chunk);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual(FIXTURE_USAGE);
    expect(lastUpstreamBody().stream_options).toEqual({ include_usage: true });
  });

  it('relays every other byte of the stream as the upstream sent it', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
      body: JSON.stringify({ model: 'gpt-test', stream: true, messages: [{ role: 'user', content: 'raw' }] }),
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('content-encoding')).toBeNull();
    const text = await response.text();
    const expected = chatChunkFixtures('upstream-gpt', ['Hel', 'lo ', 'raw'], true)
      .filter((chunk) => chunk.choices.length > 0)
      .map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`)
      .join('');
    expect(text).toBe(`${expected}data: [DONE]\n\n`);
  });

  it('streams tool-call deltas the SDK can assemble', async () => {
    const stream = client.chat.completions.stream({
      model: 'gpt-test',
      messages: [{ role: 'user', content: 'weather in Paris?' }],
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
          },
        },
      ],
    });
    for await (const chunk of stream) expectChatCompletionChunk(chunk);
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]?.message.tool_calls?.[0];
    expect(call?.type).toBe('function');
    expect(call?.type === 'function' ? call.function : undefined).toEqual({
      name: 'get_weather',
      arguments: '{"city":"Paris"}',
    });
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
  });
});

describe('chat completions on the built-in mock model', () => {
  it('echoes the last user message, spec-valid', async () => {
    const completion = await client.chat.completions.create({
      model: 'mock',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'echo me' },
      ],
    });
    expectChatCompletion(completion);
    expect(completion.choices[0]?.message.content).toBe('echo me');
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
  });

  it('streams n>1 choices interleaved, with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'mock',
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'two answers please' }],
    });
    const texts = ['', ''];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expectChatCompletionChunk(chunk);
      for (const choice of chunk.choices) texts[choice.index] += choice.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(texts).toEqual(['two answers please', 'two answers please']);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('calls the forced tool, streamed and not', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'first', parameters: { type: 'object' } } },
      { type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } },
    ];
    const completion = await client.chat.completions.create({
      model: 'mock',
      messages: [{ role: 'user', content: 'find x' }],
      tools,
      tool_choice: { type: 'function', function: { name: 'lookup' } },
    });
    expectChatCompletion(completion);
    const call = completion.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === 'function' ? call.function.name : undefined).toBe('lookup');
    const stream = client.chat.completions.stream({
      model: 'mock',
      messages: [{ role: 'user', content: 'find x' }],
      tools,
    });
    for await (const chunk of stream) expectChatCompletionChunk(chunk);
    const final = await stream.finalChatCompletion();
    const streamed = final.choices[0]?.message.tool_calls?.[0];
    expect(streamed?.type === 'function' ? JSON.parse(streamed.function.arguments) : undefined).toEqual({
      input: 'find x',
    });
  });
});
