import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * o200k_base's 199,998 mergeable tokens as bytes in typed arrays, read from the rank table
 * gpt-tokenizer ships, without loading that table as JavaScript.
 *
 * Why: importing gpt-tokenizer's table (a 2.4 MB array literal) and building its maps cost ~35 MB
 * of the gateway's idle RSS and ~30 MB of its heap, for good (parser memory, 200k strings in a Map,
 * a young generation grown by the boot), and 0.4-0.8 s of start. Here the same data sits in ~5 MB
 * of array buffers off the V8 heap, scanned in under 0.1 s.
 *
 * The table file is the library's build output, so its layout could change in an upgrade: the
 * scan checks the layout and the token count, and `loadO200kVocabulary` returns undefined when
 * they are not what it knows (the caller then counts with the library itself); the tests compare
 * every token with the library's own table.
 */
export interface O200kVocabulary {
  /** Every token's bytes, back to back in rank order. */
  readonly bytes: Uint8Array;
  /** Rank r's bytes are bytes[offsets[r]] up to bytes[offsets[r + 1]]. */
  readonly offsets: Uint32Array;
  /** Open addressing by FNV-1a of the bytes: rank + 1, 0 for an empty slot. */
  readonly slots: Int32Array;
}

export const O200K_MERGEABLE_TOKENS = 199_998;
/** A power of two, about 2.6x the tokens: short probe runs. */
const SLOT_COUNT = 1 << 19;
const SLOT_MASK = SLOT_COUNT - 1;

const TAB = 0x09;
const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const CHUNK_START = Buffer.from('\nconst c');
const CHUNK_OPEN = Buffer.from(' = [');

/** FNV-1a over bytes[start, end). */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ (bytes[i] as number), 0x01000193);
  return hash >>> 0;
}

/** The rank of bytes[start, end), or -1. */
export function rankOf(vocabulary: O200kVocabulary, key: Uint8Array, start: number, end: number): number {
  const { bytes, offsets, slots } = vocabulary;
  const length = end - start;
  let slot = hashBytes(key, start, end) & SLOT_MASK;
  for (;;) {
    const entry = slots[slot] as number;
    if (entry === 0) return -1;
    const rank = entry - 1;
    const from = offsets[rank] as number;
    if ((offsets[rank + 1] as number) - from === length) {
      let i = 0;
      while (i < length && bytes[from + i] === key[start + i]) i++;
      if (i === length) return rank;
    }
    slot = (slot + 1) & SLOT_MASK;
  }
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  return -1;
}

/** Appends a code point (or a lone surrogate, as TextEncoder does: U+FFFD) as UTF-8. */
function putCodePoint(out: Uint8Array, at: number, codePoint: number): number {
  const cp = codePoint >= 0xd800 && codePoint <= 0xdfff ? 0xfffd : codePoint;
  if (cp < 0x80) {
    out[at] = cp;
    return at + 1;
  }
  if (cp < 0x800) {
    out[at] = 0xc0 | (cp >> 6);
    out[at + 1] = 0x80 | (cp & 0x3f);
    return at + 2;
  }
  if (cp < 0x10000) {
    out[at] = 0xe0 | (cp >> 12);
    out[at + 1] = 0x80 | ((cp >> 6) & 0x3f);
    out[at + 2] = 0x80 | (cp & 0x3f);
    return at + 3;
  }
  out[at] = 0xf0 | (cp >> 18);
  out[at + 1] = 0x80 | ((cp >> 12) & 0x3f);
  out[at + 2] = 0x80 | ((cp >> 6) & 0x3f);
  out[at + 3] = 0x80 | (cp & 0x3f);
  return at + 4;
}

/** Thrown inside the scan when the file is not laid out as expected; never leaves this module. */
class UnexpectedLayout extends Error {}

const isBlank = (c: number | undefined) => c === 0x20 || c === TAB || c === NEWLINE || c === 0x0d;

/**
 * Reads the table's literals into bytes. A cursor object, not tuples returned per token: the scan
 * runs once, mostly before V8 optimizes it, so 200k small allocations would cost real time.
 */
class Scanner {
  at = 0;
  written = 0;
  constructor(
    readonly source: Buffer,
    readonly out: Uint8Array,
  ) {}

  /** The string literal whose opening quote is at `at`: raw bytes are UTF-8, escapes JavaScript's. */
  string(): void {
    const { source, out } = this;
    let i = this.at + 1;
    let w = this.written;
    for (;;) {
      const c = source[i];
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        this.written = w;
        i = this.escaped(i);
        w = this.written;
        continue;
      }
      if (c === undefined || c === NEWLINE) throw new UnexpectedLayout('unterminated string');
      out[w++] = c;
      i++;
    }
    this.at = i + 1;
    this.written = w;
  }

  /** The escape (or run of escapes, for a surrogate pair) at source[i]; returns where text resumes. */
  private escaped(from: number): number {
    const { source } = this;
    let i = from + 1;
    const e = source[i++];
    let codePoint: number;
    switch (e) {
      case 0x6e:
        codePoint = 0x0a; // \n
        break;
      case 0x72:
        codePoint = 0x0d; // \r
        break;
      case 0x74:
        codePoint = 0x09; // \t
        break;
      case 0x62:
        codePoint = 0x08; // \b
        break;
      case 0x66:
        codePoint = 0x0c; // \f
        break;
      case 0x76:
        codePoint = 0x0b; // \v
        break;
      case 0x30:
        codePoint = 0; // \0 (modules are strict: never an octal escape)
        break;
      case 0x78: {
        const hi = hexValue(source[i] ?? 0);
        const lo = hexValue(source[i + 1] ?? 0);
        if (hi < 0 || lo < 0) throw new UnexpectedLayout('bad \\x escape');
        codePoint = hi * 16 + lo;
        i += 2;
        break;
      }
      case 0x75: {
        [codePoint, i] = unicodeEscape(source, i);
        // A high surrogate written as an escape is followed by its low half, also escaped.
        if (codePoint >= 0xd800 && codePoint <= 0xdbff && source[i] === BACKSLASH && source[i + 1] === 0x75) {
          const [low, after] = unicodeEscape(source, i + 2);
          if (low >= 0xdc00 && low <= 0xdfff) {
            codePoint = 0x10000 + ((codePoint - 0xd800) << 10) + (low - 0xdc00);
            i = after;
          }
        }
        break;
      }
      default:
        // \" \\ \' and any other character stand for themselves (raw UTF-8 is copied as text).
        if (e === undefined || e === NEWLINE) throw new UnexpectedLayout('bad escape');
        if (e >= 0x80) return i - 1;
        codePoint = e;
    }
    this.written = putCodePoint(this.out, this.written, codePoint);
    return i;
  }

  /** `[1, 2, 3]` (on one line or several) at `at`. */
  byteArray(): void {
    const { source, out } = this;
    let i = this.at + 1;
    let value = -1;
    for (;;) {
      const c = source[i++];
      if (c === undefined) throw new UnexpectedLayout('unterminated array');
      if (c >= 0x30 && c <= 0x39) value = (value < 0 ? 0 : value * 10) + (c - 0x30);
      else if (c === 0x2c || c === CLOSE_BRACKET) {
        if (value < 0 || value > 255) throw new UnexpectedLayout('bad byte');
        out[this.written++] = value;
        value = -1;
        if (c === CLOSE_BRACKET) break;
      } else if (!isBlank(c)) throw new UnexpectedLayout('bad array');
    }
    this.at = i;
  }

  skipBlanks(): void {
    while (isBlank(this.source[this.at])) this.at++;
  }
}

/** `\\uHHHH` or `\\u{H...}` after its `\\u` at source[at]: [code point, end]. */
function unicodeEscape(source: Buffer, at: number): [number, number] {
  let i = at;
  let codePoint = 0;
  if (source[i] === 0x7b) {
    i++;
    while (source[i] !== 0x7d) {
      const digit = hexValue(source[i] ?? 0);
      if (digit < 0) throw new UnexpectedLayout('bad \\u{} escape');
      codePoint = codePoint * 16 + digit;
      i++;
    }
    return [codePoint, i + 1];
  }
  for (let k = 0; k < 4; k++) {
    const digit = hexValue(source[i + k] ?? 0);
    if (digit < 0) throw new UnexpectedLayout('bad \\u escape');
    codePoint = codePoint * 16 + digit;
  }
  return [codePoint, i + 4];
}

/** Whether bytes[start, end) is what gpt-tokenizer calls valid UTF-8 (its isValidUTF8). */
function isValidUtf8(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const b = bytes[i] as number;
    let n: number;
    let cp: number;
    if (b <= 0x7f) {
      i++;
      continue;
    }
    if ((b & 0xe0) === 0xc0) {
      if (b <= 0xc1) return false;
      n = 2;
      cp = b & 0x1f;
    } else if ((b & 0xf0) === 0xe0) {
      n = 3;
      cp = b & 0x0f;
    } else if ((b & 0xf8) === 0xf0) {
      if (b > 0xf4) return false;
      n = 4;
      cp = b & 0x07;
    } else return false;
    if (i + n > end) return false;
    for (let j = 1; j < n; j++) {
      const next = bytes[i + j] as number;
      if ((next & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (next & 0x3f);
    }
    if ((n === 3 && cp < 0x800) || (n === 4 && cp < 0x10000)) return false;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n;
  }
  return true;
}

/**
 * The table file's text, or undefined if laid out otherwise. Overwrites `source` (the tokens are
 * decoded in place).
 */
export function parseO200kRanks(source: Buffer): O200kVocabulary | undefined {
  try {
    return scanRanks(source);
  } catch (error) {
    if (error instanceof UnexpectedLayout) return undefined;
    throw error;
  }
}

/** Where the array literal a `const cN = [` line opens starts its entries, or -1 past the last. */
function nextChunk(source: Buffer, from: number): number {
  const at = source.indexOf(CHUNK_START, from);
  if (at < 0) return -1;
  const open = source.indexOf(CHUNK_OPEN, at);
  if (open < 0 || source.indexOf(NEWLINE, at + 1) < open)
    throw new UnexpectedLayout('chunk without its array');
  return open + CHUNK_OPEN.length;
}

function scanRanks(source: Buffer): O200kVocabulary {
  // Decoded in place: a token never takes more bytes than its literal (quotes included), so the
  // writes stay behind the reads, and no second buffer of the file's size is needed.
  const offsets = new Uint32Array(O200K_MERGEABLE_TOKENS + 1);
  /** Tokens written as byte arrays: gpt-tokenizer finds them only when they are not valid UTF-8. */
  const fromArray = new Uint8Array(O200K_MERGEABLE_TOKENS);
  const scanner = new Scanner(source, source);
  let rank = 0;
  // The table is `const c0 = [...]; const c1 = [...]; const bpe = c0.concat(c1)`: chunks in rank order.
  for (let at = nextChunk(source, 0); at >= 0; at = nextChunk(source, scanner.at)) {
    scanner.at = at;
    for (;;) {
      scanner.skipBlanks();
      const c = source[scanner.at];
      if (c === CLOSE_BRACKET) break;
      if (rank >= O200K_MERGEABLE_TOKENS) throw new UnexpectedLayout('too many tokens');
      offsets[rank] = scanner.written;
      if (c === QUOTE) scanner.string();
      else if (c === OPEN_BRACKET) {
        scanner.byteArray();
        fromArray[rank] = 1;
      } else throw new UnexpectedLayout('not a token');
      rank++;
      scanner.skipBlanks();
      if (source[scanner.at] === 0x2c) scanner.at++;
      else if (source[scanner.at] !== CLOSE_BRACKET) throw new UnexpectedLayout('text after a token');
    }
  }
  const written = scanner.written;
  if (rank !== O200K_MERGEABLE_TOKENS) throw new UnexpectedLayout(`${rank} tokens`);
  offsets[rank] = written;
  const vocabulary: O200kVocabulary = {
    // A copy (Buffer#slice would share, and keep, the whole file).
    bytes: new Uint8Array(source.subarray(0, written)),
    offsets,
    slots: new Int32Array(SLOT_COUNT),
  };
  for (let r = 0; r < O200K_MERGEABLE_TOKENS; r++) {
    const start = offsets[r] as number;
    const end = offsets[r + 1] as number;
    if (fromArray[r] === 1 && isValidUtf8(vocabulary.bytes, start, end)) continue;
    insert(vocabulary, r, start, end);
  }
  return vocabulary;
}

/** Adds a rank; a token already present takes the later rank, as gpt-tokenizer's Map.set does. */
function insert(vocabulary: O200kVocabulary, rank: number, start: number, end: number): void {
  const { bytes, offsets, slots } = vocabulary;
  const length = end - start;
  let slot = hashBytes(bytes, start, end) & SLOT_MASK;
  for (;;) {
    const entry = slots[slot] as number;
    if (entry === 0) {
      slots[slot] = rank + 1;
      return;
    }
    const from = offsets[entry - 1] as number;
    if ((offsets[entry] as number) - from === length) {
      let i = 0;
      while (i < length && bytes[from + i] === bytes[start + i]) i++;
      if (i === length) {
        slots[slot] = rank + 1;
        return;
      }
    }
    slot = (slot + 1) & SLOT_MASK;
  }
}

/** The o200k_base table of the installed gpt-tokenizer, or undefined if it cannot be scanned. */
export function loadO200kVocabulary(): O200kVocabulary | undefined {
  try {
    const path = createRequire(import.meta.url).resolve('gpt-tokenizer/bpeRanks/o200k_base');
    return parseO200kRanks(readFileSync(path));
  } catch (error) {
    // Not installed where expected (a bundled or pruned deployment): the caller uses the library.
    if ((error as NodeJS.ErrnoException).code !== undefined) return undefined;
    throw error;
  }
}
