import { LlamaContextSequence } from 'node-llama-cpp';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest';
import { expectErrorResponse } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

/** The tiny model's end-of-text token (`</s>`). */
const EOS = 2;

let gw: TinyModelGateway;
/** A model that favours `</s>` above all: it ends every answer at once unless told otherwise. */
let eos: TinyModelGateway;
let evaluate: MockInstance<LlamaContextSequence['evaluate']>;

beforeAll(async () => {
  evaluate = vi.spyOn(LlamaContextSequence.prototype, 'evaluate');
  gw = await startTinyModelGateway({ backend: { model: writeTinyGguf(), contextSize: 512 } });
  eos = await startTinyModelGateway({
    backend: { model: writeTinyGguf('eos', undefined, { favouredToken: '</s>' }), contextSize: 512 },
  });
  await Promise.all([gw.backend.loaded, eos.backend.loaded]);
});

afterAll(async () => {
  evaluate?.mockRestore();
  await gw?.close();
  await eos?.close();
});

function clientOf(gateway: TinyModelGateway): OpenAI {
  return new OpenAI({ baseURL: gateway.baseURL, apiKey: 'unused', maxRetries: 0 });
}

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${gw.baseURL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('a request without a seed', () => {
  it('samples with a seed of its own, as random as the crypto generator, never the same second-based one', async () => {
    const from = evaluate.mock.calls.length;
    const ask = (seed?: number) =>
      clientOf(gw).chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 4,
        temperature: 1,
        ...(seed === undefined ? {} : { seed }),
      });
    // Two at once: within the same second, where node-llama-cpp's own default seed is the same.
    await Promise.all([ask(), ask()]);
    await ask(42);
    const seeds = evaluate.mock.calls.slice(from).map(([, options]) => options?.seed);
    expect(seeds).toHaveLength(3);
    const [first, second, given] = seeds;
    expect(typeof first).toBe('number');
    expect(typeof second).toBe('number');
    // Two independent draws of 2^32 values are equal once in four billion.
    expect(first).not.toBe(second);
    expect(given).toBe(42);
  });
});

describe('an answer the model ends itself', () => {
  it("finishes with 'stop', its end-of-generation token counted, in JSON and streamed", async () => {
    const request = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'hello' }],
      max_tokens: 6,
      temperature: 0,
    };
    const whole = await clientOf(eos).chat.completions.create(request);
    expect(whole.choices[0]?.finish_reason).toBe('stop');
    expect(whole.choices[0]?.message.content).toBe('');
    expect(whole.usage?.completion_tokens).toBe(1);
    const stream = await clientOf(eos).chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const finishes: Array<string | null | undefined> = [];
    let completionTokens: number | undefined;
    for await (const chunk of stream) {
      if (chunk.choices[0]) finishes.push(chunk.choices[0].finish_reason);
      completionTokens = chunk.usage?.completion_tokens ?? completionTokens;
    }
    expect(finishes.at(-1)).toBe('stop');
    expect(completionTokens).toBe(1);
  });
});

describe('logit_bias on an end-of-generation token', () => {
  it('-100 bans it: the answer goes on to max_tokens', async () => {
    const request = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'hello' }],
      max_tokens: 6,
      temperature: 0,
    };
    const banned = await clientOf(eos).chat.completions.create({
      ...request,
      logit_bias: { [String(EOS)]: -100 },
    });
    expect(banned.choices[0]?.finish_reason).toBe('length');
    expect(banned.usage?.completion_tokens).toBe(6);
  });

  it('+100 favours it: the answer ends at once', async () => {
    const request = { model: 'tiny', prompt: 'hello world', max_tokens: 6, temperature: 0 };
    const plain = await clientOf(gw).completions.create(request);
    expect(plain.choices[0]?.finish_reason).toBe('length');
    const favoured = await clientOf(gw).completions.create({
      ...request,
      logit_bias: { [String(EOS)]: 100 },
    });
    expect(favoured.choices[0]?.finish_reason).toBe('stop');
    expect(favoured.choices[0]?.text).toBe('');
    expect(favoured.usage?.completion_tokens).toBe(1);
  });
});

describe('token ids that are no token ids', () => {
  it('are named in the 400, whether not whole numbers from 0 or beyond the vocabulary', async () => {
    const vocabulary = gw.backend.model('tiny').vocabularySize;
    const cases: Array<[path: string, body: Record<string, unknown>, param: string, message: string]> = [
      [
        '/completions',
        { prompt: [300, -5] },
        'prompt',
        "'prompt': -5 is not a token id; token ids are whole numbers from 0.",
      ],
      [
        '/completions',
        { prompt: [300, 999_999] },
        'prompt',
        `'prompt': token id 999999 is not in this model's vocabulary (ids 0 to ${vocabulary - 1}).`,
      ],
      [
        '/embeddings',
        { input: [300, -5] },
        'input',
        "'input': -5 is not a token id; token ids are whole numbers from 0.",
      ],
      [
        '/embeddings',
        { input: [[300], [301, -1]] },
        'input',
        "'input': -1 is not a token id; token ids are whole numbers from 0.",
      ],
      [
        '/completions',
        { prompt: [[300], [301]] },
        'prompt',
        "'prompt': in-process models take one prompt per request (send several requests instead).",
      ],
    ];
    for (const [path, body, param, message] of cases) {
      const answer = await post(path, {
        model: 'tiny',
        ...(path === '/completions' ? { max_tokens: 1 } : {}),
        ...body,
      });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expectErrorResponse(answer.body);
      expect(answer.body.error).toMatchObject({ type: 'invalid_request_error', param, message });
    }
  });
});
