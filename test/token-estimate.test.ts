import { randomBytes } from 'node:crypto';
import { countTokens } from 'gpt-tokenizer';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SseSplitter, splitEvents } from '../src/backends/sse-splitter.js';
import { completionTokensOfJson, StreamTally } from '../src/usage/output-tally.js';
import { EXACT_BYTES_PER_REQUEST } from '../src/usage/token-counter.js';
import {
  estimateChatPromptTokens,
  estimatePromptTokens,
  estimateTextTokens,
} from '../src/usage/token-estimate.js';

/**
 * The gateway's own token counts cost the event loop a bounded amount per request, whatever the
 * text: the tokenizer is seen through a wrapper that records what it was given (work is asserted
 * by the bytes handed to it, never by time).
 */
const seen = vi.hoisted(() => ({ bytes: 0, longest: 0 }));
vi.mock('../src/usage/o200k-count.js', async (original) => {
  const real = await original<typeof import('../src/usage/o200k-count.js')>();
  return {
    ...real,
    countO200kTokens: (text: string) => {
      seen.bytes += Buffer.byteLength(text);
      seen.longest = Math.max(seen.longest, text.length);
      return real.countO200kTokens(text);
    },
  };
});

beforeEach(() => {
  seen.bytes = 0;
  seen.longest = 0;
});
afterEach(() => vi.restoreAllMocks());

const base64 = (bytes: number) => randomBytes(bytes).toString('base64').slice(0, bytes);
const english = (bytes: number) =>
  'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(bytes / 45)).slice(0, bytes);

describe('token estimates: exact within a bound per request, estimated past it', () => {
  it('short text is counted exactly, special-token spellings as text', () => {
    const text = `${english(1000)} <|endoftext|> <|im_start|>`;
    expect(estimateTextTokens(text)).toBe(countTokens(text, { disallowedSpecial: new Set() }));
    expect(estimateChatPromptTokens([{ role: 'user', content: '<|endoftext|>' }])).toBeGreaterThan(6);
  });

  it('a 20 MB prompt hands the tokenizer at most the bound, in short pieces, and errs high', () => {
    const text = base64(20 * 1024 * 1024);
    const estimate = estimateChatPromptTokens([{ role: 'user', content: text }]);
    expect(seen.bytes).toBeGreaterThan(0); // the wrapper sees the counting
    expect(seen.bytes).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
    expect(seen.longest).toBeLessThanOrEqual(256);
    // Real base64 is ~1.45 bytes a token: the estimate must not be below that.
    expect(estimate).toBeGreaterThan(text.length / 1.5);
    expect(estimate).toBeLessThanOrEqual(text.length + 10);
  });

  it('one long run of one character (quadratic for the BPE) is cut into short pieces', () => {
    const text = 'a'.repeat(3000);
    const estimate = estimateTextTokens(text);
    expect(seen.longest).toBeLessThanOrEqual(256);
    expect(estimate).toBeGreaterThanOrEqual(countTokens(text));
  });

  it('the bound holds per request, not per message: 10,000 messages of 2 KB', () => {
    const messages = Array.from({ length: 10_000 }, () => ({ role: 'user', content: base64(2048) }));
    const estimate = estimateChatPromptTokens(messages);
    expect(seen.bytes).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
    expect(estimate).toBeGreaterThan((10_000 * 2048) / 1.5);
  });

  it('a dense middle is sampled: English around 1 MB of base64 is not estimated as English', () => {
    const text = english(200_000) + base64(1_000_000) + english(200_000);
    const estimate = estimatePromptTokens('responses', { input: text });
    expect(seen.bytes).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
    expect(estimate).toBeGreaterThan(1_000_000 / 1.5);
  });

  it('long English is estimated near its real count, on the high side', () => {
    const text = english(100_000);
    const estimate = estimateTextTokens(text);
    const real = countTokens(text);
    expect(estimate).toBeGreaterThanOrEqual(real);
    expect(estimate).toBeLessThan(real * 1.25);
  });

  it('an embeddings batch shares one bound across its items; token arrays count as themselves', () => {
    const input = Array.from({ length: 5_000 }, () => base64(1024));
    estimatePromptTokens('embeddings', { input });
    expect(seen.bytes).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
    expect(estimateTextTokens([[1, 2, 3], [4]])).toBe(4);
  });

  it('output counted by the gateway (JSON answers, relayed streams) is bounded the same way', () => {
    const content = base64(5 * 1024 * 1024);
    const answer = Buffer.from(JSON.stringify({ choices: [{ message: { content } }] }));
    expect(completionTokensOfJson(answer)).toBeGreaterThan(content.length / 1.5);
    expect(seen.bytes).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);

    seen.bytes = 0;
    const tally = new StreamTally();
    for (let i = 0; i < 200; i++) {
      const chunk = { choices: [{ delta: { content: base64(1000) } }] };
      tally.add(Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`));
    }
    expect(tally.completionTokens()).toBeGreaterThan((200 * 1000) / 1.5);
    expect(seen.bytes).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
  });
});

describe('SSE splitting stays linear in the bytes', () => {
  it('an event cut into many chunks is neither re-joined nor re-searched on every push', () => {
    const concat = vi.spyOn(Buffer, 'concat');
    const splitter = new SseSplitter();
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    let total = 0;
    for (let i = 0; i < 900; i++) {
      expect(splitter.push(chunk)).toBeUndefined();
      total += chunk.length;
    }
    const done = splitter.push(Buffer.from('\n\ndata: x'));
    total += 9;
    expect(done?.length).toBe(900 * chunk.length + 2);
    expect(splitter.rest()?.toString()).toBe('data: x');
    const copied = concat.mock.calls.reduce(
      (sum, [list]) => sum + (list as Buffer[]).reduce((n, b) => n + b.length, 0),
      0,
    );
    expect(copied).toBeLessThan(3 * total);
  });

  it('terminators split at every position across chunks are found, \\n\\n and \\r\\n\\r\\n alike', () => {
    const stream = 'data: a\n\ndata: b\r\n\r\ndata: c\n\n';
    for (let cut = 1; cut < stream.length; cut++) {
      for (let cut2 = cut; cut2 < stream.length; cut2++) {
        const splitter = new SseSplitter();
        const out: string[] = [];
        for (const part of [stream.slice(0, cut), stream.slice(cut, cut2), stream.slice(cut2)]) {
          const block = splitter.push(Buffer.from(part));
          if (block) out.push(...splitEvents(block).map((event) => event.toString()));
        }
        expect(out).toEqual(['data: a\n\n', 'data: b\r\n\r\n', 'data: c\n\n']);
        expect(splitter.rest()).toBeUndefined();
      }
    }
  });

  it('a block of many events is split without scanning to its end for each one', () => {
    const block = Buffer.from('data: {"x":1}\n\n'.repeat(20_000));
    const indexOf = vi.spyOn(Buffer.prototype, 'indexOf');
    const events = splitEvents(block);
    expect(events).toHaveLength(20_000);
    // One search per event for `\n\n`, and a single one for the `\r\n\r\n` that never comes.
    expect(indexOf.mock.calls.length).toBeLessThanOrEqual(20_000 + 2);
  });
});
