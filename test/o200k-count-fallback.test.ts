import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it, vi } from 'vitest';

/**
 * A gpt-tokenizer whose table file cannot be scanned (an upgrade changed its layout, a pruned
 * install): counting falls back to the library itself, with the same results.
 */
const scanned = vi.hoisted(() => ({ calls: 0 }));
vi.mock('../src/usage/o200k-vocabulary.js', async (original) => ({
  ...(await original<typeof import('../src/usage/o200k-vocabulary.js')>()),
  loadO200kVocabulary: () => {
    scanned.calls++;
    return undefined;
  },
}));

describe('o200k_base counts without a scannable table', () => {
  it('are the library counts, special-token spellings as text', async () => {
    const { countO200kTokens } = await import('../src/usage/o200k-count.js');
    expect(scanned.calls).toBe(1);
    for (const text of [
      'Hello, world!',
      '日本語のテキスト 😀',
      '<|endoftext|> and <|im_start|>',
      'a'.repeat(200),
    ])
      expect(countO200kTokens(text)).toBe(countTokens(text, { disallowedSpecial: new Set() }));
  });
});
