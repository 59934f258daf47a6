import type { LlamaModel } from 'node-llama-cpp';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFloat32Base64 } from '../src/openai/float32-base64.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectCompletionChunk,
  expectEmbeddingResponse,
  expectErrorResponse,
} from './support/spec-validator.js';
import { TINY_EMBEDDING_LENGTH, writeTinyGguf } from './support/tiny-gguf.js';
import {
  startTinyModelGateway,
  startTinyModelWithReference,
  type TinyModelGateway,
} from './support/tiny-gguf-gateway.js';

let gw: TinyModelGateway;
let client: OpenAI;
/** The same GGUF loaded apart from the gateway: its tokenizer is the reference for usage. */
let reference: LlamaModel;

beforeAll(async () => {
  ({ gw, client, reference } = await startTinyModelWithReference(1024));
});

afterAll(async () => {
  await reference?.dispose();
  await gw?.close();
});

/** What the tiny model's ChatML template makes of one user message, counted by its tokenizer. */
function chatPromptTokens(userText: string): number {
  const bos = reference.tokens.bos;
  const text = `<|im_start|>user\n${userText}<|im_end|>\n<|im_start|>assistant\n`;
  return [bos, ...reference.tokenize(text, true)].length;
}

function tokensOf(text: string): number {
  return reference.tokenize(text, false).length;
}

async function rawPost(path: string, body: unknown): Promise<Response> {
  return fetch(`${gw.baseURL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('chat completions', () => {
  it('answers spec-valid JSON with usage counted by the model tokenizer, exactly max_tokens long', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'hello world' }],
      max_tokens: 5,
      temperature: 0,
    });
    expectChatCompletion(completion);
    expect(completion.model).toBe('tiny');
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(completion.usage?.prompt_tokens).toBe(chatPromptTokens('hello world'));
    expect(completion.usage?.completion_tokens).toBe(5);
    expect(completion.usage?.total_tokens).toBe(chatPromptTokens('hello world') + 5);
  });

  it('streams spec-valid chunks, the usage chunk last, then [DONE]', async () => {
    const response = await rawPost('/chat/completions', {
      model: 'tiny',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'say hello' },
      ],
      max_tokens: 7,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await response.text();
    const events = text
      .split('\n\n')
      .filter((block) => block.startsWith('data: '))
      .map((block) => block.slice('data: '.length));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks: unknown[] = events.slice(0, -1).map((event) => JSON.parse(event));
    for (const chunk of chunks) expectChatCompletionChunk(chunk);
    const usageChunk = chunks.at(-1) as { choices: unknown[]; usage: Record<string, number> };
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage.completion_tokens).toBe(7);
    const promptText =
      '<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nsay hello<|im_end|>\n<|im_start|>assistant\n';
    expect(usageChunk.usage.prompt_tokens).toBe(1 + reference.tokenize(promptText, true).length);
    const finish = chunks.at(-2) as { choices: Array<{ finish_reason: string }> };
    expect(finish.choices[0]?.finish_reason).toBe('length');
  });

  it('streams through the SDK the same text the JSON answer has', async () => {
    const request = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'the quick brown fox' }],
      max_tokens: 12,
      temperature: 0,
    };
    const whole = await client.chat.completions.create(request);
    const stream = await client.chat.completions.create({ ...request, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(whole.choices[0]?.message.content);
  });

  it('is reproducible with a seed, at temperature 0 and when sampling', async () => {
    const ask = (temperature: number) =>
      client.chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'tiny model noise' }],
        max_tokens: 16,
        temperature,
        top_p: 0.9,
        seed: 42,
      });
    const [greedy1, greedy2] = [await ask(0), await ask(0)];
    expect(greedy1.choices[0]?.message.content).toBe(greedy2.choices[0]?.message.content);
    const [sampled1, sampled2] = [await ask(1.5), await ask(1.5)];
    expect(sampled1.choices[0]?.message.content).toBe(sampled2.choices[0]?.message.content);
  });

  it('ends the text right before a stop sequence, with finish_reason stop', async () => {
    const request = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'hello world' }],
      max_tokens: 24,
      temperature: 0,
    };
    const full = (await client.chat.completions.create(request)).choices[0]?.message.content ?? '';
    // A piece from the middle of the answer, as the stop sequence: the answer must end before it.
    const stop = full.slice(6, 9);
    expect(stop.length).toBe(3);
    const cut = await client.chat.completions.create({ ...request, stop: ['never-generated', stop] });
    expect(cut.choices[0]?.finish_reason).toBe('stop');
    expect(cut.choices[0]?.message.content).toBe(full.slice(0, full.indexOf(stop)));
    const stream = await client.chat.completions.create({ ...request, stop, stream: true });
    let streamed = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(streamed).toBe(full.slice(0, full.indexOf(stop)));
    expect(finish).toBe('stop');
  });

  it('applies logit_bias: a banned token never appears, a favoured one takes over', async () => {
    const request = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'hello' }],
      max_tokens: 8,
      temperature: 0,
    };
    const [favourite] = reference.tokenize('fox', false);
    expect(favourite).toBeDefined();
    const favoured = await client.chat.completions.create({
      ...request,
      logit_bias: { [String(favourite)]: 100 },
    });
    expect(favoured.choices[0]?.message.content).toBe(reference.detokenize(Array(8).fill(favourite)));
    const plain = await client.chat.completions.create(request);
    const [first] = reference.tokenize(plain.choices[0]?.message.content ?? '', false);
    const banned = await client.chat.completions.create({
      ...request,
      logit_bias: { [String(first)]: -100 },
    });
    expect(banned.choices[0]?.message.content).not.toBe(plain.choices[0]?.message.content);
    expect(banned.usage?.completion_tokens).toBe(8);
  });

  it('constrains the answer to JSON with response_format json_schema', async () => {
    const completion = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'give me json' }],
      max_tokens: 200,
      temperature: 0,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'flag',
          schema: {
            type: 'object',
            properties: { ok: { type: 'boolean' } },
            required: ['ok'],
            additionalProperties: false,
          },
        },
      },
    });
    const content = completion.choices[0]?.message.content ?? '';
    expect(typeof (JSON.parse(content) as { ok: unknown }).ok).toBe('boolean');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
  });

  it('refuses what it cannot do with a clear 400 in OpenAI shape', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ n: 2 }, 'n'],
      // Function tools are served (test/llama-cpp-tools.test.ts); custom tools are not.
      [{ tools: [{ type: 'custom', custom: { name: 'x' } }] }, 'tools[0]'],
      [{ logprobs: true }, 'logprobs'],
      [{ max_tokens: 5000 }, 'max_tokens'],
      [{ temperature: 3 }, 'temperature'],
      [{ logit_bias: { 999999: 5 } }, 'logit_bias'],
    ];
    for (const [extra, param] of cases) {
      const response = await rawPost('/chat/completions', {
        model: 'tiny',
        messages: [{ role: 'user', content: 'hi' }],
        ...extra,
      });
      expect(response.status, param).toBe(400);
      const body = (await response.json()) as { error: { param: string; message: string } };
      expectErrorResponse(body);
      expect(body.error.param).toBe(param);
    }
    await expect(
      client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], n: 2 }),
    ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("'n' must be 1") });
  });
});

describe('legacy completions', () => {
  it('continues the raw prompt, usage counted on the prompt as given (with BOS)', async () => {
    const completion = await client.completions.create({
      model: 'tiny',
      prompt: 'the lazy dog',
      max_tokens: 6,
      temperature: 0,
    });
    expectCompletion(completion);
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage?.prompt_tokens).toBe(1 + tokensOf('the lazy dog'));
    expect(completion.usage?.completion_tokens).toBe(6);
  });

  it('streams text_completion chunks and the usage chunk', async () => {
    const stream = await client.completions.create({
      model: 'tiny',
      prompt: 'hello',
      max_tokens: 4,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      expectCompletionChunk(chunk);
      text += chunk.choices[0]?.text ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBe(4);
    expect(usage?.prompt_tokens).toBe(1 + tokensOf('hello'));
  });
});

describe('token ids from the client', () => {
  it('are checked against the vocabulary (llama.cpp would read out of bounds)', async () => {
    const prompt = await rawPost('/completions', { model: 'tiny', prompt: [1, 999_999], max_tokens: 2 });
    expect(prompt.status).toBe(400);
    expect(((await prompt.json()) as { error: { param: string } }).error.param).toBe('prompt');
    const input = await rawPost('/embeddings', { model: 'tiny', input: [[5, 999_999]] });
    expect(input.status).toBe(400);
    expect(((await input.json()) as { error: { param: string } }).error.param).toBe('input');
    const valid = await rawPost('/completions', { model: 'tiny', prompt: [1, 300, 301], max_tokens: 2 });
    const body = (await valid.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    expect(body.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2 });
  });
});

describe('embeddings', () => {
  function norm(vector: number[]): number {
    return Math.hypot(...vector);
  }

  it("have the model's dimension and unit norm; base64 decodes to the same vector", async () => {
    const floats = await rawPost('/embeddings', {
      model: 'tiny',
      input: ['hello world', 'the quick brown fox'],
      encoding_format: 'float',
    });
    const body = (await floats.json()) as {
      data: Array<{ embedding: number[] }>;
      usage: { prompt_tokens: number };
    };
    expectEmbeddingResponse(body);
    expect(body.data).toHaveLength(2);
    for (const item of body.data) {
      expect(item.embedding).toHaveLength(TINY_EMBEDDING_LENGTH);
      expect(norm(item.embedding)).toBeCloseTo(1, 5);
    }
    expect(body.usage.prompt_tokens).toBe(2 + tokensOf('hello world') + tokensOf('the quick brown fox'));
    const encoded = await rawPost('/embeddings', {
      model: 'tiny',
      input: 'hello world',
      encoding_format: 'base64',
    });
    const base64 = (await encoded.json()) as { data: Array<{ embedding: string }> };
    expect(decodeFloat32Base64(base64.data[0]?.embedding ?? '')).toEqual(body.data[0]?.embedding);
    // The SDK asks for base64 and decodes it itself.
    const sdk = await client.embeddings.create({ model: 'tiny', input: 'hello world' });
    expect(sdk.data[0]?.embedding).toEqual(body.data[0]?.embedding);
  });

  it('shortens to dimensions and renormalises; more than the model has is a 400', async () => {
    const short = await client.embeddings.create({ model: 'tiny', input: 'hello world', dimensions: 16 });
    expect(short.data[0]?.embedding).toHaveLength(16);
    expect(norm(short.data[0]?.embedding ?? [])).toBeCloseTo(1, 5);
    await expect(
      client.embeddings.create({ model: 'tiny', input: 'hello', dimensions: TINY_EMBEDDING_LENGTH + 1 }),
    ).rejects.toMatchObject({ status: 400 });
  });
});

describe('the Responses API', () => {
  it('is not claimed by the backend itself', () => {
    expect(gw.backend.supports('responses')).toBe(false);
    expect(gw.backend.supports('chat.completions')).toBe(true);
  });
});

describe("the model's own chat template", () => {
  it('renders any Jinja template from the GGUF, not only ChatML', async () => {
    const template =
      "{{ bos_token }}{% for message in messages %}{{ '[' + message['role'] + ']\\n' + message['content'] + '</s>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '[assistant]\\n' }}{% endif %}";
    const custom = await startTinyModelGateway({
      backend: { model: writeTinyGguf('custom', undefined, { chatTemplate: template }), contextSize: 512 },
    });
    try {
      await custom.backend.loaded;
      const sdk = new OpenAI({ baseURL: custom.baseURL, apiKey: 'unused', maxRetries: 0 });
      const completion = await sdk.chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'hello world' }],
        max_tokens: 3,
        temperature: 0,
      });
      expectChatCompletion(completion);
      const rendered = '[user]\nhello world</s>\n[assistant]\n';
      expect(completion.usage?.prompt_tokens).toBe(1 + reference.tokenize(rendered, true).length);
      expect(completion.usage?.completion_tokens).toBe(3);
    } finally {
      await custom.close();
    }
  });
});
