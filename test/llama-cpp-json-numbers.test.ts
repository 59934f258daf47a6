import type { Llama, LlamaModel } from 'node-llama-cpp';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boundNumberRules } from '../src/backends/llama-cpp/finite-number-grammar.js';
import { startTinyModelWithReference, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

let gw: TinyModelGateway;
let client: OpenAI;
let llama: Llama;
/** The same GGUF loaded apart from the gateway: its tokenizer names the tokens to favour. */
let reference: LlamaModel;

beforeAll(async () => {
  ({ gw, client, llama, reference } = await startTinyModelWithReference(1024));
});

afterAll(async () => {
  await reference?.dispose();
  await gw?.close();
});

const schema = {
  type: 'object',
  properties: { n: { type: 'integer' }, x: { type: 'number' } },
  required: ['n', 'x'],
  additionalProperties: false,
};

describe('numbers in grammar-constrained JSON', () => {
  it("bounds every number rule of the pinned library's grammars", async () => {
    const grammars = [
      (await llama.createGrammarForJsonSchema(schema as Parameters<Llama['createGrammarForJsonSchema']>[0]))
        .grammar,
      (await llama.getGrammarFor('json')).grammar,
    ];
    for (const gbnf of grammars) {
      const numberRules = (text: string) =>
        text.split('\n').filter((line) => /number(-rule)? ::=/.test(line));
      // The library's rules are the ones we know (a new node-llama-cpp that writes them otherwise
      // fails here rather than silently keeping 16-digit exponents).
      expect(numberRules(gbnf).length).toBeGreaterThan(0);
      const bounded = numberRules(boundNumberRules(gbnf));
      expect(bounded).not.toEqual(numberRules(gbnf));
      for (const rule of bounded) {
        expect(rule).not.toMatch(/\{0,15\}\)\)?\)\?/);
        if (rule.startsWith('integer-number-rule')) expect(rule).not.toContain('[eE]');
      }
    }
  });

  it('an integer is written as digits a JSON reader keeps exactly, a number stays finite', async () => {
    // Every token the number rules could take favoured alike: under the library's own grammar the
    // model writes exponents here (e.g. {"n": 1e9999...}), which JSON readers turn into Infinity.
    // (SentencePiece puts a word start before a lone character: its piece is the last token.)
    const favoured = [...'0123456789eE-+.'].map((char) => {
      const token = reference.tokenize(char, false).at(-1);
      expect(token !== undefined && reference.detokenize([token])).toBe(char);
      return token;
    });
    const logitBias = Object.fromEntries(favoured.map((token) => [String(token), 100]));
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const completion = await client.chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'numbers' }],
        max_tokens: 200,
        temperature: 1,
        seed,
        logit_bias: logitBias,
        response_format: { type: 'json_schema', json_schema: { name: 'numbers', schema } },
      });
      const text = completion.choices[0]?.message.content ?? '';
      expect(completion.choices[0]?.finish_reason, text).toBe('stop');
      const value = JSON.parse(text) as { n: unknown; x: unknown };
      expect(Number.isSafeInteger(value.n), text).toBe(true);
      expect(text).toMatch(/"n": ?-?\d+[,\s}]/);
      expect(Number.isFinite(value.x), text).toBe(true);
    }
  });
});
