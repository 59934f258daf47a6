import { LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest';
import { loadNodeLlamaCpp } from '../src/backends/llama-cpp/load-node-llama-cpp.js';
import { TokenFloor } from '../src/backends/llama-cpp/token-floor.js';
import { seededRandom } from './support/seeded-random.js';
import { expectErrorResponse } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

/**
 * A prompt far beyond the context is refused without being tokenized: tokenizing is synchronous
 * (seconds for a 16 MB body), and every other request would wait on it. Observed through what
 * the model's tokenizer is handed, never through timing.
 */
const CONTEXT = 256;
/** 1 MB of text: thousands of times what a 256-token context holds. */
const HUGE = 'hello world quick brown fox '.repeat(40_000);

let gw: TinyModelGateway;
let tokenize: MockInstance<LlamaModel['tokenize']>;
/** Sees each text the tokenizer is handed, as it is handed. */
let onTokenize: ((text: unknown) => void) | undefined;
/** The longest entry of the tiny model's vocabulary, in UTF-16 units. */
let longest: number;

beforeAll(async () => {
  // Spied before the model loads: LlamaModel binds its tokenize (and tokenizer) in its constructor.
  const original = LlamaModel.prototype.tokenize;
  tokenize = vi.spyOn(LlamaModel.prototype, 'tokenize').mockImplementation(function (
    this: LlamaModel,
    ...args: Parameters<LlamaModel['tokenize']>
  ) {
    onTokenize?.(args[0]);
    return original.apply(this, args);
  });
  gw = await startTinyModelGateway({ backend: { model: writeTinyGguf(), contextSize: CONTEXT } });
  await gw.backend.loaded;
  const tokens = (
    gw.backend.model('tiny').model.fileInfo.metadata as { tokenizer: { ggml: { tokens: readonly string[] } } }
  ).tokenizer.ggml.tokens;
  longest = Math.max(...tokens.map((token) => token.length));
});

afterAll(async () => {
  tokenize?.mockRestore();
  await gw?.close();
});

/** The longest text the tokenizer was handed since `from` (a count of its calls). */
function longestTokenized(from: number): number {
  return Math.max(
    0,
    ...tokenize.mock.calls.slice(from).map(([text]) => (typeof text === 'string' ? text.length : 0)),
  );
}

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${gw.baseURL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function expectTooLong(
  answer: { status: number; body: Record<string, unknown> },
  param: string,
  message: RegExp,
): void {
  expect(answer.status).toBe(400);
  expectErrorResponse(answer.body);
  expect(answer.body.error).toMatchObject({
    type: 'invalid_request_error',
    code: 'context_length_exceeded',
    param,
    message: expect.stringMatching(message),
  });
}

describe('a prompt that cannot fit the context', () => {
  it('is refused for chat, legacy completions and embeddings without tokenizing its text', async () => {
    const from = tokenize.mock.calls.length;
    expectTooLong(
      await post('/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: HUGE }] }),
      'messages',
      /^This model's maximum context length is 256 tokens\. However, you requested at least \d+ tokens in the prompt\. Shorten the prompt\.$/,
    );
    expectTooLong(
      await post('/completions', { model: 'tiny', prompt: HUGE, max_tokens: 1 }),
      'prompt',
      /^This model's maximum context length is 256 tokens\. However, you requested at least \d+ tokens in the prompt\./,
    );
    expectTooLong(
      await post('/embeddings', { model: 'tiny', input: ['hello', HUGE] }),
      'input',
      /^This model's maximum context length is 256 tokens, and an input has at least \d+\.$/,
    );
    // Anthropic's count_tokens on an in-process model: the same refusal, in Anthropic's shape.
    const count = await fetch(`${gw.baseURL}/messages/count_tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: HUGE }] }),
    });
    expect(count.status).toBe(400);
    expect(await count.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringContaining('at least') },
    });
    // What was tokenized is bounded by the context, not by the body.
    expect(longestTokenized(from)).toBeLessThanOrEqual(CONTEXT * longest);
    expect(HUGE.length).toBeGreaterThan(100 * CONTEXT * longest);
  });

  it('is still refused with its exact size when it is tokenized (a floor below the context)', async () => {
    // Words of one or two tokens each: more tokens than the context, far fewer units than its bound.
    const text = 'a b c d e f g h '.repeat(40);
    expect(text.length).toBeLessThan(CONTEXT * longest);
    expectTooLong(
      await post('/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: text }] }),
      'messages',
      /However, you requested \d+ tokens in the prompt\./,
    );
  });

  it('leaves the event loop a turn between the inputs of an embeddings request', async () => {
    const inputs = Array.from({ length: 50 }, (_, i) => `input ${i} hello world`);
    const from = tokenize.mock.calls.length;
    let tokenizedBeforeTurn: number | undefined;
    const counted = () =>
      tokenize.mock.calls
        .slice(from)
        .filter(([text]) => typeof text === 'string' && text.startsWith('input ')).length;
    onTokenize = (text) => {
      // Runs once the event loop gets a turn: after every input, were they tokenized in one go.
      if (text === inputs[0]) setImmediate(() => (tokenizedBeforeTurn = counted()));
    };
    const answer = await post('/embeddings', { model: 'tiny', input: inputs });
    onTokenize = undefined;
    expect(answer.status).toBe(200);
    expect(counted()).toBe(inputs.length);
    expect(tokenizedBeforeTurn).toBeLessThan(inputs.length);
  });
});

describe('an embeddings input', () => {
  it('may fill the context exactly, not more', async () => {
    // BOS and 255 more: 256 tokens (the tiny model adds no EOS).
    const full = [1, ...Array<number>(CONTEXT - 1).fill(300)];
    const fits = await post('/embeddings', { model: 'tiny', input: full });
    expect(fits.status).toBe(200);
    expect(fits.body.usage).toMatchObject({ prompt_tokens: CONTEXT });
    expectTooLong(
      await post('/embeddings', { model: 'tiny', input: [...full, 300] }),
      'input',
      /^This model's maximum context length is 256 tokens, and an input has 257\.$/,
    );
  });
});

describe('the floor', () => {
  it('never exceeds the tokens a text really becomes', async () => {
    const { library } = await loadNodeLlamaCpp(gw.app.log);
    const model = gw.backend.model('tiny').model;
    const floor = TokenFloor.of(library, model);
    expect(floor).toBeDefined();
    const random = seededRandom(7);
    const pieces = [
      'hello',
      ' ',
      '  ',
      '\n',
      'th',
      'é',
      '日本',
      '😀',
      '<|im_start|>',
      '<s>',
      'fox',
      'x',
      '\t',
      '▁',
    ];
    for (let round = 0; round < 200; round++) {
      let text = '';
      const length = 1 + Math.floor(random() * 60);
      for (let i = 0; i < length; i++) text += pieces[Math.floor(random() * pieces.length)];
      const tokens: Token[] = model.tokenize(text, false);
      expect(floor?.ofText(text), JSON.stringify(text)).toBeLessThanOrEqual(tokens.length);
    }
    // A rendered chat prompt: the template's special tokens and text included.
    const state = gw.backend.model('tiny').chatWrapper.generateContextState({
      chatHistory: [
        { type: 'system', text: 'be brief  ' },
        { type: 'user', text: 'hello world 😀 日本' },
        { type: 'model', response: [] },
      ],
    });
    expect(floor?.ofPrompt(state.contextText)).toBeLessThanOrEqual(
      state.contextText.tokenize(model.tokenizer).length,
    );
  });
});
