import { countO200kTokens } from './o200k-count.js';
import type { TokenCountCache } from './token-count-cache.js';

/**
 * Token counts the gateway makes itself (prompt estimates, output of answers without usage), with
 * a bound on the work one request may cost the event loop.
 *
 * The o200k_base count (o200k-count.ts: gpt-tokenizer's table and algorithm; the figures here were
 * measured with gpt-tokenizer itself) is exact but slow on some text: its BPE merge is quadratic in
 * the length of one pre-tokenized piece (a run of letters, digits or one repeated character: 64 KB
 * of random CJK took 8.8 s, 64 KB of one repeated letter 1.6 s), and random text (base64, random Unicode) costs
 * about 0.6-1 µs per UTF-8 byte even in short pieces. So:
 * - text is cut into segments of at most SEGMENT_CHARS (before whitespace where there is some), so
 *   no piece is long; a cut inside a word may add a token, never remove many;
 * - at most EXACT_BYTES_PER_REQUEST bytes of UTF-8 are counted exactly per request, across all its
 *   messages and fields (one TokenCounter per request). Worst case measured: ~3 ms for 4 KiB of
 *   random CJK or base64 on a 2-core machine; English text ~0.1 ms;
 * - past that, tokens are estimated from bytes at the densest tokens-per-byte seen in the exactly
 *   counted parts (sampled from windows spread over the whole text, so a dense middle is seen), and
 *   never below MIN_TOKENS_PER_BYTE.
 * These are estimates for reservations: settlement charges what the upstream reports.
 */
export const EXACT_BYTES_PER_REQUEST = 4096;
const SEGMENT_CHARS = 256;
/** How far back a cut looks for whitespace, so words stay whole. */
const CUT_LOOKBACK = 32;
const WINDOW_BYTES = 512;
/** A sample smaller than this says little about density (one short word is 1 token in 2 bytes). */
const MIN_SAMPLE_BYTES = 256;
/** English is ~4.5 bytes per token, code ~3.5, base64 ~1.45, random Unicode ~1.3: 4 errs high for prose. */
const MIN_TOKENS_PER_BYTE = 1 / 4;

const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13);
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/** Tokens of `text`, counted segment by segment so no piece makes the BPE quadratic. */
function countSegmented(text: string): number {
  let tokens = 0;
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + SEGMENT_CHARS, text.length);
    if (end < text.length) {
      for (let i = end; i > end - CUT_LOOKBACK; i--)
        if (isSpace(text.charCodeAt(i))) {
          end = i;
          break;
        }
      if (isLowSurrogate(text.charCodeAt(end))) end--;
    }
    tokens += countO200kTokens(text.slice(start, end));
    start = end;
  }
  return tokens;
}

/** Where a slice of `text` from `start` holding about `bytes` UTF-8 bytes ends. */
function endAfterBytes(text: string, start: number, bytes: number): number {
  let i = start;
  let used = 0;
  while (i < text.length && used < bytes) {
    const code = text.charCodeAt(i);
    used += code < 0x80 ? 1 : code < 0x800 ? 2 : 3;
    i++;
  }
  if (i < text.length && isLowSurrogate(text.charCodeAt(i))) i++;
  return i;
}

/** Where a counter may find, and leaves, the counts of texts its team sent before. */
export interface TokenCounterMemory {
  cache: TokenCountCache;
  /** Whose texts these are (the team): counts are never shared across it. */
  scope: string;
}

/** One request's counting: the exact-count allowance is shared by every text it counts. */
export class TokenCounter {
  private exactBytesLeft = EXACT_BYTES_PER_REQUEST;
  private exactTokens = 0;
  private exactBytes = 0;
  private densest = MIN_TOKENS_PER_BYTE;

  /**
   * With `memory`, a text counted before is not counted again and takes nothing from the
   * allowance, and each text counted exactly is remembered.
   */
  constructor(private readonly memory?: TokenCounterMemory) {}

  /** Tokens of the texts together (each counted on its own, as separate fields are). */
  count(texts: string | readonly string[]): number {
    const list = (typeof texts === 'string' ? [texts] : texts).filter((text) => text.length > 0);
    const known = this.memory ? this.recall(list) : 0;
    const sizes = list.map((text) => Buffer.byteLength(text));
    let bytes = 0;
    for (const size of sizes) bytes += size;
    if (bytes === 0) return known;
    // All of it is counted exactly when it fits in what is left of the allowance. Past that,
    // whole texts that fit in half of it are (and remembered, so a team's memory catches up with
    // a long conversation over its turns); the other half, and never less than one window,
    // samples the rest, so a dense text among them is still seen.
    const left = this.exactBytesLeft;
    const exactPart =
      bytes <= left ? bytes : Math.max(0, Math.min(Math.floor(left / 2), left - WINDOW_BYTES));
    const rest: string[] = [];
    let restBytes = 0;
    let exactTokens = 0;
    let exactBytes = 0;
    for (const [i, text] of list.entries()) {
      const size = sizes[i] ?? 0;
      if (exactBytes + size > exactPart) {
        rest.push(text);
        restBytes += size;
        continue;
      }
      const counted = countSegmented(text);
      exactTokens += counted;
      exactBytes += size;
      this.memory?.cache.set(this.memory.scope, text, { tokens: counted, bytes: size });
    }
    this.exactBytesLeft -= exactBytes;
    if (exactBytes > 0) this.noteExact(exactTokens, exactBytes);
    if (rest.length === 0) return known + exactTokens;
    this.sample(rest);
    return known + exactTokens + Math.ceil(restBytes * this.densest);
  }

  /**
   * Takes the texts counted before out of `list` (in place, order kept) and returns their
   * tokens; they are exact counts, so they inform the tokens-per-byte estimate too.
   */
  private recall(list: string[]): number {
    const memory = this.memory as TokenCounterMemory;
    let tokens = 0;
    let bytes = 0;
    let kept = 0;
    for (const text of list) {
      const hit = memory.cache.get(memory.scope, text);
      if (hit) {
        tokens += hit.tokens;
        bytes += hit.bytes;
      } else list[kept++] = text;
    }
    list.length = kept;
    if (bytes > 0) this.noteExact(tokens, bytes);
    return tokens;
  }

  private noteExact(tokens: number, bytes: number): void {
    this.exactTokens += tokens;
    this.exactBytes += bytes;
    if (this.exactBytes >= MIN_SAMPLE_BYTES)
      this.densest = Math.max(this.densest, this.exactTokens / this.exactBytes);
  }

  /** Counts windows spread evenly over the texts, as far as the allowance goes. */
  private sample(list: readonly string[]): void {
    const windows = Math.floor(this.exactBytesLeft / WINDOW_BYTES);
    if (windows === 0) return;
    this.exactBytesLeft -= windows * WINDOW_BYTES;
    let chars = 0;
    for (const text of list) chars += text.length;
    let index = 0;
    let before = 0; // chars of the texts before list[index]
    for (let w = 0; w < windows; w++) {
      let at = Math.floor(((w + 0.5) * chars) / windows);
      while (index < list.length - 1 && at >= before + (list[index] as string).length) {
        before += (list[index] as string).length;
        index++;
      }
      at -= before;
      // A window runs on into the next texts when one ends before it is full.
      let tokens = 0;
      let bytes = 0;
      for (let i = index; i < list.length && bytes < WINDOW_BYTES; i++) {
        const text = list[i] as string;
        let start = i === index ? Math.min(at, text.length) : 0;
        if (start < text.length && isLowSurrogate(text.charCodeAt(start))) start++;
        const end = endAfterBytes(text, start, WINDOW_BYTES - bytes);
        const piece = text.slice(start, end);
        tokens += countSegmented(piece);
        bytes += Buffer.byteLength(piece);
      }
      if (bytes >= MIN_SAMPLE_BYTES) this.densest = Math.max(this.densest, tokens / bytes);
    }
  }
}

/** Tokens of some text counted on its own, within one request's allowance. */
export function countTextTokens(texts: string | readonly string[]): number {
  return new TokenCounter().count(texts);
}
