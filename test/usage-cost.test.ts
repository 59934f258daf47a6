import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { costOf, priceFor } from '../src/usage/cost.js';
import {
  estimateChatPromptTokens,
  estimateTextTokens,
  requestedOutputTokens,
} from '../src/usage/token-estimate.js';

describe('prices and cost', () => {
  it('prices dated and suffixed model names by their family, and overrides win', () => {
    expect(priceFor('gpt-4o-2024-08-06')).toEqual(priceFor('gpt-4o'));
    expect(priceFor('gpt-4o-mini-2024-07-18')).toEqual(priceFor('gpt-4o-mini'));
    expect(priceFor('claude-sonnet-4-20250514')?.output).toBe(15);
    expect(priceFor('gpt-4o', { 'gpt-4o': { input: 1, output: 2 } })).toEqual({ input: 1, output: 2 });
    expect(priceFor('my-local-llama')).toBeUndefined();
  });

  it('computes micro-dollars with cached prompt tokens at their own price', () => {
    // gpt-4o: $2.50 in, $1.25 cached in, $10 out per 1M tokens.
    const cost = costOf('gpt-4o', {
      prompt_tokens: 1_000,
      completion_tokens: 100,
      prompt_tokens_details: { cached_tokens: 400 },
    });
    expect(cost).toEqual({ usdMicros: 600 * 2.5 + 400 * 1.25 + 100 * 10, unpriced: false });
    const responses = costOf('gpt-4o', { input_tokens: 1_000, output_tokens: 100 });
    expect(responses.usdMicros).toBe(1_000 * 2.5 + 100 * 10);
  });

  it('prices prompt-cache writes (5-minute and 1-hour) apart from reads and plain input', () => {
    // claude-sonnet-4-5: $3 in, $0.30 cache read, $3.75 5-minute write, $6 1-hour write, $15 out.
    // The Anthropic adapter's usage: prompt = 100 input + 2,000 read + 1,000 written (300 for 1 h).
    const usage = {
      prompt_tokens: 3_100,
      completion_tokens: 50,
      prompt_tokens_details: { cached_tokens: 2_000 },
      cache_creation_input_tokens: 1_000,
      cache_read_input_tokens: 2_000,
      cache_creation: { ephemeral_5m_input_tokens: 700, ephemeral_1h_input_tokens: 300 },
    };
    expect(costOf('claude-sonnet-4-5-20250929', usage).usdMicros).toBe(
      Math.round(100 * 3 + 2_000 * 0.3 + 700 * 3.75 + 300 * 6 + 50 * 15),
    );
    // A price without write rates charges writes as plain input, as before.
    expect(costOf('x', usage, { x: { input: 1, cachedInput: 0.5, output: 2 } }).usdMicros).toBe(
      1_100 * 1 + 2_000 * 0.5 + 50 * 2,
    );
    // Counts that do not add up never charge more tokens than the prompt has.
    expect(
      costOf(
        'x',
        { prompt_tokens: 10, completion_tokens: 0, cache_creation_input_tokens: 50 },
        {
          x: { input: 1, cacheWriteInput: 2, output: 1 },
        },
      ).usdMicros,
    ).toBe(20);
  });

  it('an unknown model costs 0 and is flagged', () => {
    expect(costOf('my-local-llama', { prompt_tokens: 10, completion_tokens: 10 })).toEqual({
      usdMicros: 0,
      unpriced: true,
    });
  });
});

describe('token estimates', () => {
  it('counts chat prompts with the tokenizer plus per-message overhead', () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: [{ type: 'text', text: 'Hello there, how are you?' }] },
    ];
    const expected =
      3 +
      (3 + countTokens('You are terse.') + countTokens('system')) +
      (3 + countTokens('Hello there, how are you?') + countTokens('user'));
    expect(estimateChatPromptTokens(messages)).toBe(expected);
  });

  it('counts strings, string arrays and token arrays', () => {
    expect(estimateTextTokens('hello world')).toBe(countTokens('hello world'));
    expect(estimateTextTokens(['a b', 'c'])).toBe(countTokens('a b') + countTokens('c'));
    expect(estimateTextTokens([1, 2, 3, 4])).toBe(4);
  });

  it("reads the request's output cap under the names its endpoint defines", () => {
    expect(requestedOutputTokens({ max_completion_tokens: 50, max_tokens: 10 })).toBe(50);
    expect(requestedOutputTokens({ max_tokens: 10 })).toBe(10);
    expect(requestedOutputTokens({ max_output_tokens: 7 }, 'responses')).toBe(7);
    expect(requestedOutputTokens({ max_completion_tokens: 50, max_tokens: 10 }, 'completions')).toBe(10);
    expect(requestedOutputTokens({ max_output_tokens: 7 })).toBeUndefined();
    expect(requestedOutputTokens({})).toBeUndefined();
  });
});
