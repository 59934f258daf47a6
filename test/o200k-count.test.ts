import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { countTokens } from 'gpt-tokenizer';
import bpe from 'gpt-tokenizer/bpeRanks/o200k_base';
import { describe, expect, it } from 'vitest';
import { countO200kTokens } from '../src/usage/o200k-count.js';
import {
  loadO200kVocabulary,
  O200K_MERGEABLE_TOKENS,
  parseO200kRanks,
  rankOf,
} from '../src/usage/o200k-vocabulary.js';

/**
 * The gateway counts o200k_base tokens from a compact copy of gpt-tokenizer's table: every token
 * and every count must be the library's own.
 */
const library = (text: string) => countTokens(text, { disallowedSpecial: new Set() });
const tablePath = createRequire(import.meta.url).resolve('gpt-tokenizer/bpeRanks/o200k_base');

describe('o200k_base vocabulary read from the library table file', () => {
  const vocabulary = loadO200kVocabulary();

  it('holds every token of the library, in rank order, and finds each string token by its bytes', () => {
    expect(vocabulary).toBeDefined();
    if (vocabulary === undefined) return;
    expect(bpe.length).toBe(O200K_MERGEABLE_TOKENS);
    const encoder = new TextEncoder();
    const wrongBytes: number[] = [];
    const wrongRank: number[] = [];
    bpe.forEach((token, rank) => {
      const expected = typeof token === 'string' ? encoder.encode(token) : Uint8Array.from(token);
      const actual = vocabulary.bytes.subarray(vocabulary.offsets[rank], vocabulary.offsets[rank + 1]);
      if (Buffer.compare(Buffer.from(actual), Buffer.from(expected)) !== 0) wrongBytes.push(rank);
      if (typeof token === 'string' && rankOf(vocabulary, expected, 0, expected.length) !== rank)
        wrongRank.push(rank);
    });
    expect(wrongBytes).toEqual([]);
    expect(wrongRank).toEqual([]);
  });

  it('a table laid out otherwise (another library version) is refused, not misread', () => {
    const source = readFileSync(tablePath);
    const last = source.lastIndexOf('\n\t"');
    const missingOne = Buffer.concat([
      source.subarray(0, last),
      source.subarray(source.indexOf('\n', last + 1)),
    ]);
    expect(parseO200kRanks(missingOne)).toBeUndefined();
    expect(parseO200kRanks(Buffer.from('export default ["a", "b"];\n'))).toBeUndefined();
    expect(parseO200kRanks(Buffer.from(source.toString().replace('\t"!",', '\t!,')))).toBeUndefined();
  });
});

describe('o200k_base counts equal the library', () => {
  it('on prose, code, CJK, emoji, whitespace runs, special-token spellings and lone surrogates', () => {
    const texts = [
      'Hello, world! The quick brown fox jumps over the lazy dog.',
      "I'm sure they'VE said WE'LL go; don't.",
      'function add(a, b) {\n  return a + b; // sum\n}\n\n\n    indented\r\n\ttabbed',
      '日本語のテキストです。中文文本。한국어 텍스트. Ελληνικά. עברית. العربية',
      '😀🎉 emoji 👨‍👩‍👧‍👦 family 🏳️‍🌈',
      '<|endoftext|> <|im_start|>user\nhi<|im_end|><|fim_prefix|>',
      'a'.repeat(300),
      `${' '.repeat(50)}x${'\n'.repeat(7)}`,
      '\ud800 lone \udc00 surrogates \ud83d',
      '1234567890 3.14159 1e10 0x1F',
      randomBytes(600).toString('base64'),
      '',
    ];
    for (const text of texts)
      expect(countO200kTokens(text), JSON.stringify(text.slice(0, 40))).toBe(library(text));
  });

  it('on arbitrary Unicode strings (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 120 }), (text) => {
        expect(countO200kTokens(text)).toBe(library(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('on arbitrary bytes read as UTF-8 and on mixed scripts (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = Buffer.from(bytes).toString('utf8');
        expect(countO200kTokens(text)).toBe(library(text));
      }),
      { numRuns: 1000 },
    );
  });

  it('a piece counted twice (from the cache the second time) counts the same', () => {
    const text = 'antidisestablishmentarianism 漢字漢字漢字 QWxhZGRpbjpvcGVuIHNlc2FtZQ';
    const first = countO200kTokens(text);
    expect(countO200kTokens(text)).toBe(first);
    expect(first).toBe(library(text));
  });
});
