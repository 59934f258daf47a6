import { countTokens } from 'gpt-tokenizer';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { QuotaStage } from '../src/pipeline/quota.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { TokenCountCache } from '../src/usage/token-count-cache.js';
import { countTextTokens, EXACT_BYTES_PER_REQUEST, TokenCounter } from '../src/usage/token-counter.js';
import { estimateChatPromptTokens } from '../src/usage/token-estimate.js';
import { keyPrincipal } from './support/key-principal.js';

/**
 * What the tokenizer is handed is the work a count costs: the tests assert it (and the counts),
 * never time.
 */
const seen = vi.hoisted(() => ({ texts: [] as string[] }));
vi.mock('../src/usage/o200k-count.js', async (original) => {
  const real = await original<typeof import('../src/usage/o200k-count.js')>();
  return {
    ...real,
    countO200kTokens: (text: string) => {
      seen.texts.push(text);
      return real.countO200kTokens(text);
    },
  };
});
const handedBytes = () => seen.texts.reduce((sum, text) => sum + Buffer.byteLength(text), 0);

beforeEach(() => {
  seen.texts = [];
});
afterEach(() => vi.restoreAllMocks());

/** English-like text of `bytes` bytes, different for each `seed` (so no two share counts by chance). */
function prose(bytes: number, seed: number): string {
  const words = ['gateway', 'token', 'budget', 'stream', 'answer', 'model', 'limit', 'cache', 'route'];
  let text = '';
  for (let i = 0; text.length < bytes; i++)
    text += `${words[(i * 7 + seed) % words.length]}${(i * seed) % 97} `;
  return text.slice(0, bytes);
}

describe('TokenCountCache', () => {
  it('keeps counts per scope: one team never finds another team\u2019s text', () => {
    const cache = new TokenCountCache();
    cache.set('team-a', 'hello there', { tokens: 2, bytes: 11 });
    expect(cache.get('team-a', 'hello there')).toEqual({ tokens: 2, bytes: 11 });
    expect(cache.get('team-b', 'hello there')).toBeUndefined();
  });

  it('holds at most its size: old texts go first, a text used recently stays', () => {
    const cache = new TokenCountCache(1_000);
    cache.set('t', 'first', { tokens: 1, bytes: 5 });
    cache.set('t', 'kept', { tokens: 1, bytes: 4 });
    for (let i = 0; i < 200; i++) {
      cache.set('t', `filler ${i}`, { tokens: 2, bytes: 8 });
      // Used on every round, so it is never the least recently used.
      expect(cache.get('t', 'kept')).toEqual({ tokens: 1, bytes: 4 });
    }
    expect(cache.get('t', 'first')).toBeUndefined();
    expect(cache.get('t', 'filler 0')).toBeUndefined();
    expect(cache.get('t', 'filler 199')).toEqual({ tokens: 2, bytes: 8 });
  });

  it('bounds many tiny texts by what each entry costs, not by their length alone', () => {
    const cache = new TokenCountCache(1_000);
    // 100 one-character texts are 100 code units, but far more than 1,000 with their entries.
    for (let i = 0; i < 100; i++) cache.set('t', String.fromCharCode(0x4e00 + i), { tokens: 1, bytes: 3 });
    expect(cache.get('t', String.fromCharCode(0x4e00))).toBeUndefined();
    expect(cache.get('t', String.fromCharCode(0x4e00 + 99))).toEqual({ tokens: 1, bytes: 3 });
  });

  it('does not keep a text longer than half its size', () => {
    const cache = new TokenCountCache(100);
    cache.set('t', 'x'.repeat(51), { tokens: 7, bytes: 51 });
    expect(cache.get('t', 'x'.repeat(51))).toBeUndefined();
    cache.set('t', 'x'.repeat(40), { tokens: 5, bytes: 40 });
    expect(cache.get('t', 'x'.repeat(40))).toEqual({ tokens: 5, bytes: 40 });
  });
});

describe('prompt estimates remember what a team sent before', () => {
  const turnOne = [
    { role: 'system', content: prose(1_500, 1) },
    { role: 'user', content: prose(1_500, 2) },
  ];
  const reply = { role: 'assistant', content: prose(1_500, 3) };
  const question = { role: 'user', content: prose(1_500, 4) };
  const turnTwo = [...turnOne, reply, question];
  /** Each message's text counted alone (each is within the allowance, so exactly). */
  const exact = (messages: Array<{ role: string; content: string }>) =>
    3 + messages.reduce((sum, m) => sum + 3 + countTextTokens(m.content) + countTextTokens(m.role), 0);

  it('a conversation past the allowance stays exact: each turn counts only its new text', () => {
    expect(Buffer.byteLength(turnTwo.map((m) => m.content).join(''))).toBeGreaterThan(
      EXACT_BYTES_PER_REQUEST,
    );
    const cache = new TokenCountCache();
    const memory = { cache, scope: 'team-a' };
    const [exactOne, exactTwo] = [exact(turnOne), exact(turnTwo)];
    expect(estimateChatPromptTokens(turnOne, new TokenCounter(memory))).toBe(exactOne);
    seen.texts = [];
    expect(estimateChatPromptTokens(turnTwo, new TokenCounter(memory))).toBe(exactTwo);
    // Only the two new messages went to the tokenizer and the one role turn one did not have.
    expect(seen.texts.join('')).toBe(reply.content + reply.role + question.content);

    // Without the memory the same request is over the allowance, so it is estimated.
    seen.texts = [];
    estimateChatPromptTokens(turnTwo, new TokenCounter());
    expect(handedBytes()).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
  });

  it('another team sending the same text is counted afresh', () => {
    const cache = new TokenCountCache();
    const exactOne = exact(turnOne);
    estimateChatPromptTokens(turnOne, new TokenCounter({ cache, scope: 'team-a' }));
    seen.texts = [];
    expect(estimateChatPromptTokens(turnOne, new TokenCounter({ cache, scope: 'team-b' }))).toBe(exactOne);
    expect(seen.texts.join('')).toBe(turnOne.map((m) => m.content + m.role).join(''));
  });

  it('after a miss (another instance, an eviction) the memory catches up over a few turns', () => {
    // 8 KB of history this instance has never seen: over the allowance, so estimated at first.
    const history = Array.from({ length: 8 }, (_, i) => ({ role: 'user', content: prose(1_000, 10 + i) }));
    const whole = exact(history);
    const memory = { cache: new TokenCountCache(), scope: 'team-a' };
    const estimates: number[] = [];
    for (let turn = 0; turn < 6; turn++) {
      seen.texts = [];
      estimates.push(estimateChatPromptTokens(history, new TokenCounter(memory)));
      expect(handedBytes()).toBeLessThanOrEqual(EXACT_BYTES_PER_REQUEST);
    }
    expect(estimates[0]).not.toBe(whole);
    // Half the allowance (2 KB) of whole messages is counted and remembered each turn.
    expect(estimates.slice(4)).toEqual([whole, whole]);
    expect(seen.texts).toEqual([]);
  });

  it('a system prompt over the allowance does not keep the messages after it from being remembered', () => {
    const system = { role: 'system', content: prose(6_000, 20) };
    const chat = [
      system,
      { role: 'user', content: prose(300, 21) },
      { role: 'assistant', content: prose(300, 22) },
    ];
    const memory = { cache: new TokenCountCache(), scope: 'team-a' };
    estimateChatPromptTokens(chat, new TokenCounter(memory));
    seen.texts = [];
    estimateChatPromptTokens(chat, new TokenCounter(memory));
    // Only windows of the long system prompt are sampled again; the short messages are recalled.
    const handed = seen.texts.join('');
    expect(handed.length).toBeGreaterThan(0);
    expect(handed).not.toContain(prose(300, 21).slice(0, 100));
    expect(handed).not.toContain(prose(300, 22).slice(0, 100));
    expect(seen.texts.every((text) => system.content.includes(text))).toBe(true);
  });

  it('a counter with little allowance left still samples a dense text rather than counting small ones', () => {
    const counter = new TokenCounter();
    counter.count([prose(3_300, 30)]);
    // ~800 bytes left: the short text may take only what leaves one 512-byte window to sample.
    const dense = Buffer.from(prose(15_000, 31)).toString('base64').slice(0, 20_000);
    const estimate = counter.count([prose(300, 32), dense]);
    expect(estimate).toBeGreaterThan(countTokens(dense) * 0.8);
  });

  it('texts only sampled (past the allowance) are not remembered as exact', () => {
    const cache = new TokenCountCache();
    const memory = { cache, scope: 'team-a' };
    const long = prose(EXACT_BYTES_PER_REQUEST * 3, 5);
    const first = new TokenCounter(memory).count([long]);
    seen.texts = [];
    expect(new TokenCounter(memory).count([long])).toBe(first);
    // Sampled again, not recalled: an estimate is never passed off as a count.
    expect(handedBytes()).toBeGreaterThan(0);
  });

  it('the quota stage estimates with the team\u2019s memory', async () => {
    const config = loadConfig({ env: {} });
    const store = await MemoryStore.open();
    const quota = new QuotaStage(store, config.quota);
    const principal = keyPrincipal({ teamLimits: { tokens_per_minute: 1_000_000 } });
    const reserve = async (messages: unknown[]) => {
      const reservation = await quota.reserve({
        principal,
        endpoint: 'chat.completions',
        body: { model: 'm', messages, max_tokens: 10 },
        upstreamModel: 'm',
      });
      await reservation.release();
    };
    await reserve(turnOne);
    seen.texts = [];
    await reserve(turnTwo);
    expect(seen.texts.join('')).toBe(reply.content + reply.role + question.content);
    await store.close();
  });
});
