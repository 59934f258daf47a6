import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFloat32Base64, encodeFloat32Base64 } from '../src/openai/float32-base64.js';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import {
  expectCompletion,
  expectCompletionChunk,
  expectEmbeddingResponse,
} from './support/spec-validator.js';

const VECTOR = [0.25, -0.5, 0.125, 1];
let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;
/** When true the fake upstream ignores encoding_format and always sends floats, like some servers do. */
let floatsOnly = false;

beforeAll(async () => {
  upstream = new FakeUpstream();
  upstream.on('POST', '/v1/completions', async (request, res) => {
    const body = request.json ?? {};
    const prompts = Array.isArray(body.prompt) ? (body.prompt as string[]) : [String(body.prompt)];
    const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
    const base = {
      id: 'cmpl-fixture',
      object: 'text_completion',
      created: 1_700_000_000,
      model: String(body.model),
    };
    if (body.stream) {
      return sendSse(res, [
        ...prompts.map((prompt, index) => ({
          ...base,
          choices: [{ index, text: `<${prompt}>`, logprobs: null, finish_reason: 'stop' }],
        })),
        { ...base, choices: [], usage },
      ]);
    }
    sendJson(res, 200, {
      ...base,
      choices: prompts.map((prompt, index) => ({
        index,
        text: `<${prompt}>`,
        logprobs: null,
        finish_reason: 'stop',
      })),
      usage,
    });
  });
  upstream.on('POST', '/v1/embeddings', async (request, res) => {
    const body = request.json ?? {};
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    const base64 = body.encoding_format === 'base64' && !floatsOnly;
    sendJson(res, 200, {
      object: 'list',
      data: inputs.map((_, index) => ({
        object: 'embedding',
        index,
        embedding: base64 ? encodeFloat32Base64(VECTOR) : VECTOR,
      })),
      model: String(body.model),
      usage: { prompt_tokens: 2, total_tokens: 2 },
    });
  });
  const base = await upstream.start();
  gw = await startGateway(upstreamConfig(base));
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'client-key', maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
});

describe('legacy completions', () => {
  it('takes a string prompt', async () => {
    const completion = await client.completions.create({ model: 'gpt-test', prompt: 'once' });
    expectCompletion(completion);
    expect(completion.choices[0]?.text).toBe('<once>');
    expect(upstream.requests.at(-1)?.json?.model).toBe('upstream-gpt');
  });

  it('takes an array prompt', async () => {
    const completion = await client.completions.create({ model: 'gpt-test', prompt: ['a', 'b'] });
    expectCompletion(completion);
    expect(completion.choices.map((c) => c.text)).toEqual(['<a>', '<b>']);
  });

  it('streams, strips the usage chunk it asked for', async () => {
    const stream = await client.completions.create({ model: 'gpt-test', prompt: ['x', 'y'], stream: true });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks) expectCompletionChunk(chunk);
    expect(chunks.map((c) => c.choices[0]?.text)).toEqual(['<x>', '<y>']);
    expect(upstream.requests.at(-1)?.json?.stream_options).toEqual({ include_usage: true });
  });

  it('mock: string and array prompts, streamed and not', async () => {
    const single = await client.completions.create({ model: 'mock', prompt: 'hello' });
    expectCompletion(single);
    expect(single.choices[0]?.text).toBe('hello');
    const many = await client.completions.create({ model: 'mock', prompt: ['a1', 'b2'], n: 2 });
    expectCompletion(many);
    expect(many.choices.map((c) => [c.index, c.text])).toEqual([
      [0, 'a1'],
      [1, 'a1'],
      [2, 'b2'],
      [3, 'b2'],
    ]);
    const stream = await client.completions.create({ model: 'mock', prompt: 'streamed text', stream: true });
    let text = '';
    for await (const chunk of stream) {
      expectCompletionChunk(chunk);
      text += chunk.choices[0]?.text ?? '';
    }
    expect(text).toBe('streamed text');
  });
});

describe('embeddings', () => {
  it('SDK default (base64 on the wire) decodes to the upstream floats', async () => {
    floatsOnly = false;
    const result = await client.embeddings.create({ model: 'gpt-test', input: 'text' });
    expect(upstream.requests.at(-1)?.json?.encoding_format).toBe('base64');
    expect(result.data[0]?.embedding).toEqual(VECTOR);
  });

  it('float format is honoured exactly', async () => {
    const result = await client.embeddings.create({
      model: 'gpt-test',
      input: ['a', 'b'],
      encoding_format: 'float',
    });
    expectEmbeddingResponse(result);
    expect(result.data.map((d) => d.embedding)).toEqual([VECTOR, VECTOR]);
  });

  it('an upstream that ignores base64 and sends floats is re-encoded, so the SDK still decodes', async () => {
    floatsOnly = true;
    try {
      const raw = await fetch(`${gw.baseURL}/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-test', input: 'x', encoding_format: 'base64' }),
      });
      const body = (await raw.json()) as { data: Array<{ embedding: string }> };
      expectEmbeddingResponse(body);
      expect(typeof body.data[0]?.embedding).toBe('string');
      expect(decodeFloat32Base64(body.data[0]?.embedding ?? '')).toEqual(VECTOR);
      const viaSdk = await client.embeddings.create({ model: 'gpt-test', input: 'x' });
      expect(viaSdk.data[0]?.embedding).toEqual(VECTOR);
    } finally {
      floatsOnly = false;
    }
  });

  it('mock: deterministic unit vectors, base64 and float agree, dimensions honoured', async () => {
    const floats = await client.embeddings.create({
      model: 'mock',
      input: ['same', 'other'],
      encoding_format: 'float',
    });
    expectEmbeddingResponse(floats);
    const again = await client.embeddings.create({ model: 'mock', input: 'same' });
    expect(again.data[0]?.embedding).toEqual(floats.data[0]?.embedding);
    expect(floats.data[0]?.embedding).not.toEqual(floats.data[1]?.embedding);
    const norm = Math.hypot(...(floats.data[0]?.embedding ?? []));
    expect(norm).toBeCloseTo(1, 5);
    const sized = await client.embeddings.create({
      model: 'mock',
      input: 'same',
      dimensions: 64,
      encoding_format: 'float',
    });
    expect(sized.data[0]?.embedding).toHaveLength(64);
  });
});
