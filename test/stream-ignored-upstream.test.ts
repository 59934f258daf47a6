import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { chatCompletionFixture, FIXTURE_USAGE } from './support/openai-fixtures.js';
import { expectChatCompletionChunk, expectCompletionChunk } from './support/spec-validator.js';
import { newRequestId, providerRecord, recordOf, withRequestId } from './support/usage-records.js';

/**
 * Some OpenAI-compatible servers ignore `stream: true` and answer the whole `chat.completion` (or
 * `text_completion`) as JSON. Relayed as it came, the official SDK reads an empty stream: no
 * content, no error. The gateway sends such an answer as the stream the client asked for (as a
 * cache hit of it is replayed), and accounts for it with the answer's own usage.
 */

/** Long enough to be cut into several content chunks. */
const CONTENT = 'An answer from a server that never streams, long enough to come in several pieces';
const TEXT = 'A legacy completion from the same server, also long enough to come in pieces';
const ARGUMENTS = '{"city":"Paris","days":3}';
const LEGACY_USAGE = { prompt_tokens: 4, completion_tokens: 9, total_tokens: 13 };

let upstream: FakeUpstream;
let gw: TestGateway;
let admin: AdminHttp;
let client: OpenAI;

function toolCallAnswer(model: string) {
  return {
    id: 'chatcmpl-tools',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          refusal: null,
          tool_calls: [
            { id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: ARGUMENTS } },
          ],
        },
        logprobs: null,
        finish_reason: 'tool_calls',
      },
    ],
    usage: { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 },
  };
}

beforeAll(async () => {
  // Whatever `stream` says, this upstream answers JSON (or its errors).
  upstream = new FakeUpstream()
    .on('POST', '/v1/chat/completions', (request, res) => {
      const model = String(request.json?.model);
      if (model === 'refusing')
        return sendJson(res, 400, openaiError('bad messages', 'invalid_request_error'));
      if (model === 'odd') return sendJson(res, 200, { object: 'list', data: [] });
      if (model === 'tools') return sendJson(res, 200, toolCallAnswer(model));
      if (model === 'no-usage') {
        const { usage: _usage, ...answer } = chatCompletionFixture(model, CONTENT);
        return sendJson(res, 200, answer);
      }
      const answer = chatCompletionFixture(model, CONTENT);
      return sendJson(res, 200, answer);
    })
    .on('POST', '/v1/completions', (request, res) => {
      sendJson(res, 200, {
        id: 'cmpl-whole',
        object: 'text_completion',
        created: 1_700_000_000,
        model: String(request.json?.model),
        choices: [{ index: 0, text: TEXT, logprobs: null, finish_reason: 'length' }],
        usage: LEGACY_USAGE,
      });
    });
  const base = await upstream.start();
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'sk-upstream' } },
    models: {
      whole: { backend: 'up' },
      tools: { backend: 'up' },
      'no-usage': { backend: 'up' },
      refusing: { backend: 'up' },
      odd: { backend: 'up' },
      cached: { backend: 'up', cache: { enabled: true } },
    },
  });
  admin = new AdminHttp(gw.url);
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: await admin.teamKey(), maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say something.' }];

/** Every chunk the SDK yields, each checked against OpenAI's spec. */
async function chatChunks(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) {
    expectChatCompletionChunk(chunk);
    chunks.push(chunk);
  }
  return chunks;
}

const contentOf = (chunks: OpenAI.ChatCompletionChunk[]) =>
  chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
const finishOf = (chunks: { choices: Array<{ finish_reason: string | null }> }[]) =>
  chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.finish_reason)).filter(Boolean);

describe('chat completions streamed by the client, answered as JSON by the upstream', () => {
  it('reach the SDK as a stream, without a usage chunk when none was asked for', async () => {
    const id = newRequestId();
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'whole', messages, stream: true }, withRequestId(id))
      .withResponse();
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const chunks = await chatChunks(stream);
    expect(chunks.length).toBeGreaterThan(3);
    expect(contentOf(chunks)).toBe(`${CONTENT} #0`);
    expect(finishOf(chunks)).toEqual(['stop']);
    expect(chunks.every((chunk) => chunk.id === 'chatcmpl-fixture' && chunk.model === 'whole')).toBe(true);
    expect(chunks.some((chunk) => chunk.usage)).toBe(false);
    // The upstream's answer is what is charged, recorded as a streamed request.
    expect(await recordOf(admin, id)).toMatchObject({
      ...providerRecord({ prompt: FIXTURE_USAGE.prompt_tokens, completion: FIXTURE_USAGE.completion_tokens }),
      stream: true,
      status: 200,
    });
  });

  it('end with the usage chunk when stream_options.include_usage asks for it', async () => {
    const id = newRequestId();
    const stream = await client.chat.completions.create(
      { model: 'whole', messages, stream: true, stream_options: { include_usage: true } },
      withRequestId(id),
    );
    const chunks = await chatChunks(stream);
    expect(contentOf(chunks)).toBe(`${CONTENT} #0`);
    expect(finishOf(chunks)).toEqual(['stop']);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual(FIXTURE_USAGE);
    expect(chunks.filter((chunk) => chunk.usage)).toHaveLength(1);
    expect(await recordOf(admin, id)).toMatchObject({
      ...providerRecord({ prompt: FIXTURE_USAGE.prompt_tokens, completion: FIXTURE_USAGE.completion_tokens }),
      stream: true,
    });
  });

  it('carry a tool call whole, as the SDK stream helper assembles it', async () => {
    const id = newRequestId();
    const runner = client.chat.completions.stream(
      {
        model: 'tools',
        messages,
        stream_options: { include_usage: true },
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      },
      withRequestId(id),
    );
    const chunks = await chatChunks(runner);
    const final = await runner.finalChatCompletion();
    const choice = final.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.tool_calls).toEqual([
      { id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: ARGUMENTS } },
    ]);
    expect(finishOf(chunks)).toEqual(['tool_calls']);
    expect(final.usage).toMatchObject({ prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 });
    expect(await recordOf(admin, id)).toMatchObject({
      ...providerRecord({ prompt: 20, completion: 8 }),
      stream: true,
    });
  });

  it("get the gateway's count in the usage chunk when the answer carries no usage", async () => {
    const id = newRequestId();
    const stream = await client.chat.completions.create(
      { model: 'no-usage', messages, stream: true, stream_options: { include_usage: true } },
      withRequestId(id),
    );
    const chunks = await chatChunks(stream);
    expect(contentOf(chunks)).toBe(`${CONTENT} #0`);
    const usage = chunks.at(-1)?.usage;
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    const record = await recordOf(admin, id);
    expect(record).toMatchObject({
      prompt_tokens: usage?.prompt_tokens,
      completion_tokens: usage?.completion_tokens,
      estimated: true,
      stream: true,
    });
  });

  it('end with data: [DONE] on the wire', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'whole', messages, stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await response.text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = text.split('\n\n').filter((event) => event.startsWith('data: {'));
    for (const event of events) expectChatCompletionChunk(JSON.parse(event.slice(6)));
  });

  it('stay JSON when the client did not ask for a stream', async () => {
    const completion = await client.chat.completions.create({ model: 'whole', messages });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.message.content).toBe(`${CONTENT} #0`);
  });
});

describe('legacy completions streamed by the client, answered as JSON by the upstream', () => {
  for (const includeUsage of [false, true]) {
    it(`reach the SDK as a stream (include_usage: ${includeUsage})`, async () => {
      const id = newRequestId();
      const stream = await client.completions.create(
        {
          model: 'whole',
          prompt: 'Once upon a time',
          stream: true,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        },
        withRequestId(id),
      );
      const chunks: OpenAI.Completion[] = [];
      for await (const chunk of stream) {
        expectCompletionChunk(chunk);
        chunks.push(chunk);
      }
      expect(chunks.every((chunk) => chunk.object === 'text_completion')).toBe(true);
      expect(chunks.map((chunk) => chunk.choices[0]?.text ?? '').join('')).toBe(TEXT);
      expect(finishOf(chunks)).toEqual(['length']);
      const usages = chunks.filter((chunk) => chunk.usage).map((chunk) => chunk.usage);
      expect(usages).toEqual(includeUsage ? [LEGACY_USAGE] : []);
      expect(await recordOf(admin, id)).toMatchObject({
        ...providerRecord({ prompt: 4, completion: 9 }),
        stream: true,
      });
    });
  }
});

describe('what is not a whole answer', () => {
  it('an upstream error stays the error it was', async () => {
    const failed = await client.chat.completions.create({ model: 'refusing', messages, stream: true }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(OpenAI.BadRequestError);
    expect((failed as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('bad messages');
  });

  it('a 200 JSON of another object type is relayed as it came', async () => {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'odd', messages, stream: true }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ object: 'list', data: [] });
  });
});

describe('the response cache', () => {
  it('keeps the JSON answer: the next streamed request is a hit replaying the same stream', async () => {
    const ask = () =>
      client.chat.completions
        .create({ model: 'cached', messages, temperature: 0, stream: true })
        .withResponse();
    const before = upstream.requests.length;
    const miss = await ask();
    expect(miss.response.headers.get('x-tollgate-cache')).toBe('MISS');
    const missed = await chatChunks(miss.data);
    const hit = await ask();
    expect(hit.response.headers.get('x-tollgate-cache')).toBe('HIT');
    const replayed = await chatChunks(hit.data);
    expect(contentOf(missed)).toBe(`${CONTENT} #0`);
    expect(replayed).toEqual(missed);
    expect(upstream.requests.length - before).toBe(1);
  });
});
