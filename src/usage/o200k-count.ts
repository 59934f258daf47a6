import { createRequire } from 'node:module';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { loadO200kVocabulary, type O200kVocabulary, rankOf } from './o200k-vocabulary.js';

/**
 * o200k_base token counts, the same as gpt-tokenizer's `countTokens(text, { disallowedSpecial:
 * new Set() })` (special-token spellings count as text), from the compact table of
 * o200k-vocabulary.ts instead of the library's maps (~65 MB less RSS; see there).
 *
 * Same algorithm as the library: the o200k split regex, a piece that is a token counts 1, any
 * other piece is merged byte pair by byte pair, lowest rank first (leftmost on ties). The library
 * caches up to 100,000 merged pieces (memory that grows under load); this keeps the counts of at
 * most PIECE_CACHE_SIZE pieces, the words and phrases requests repeat (system prompts, tool schemas).
 */

const NO_RANK = 0x7fffffff;
/** Emptied when full: a few hundred KB at most, and no bookkeeping per hit. */
const PIECE_CACHE_SIZE = 8192;
const pieceCache = new Map<string, number>();

/**
 * Our own copy of the split regex, run with exec: `matchAll` clones its regex on every call
 * (the spec's species constructor), which V8 initialises and looks up anew each time: ~6.6k
 * instructions per counted text, four texts per chat request.
 */
const SPLIT = new RegExp(
  O200K_TOKEN_SPLIT_REGEX.source,
  O200K_TOKEN_SPLIT_REGEX.flags.includes('g')
    ? O200K_TOKEN_SPLIT_REGEX.flags
    : `${O200K_TOKEN_SPLIT_REGEX.flags}g`,
);

/** UTF-8 of the current piece, and the merge state; grown on demand, never shrunk. */
let pieceBytes = new Uint8Array(1024);
let starts = new Int32Array(1025);
let ranks = new Int32Array(1025);

/**
 * Encodes `piece` into pieceBytes as TextEncoder would. Returns the length, or minus the length
 * when a lone surrogate was replaced.
 */
function encodePiece(piece: string): number {
  if (pieceBytes.length < piece.length * 3) {
    pieceBytes = new Uint8Array(piece.length * 3);
    starts = new Int32Array(piece.length * 3 + 1);
    ranks = new Int32Array(piece.length * 3 + 1);
  }
  const out = pieceBytes;
  let w = 0;
  let replaced = false;
  for (let i = 0; i < piece.length; i++) {
    let cp = piece.charCodeAt(i);
    if (cp < 0x80) {
      out[w++] = cp;
      continue;
    }
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const next = piece.charCodeAt(i + 1);
      if (cp <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
        out[w++] = 0xf0 | (cp >> 18);
        out[w++] = 0x80 | ((cp >> 12) & 0x3f);
        out[w++] = 0x80 | ((cp >> 6) & 0x3f);
        out[w++] = 0x80 | (cp & 0x3f);
        continue;
      }
      cp = 0xfffd;
      replaced = true;
    }
    if (cp < 0x800) {
      out[w++] = 0xc0 | (cp >> 6);
      out[w++] = 0x80 | (cp & 0x3f);
    } else {
      out[w++] = 0xe0 | (cp >> 12);
      out[w++] = 0x80 | ((cp >> 6) & 0x3f);
      out[w++] = 0x80 | (cp & 0x3f);
    }
  }
  return replaced ? -w : w;
}

/** Tokens of pieceBytes[0, length) by byte pair merges. */
function mergeCount(vocabulary: O200kVocabulary, length: number): number {
  const bytes = pieceBytes;
  const rankAt = (i: number, parts: number): number =>
    i + 2 > parts ? NO_RANK : rankOrNone(vocabulary, bytes, starts[i] as number, starts[i + 2] as number);
  // parts + 1 boundaries: starts[0..parts]; ranks[i] merges part i with part i + 1.
  let parts = length;
  for (let i = 0; i <= length; i++) starts[i] = i;
  for (let i = 0; i < length - 1; i++) ranks[i] = rankOrNone(vocabulary, bytes, i, i + 2);
  ranks[length - 1] = NO_RANK;
  while (parts > 1) {
    let lowest = NO_RANK;
    let at = -1;
    for (let i = 0; i < parts - 1; i++) {
      const rank = ranks[i] as number;
      if (rank < lowest) {
        lowest = rank;
        at = i;
      }
    }
    if (at < 0) break;
    // Drop boundary at + 1: parts at and at + 1 become one.
    starts.copyWithin(at + 1, at + 2, parts + 1);
    ranks.copyWithin(at, at + 1, parts);
    parts--;
    ranks[at] = rankAt(at, parts);
    if (at > 0) ranks[at - 1] = rankAt(at - 1, parts);
  }
  return parts;
}

function rankOrNone(vocabulary: O200kVocabulary, bytes: Uint8Array, start: number, end: number): number {
  const rank = rankOf(vocabulary, bytes, start, end);
  return rank < 0 ? NO_RANK : rank;
}

function countWith(vocabulary: O200kVocabulary, text: string): number {
  let tokens = 0;
  SPLIT.lastIndex = 0;
  for (let match = SPLIT.exec(text); match !== null; match = SPLIT.exec(text)) {
    const piece = match[0];
    if (piece.length === 0) {
      // No alternative of the pattern matches empty text; were one to, step as matchAll does.
      SPLIT.lastIndex += (text.codePointAt(SPLIT.lastIndex) ?? 0) > 0xffff ? 2 : 1;
      continue;
    }
    const cached = pieceCache.get(piece);
    if (cached !== undefined) {
      tokens += cached;
      continue;
    }
    const encoded = encodePiece(piece);
    const length = encoded < 0 ? -encoded : encoded;
    // A replaced lone surrogate: the library looks the piece up as text (no token holds one),
    // then merges the replaced bytes.
    const count =
      encoded > 0 && rankOf(vocabulary, pieceBytes, 0, length) >= 0 ? 1 : mergeCount(vocabulary, length);
    if (pieceCache.size >= PIECE_CACHE_SIZE) pieceCache.clear();
    pieceCache.set(piece, count);
    tokens += count;
  }
  return tokens;
}

type Count = (text: string) => number;

/**
 * Loaded at import, not on first use: the scan takes 70-120 ms (a first request would wait that
 * long on the event loop) and keeps only ~5 MB, so deferring it would buy little. If the installed
 * table cannot be scanned (a gpt-tokenizer upgrade changed its layout) counting falls back to the
 * library itself: exact, only heavier.
 */
function load(): Count {
  const vocabulary = loadO200kVocabulary();
  if (vocabulary !== undefined) return (text) => countWith(vocabulary, text);
  const library = createRequire(import.meta.url)('gpt-tokenizer') as typeof import('gpt-tokenizer');
  const asText = { disallowedSpecial: new Set<string>() };
  return (text) => library.countTokens(text, asText);
}

/** o200k_base tokens of `text`, special-token spellings counted as text. */
export const countO200kTokens: Count = load();
