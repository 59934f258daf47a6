import { InvalidRequestError } from '../errors.js';

/**
 * The deepest nesting of arrays and objects a JSON request body may have. Real requests stay in
 * the tens (a tool's JSON schema); the gateway's own JSON.stringify of a body overflows the stack
 * near 4,000 levels, so bodies past this limit could never be served anyway.
 */
export const MAX_JSON_DEPTH = 1_000;

/** A body nested past MAX_JSON_DEPTH: the words the gateway gave when serialising it overflowed. */
export class NestedTooDeeplyError extends InvalidRequestError {
  constructor() {
    super('The request body is nested too deeply.');
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** The characters that open or close a string, an array or an object. */
const STRUCTURAL = /["[\]{}]/g;

/**
 * Whether JSON text nests arrays and objects deeper than `limit`, found by one pass over it before
 * it is parsed: JSON.parse of a megabyte of `[` takes seconds before anything can refuse it. Long
 * stretches without brackets or quotes (numbers, text, base64) are jumped over with a regular
 * expression and indexOf, so a body's bulk is not read character by character; brackets inside
 * strings do not count. Not a validator: malformed text is left for the parser to refuse, unless
 * it is too deep first.
 */
export function nestsDeeperThan(text: string, limit: number): boolean {
  const length = text.length;
  if (length <= limit) return false;
  let depth = 0;
  let plain = 0;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      i = closingQuote(text, i + 1);
      if (i < 0) return false;
      plain = 0;
    } else if (code === OPEN_ARRAY || code === OPEN_OBJECT) {
      if (++depth > limit) return true;
      plain = 0;
    } else if (code === CLOSE_ARRAY || code === CLOSE_OBJECT) {
      depth--;
      plain = 0;
    } else if (++plain === READ_BEFORE_JUMP) {
      STRUCTURAL.lastIndex = i + 1;
      if (!STRUCTURAL.test(text)) return false;
      // The loop's increment lands on the character found.
      i = STRUCTURAL.lastIndex - 2;
      plain = 0;
    }
  }
  return false;
}

/**
 * Characters read one by one before jumping to the next one that matters: keys, numbers and short
 * strings end sooner than a jump pays off, long stretches (text, base64, token ids) are mostly
 * jumped over, and a long run of escapes costs one jump per this many characters, not one each.
 */
const READ_BEFORE_JUMP = 16;

/** The index of the quote that ends the string whose text starts at `from`, or -1 for none. */
function closingQuote(text: string, from: number): number {
  const length = text.length;
  let i = from;
  for (;;) {
    const stop = Math.min(i + READ_BEFORE_JUMP, length);
    for (; i < stop; i++) {
      const code = text.charCodeAt(i);
      if (code === QUOTE) return i;
      if (code === BACKSLASH) i++;
    }
    if (i >= length) return -1;
    const at = text.indexOf('"', i);
    if (at < 0) return -1;
    // `i` starts no escape, so the backslashes right before the quote, counted back to `i`, say
    // whether it is escaped: an odd run escapes it.
    let backslashes = 0;
    while (at - 1 - backslashes >= i && text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
    i = at + 1;
  }
}
