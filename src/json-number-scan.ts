import { rawTextOf, sourceJson } from './json-source.js';

type Container = Record<string | number, unknown>;

/**
 * Which numbers to keep: all of them, or those below a key for which the function says so (the
 * key and the parsed object or array holding it).
 */
export type KeepRule = 'all' | ((key: string | number, holder: Container) => boolean);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const DOT = 0x2e;
const LOWER_E = 0x65;
const UPPER_E = 0x45;

const isDigit = (code: number) => code >= 0x30 && code <= 0x39;
const isSpace = (code: number) => code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
/** Characters a JSON number may hold after its first one. */
const isNumberPart = (code: number) =>
  isDigit(code) || code === DOT || code === LOWER_E || code === UPPER_E || code === 0x2b || code === MINUS;
const isContainer = (value: unknown): value is Container => value !== null && typeof value === 'object';

const INTEGER_TEXT = /^-?\d+$/;

/**
 * Whether JavaScript cannot hold this number as written: an integer past 2^53 (it would be
 * rounded) or anything past ±1.8e308 (Infinity, which JSON.stringify writes as null). A fraction's
 * rounding is left alone: every JSON reader holds it as the same double.
 */
export function isInexactNumber(text: string): boolean {
  const value = Number(text);
  if (!Number.isFinite(value)) return true;
  return !Number.isSafeInteger(value) && INTEGER_TEXT.test(text);
}

/** Index just past the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let at = start;
  for (;;) {
    at = text.indexOf('"', at + 1);
    if (at === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at + 1;
  }
}

/**
 * Puts each number of `text` that JavaScript cannot hold back into `parsed` (what JSON.parse made
 * of `text`) as a JSON.rawJSON value, which JSON.stringify writes as it was written, where `keep`
 * says so. One pass over the text, walking `parsed` alongside: no recursion, nothing copied per
 * number, so its cost grows with the text's length alone (about JSON.parse's own), where
 * JSON.parse with a reviver costs about a microsecond a value.
 *
 * A value is replaced only where `parsed` holds the same number, so nothing else is ever written;
 * when a key is given twice the text's later value, the one JSON.parse kept, is written last.
 * After `most` numbers put back the rest stay as JSON.parse made them: each kept one is an object
 * (~0.3 µs and ~300 bytes), which a body of nothing else would otherwise multiply. `keep`'s keys
 * count below the top value only.
 */
export function putBackInexactNumbers(text: string, parsed: unknown, keep: KeepRule, most: number): void {
  let left = most;
  // Per container open in the text: the parsed container it stands for (undefined where the two
  // differ, after a key given twice), the key or index being read, whether numbers below are kept.
  const holders: Array<Container | undefined> = [];
  const keys: Array<string | number> = [];
  const kept: boolean[] = [];
  let at = 0;
  while (at < text.length) {
    const code = text.charCodeAt(at);
    const top = holders.length - 1;
    if (code === QUOTE) {
      const end = stringEnd(text, at);
      let next = end;
      while (isSpace(text.charCodeAt(next))) next++;
      if (text.charCodeAt(next) === COLON && top >= 0) {
        const raw = text.slice(at + 1, end - 1);
        keys[top] = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        at = next + 1;
      } else at = end;
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      const holder = top >= 0 ? holders[top] : undefined;
      const key = keys[top] ?? '';
      const value = top < 0 ? parsed : holder?.[key];
      // Not the same kind of container: the text's earlier value of a key given twice.
      const same = isContainer(value) && Array.isArray(value) === (code === OPEN_BRACKET);
      holders.push(same ? value : undefined);
      keys.push(code === OPEN_BRACKET ? 0 : '');
      // A rule's keys count below the top value only: its own fields are the API's.
      kept.push(
        top < 0
          ? keep === 'all'
          : (kept[top] ?? false) || (keep !== 'all' && top > 0 && holder !== undefined && keep(key, holder)),
      );
      at++;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      holders.pop();
      keys.pop();
      kept.pop();
      at++;
    } else if (code === COMMA) {
      const index = keys[top];
      if (typeof index === 'number') keys[top] = index + 1;
      at++;
    } else if (code === MINUS || isDigit(code)) {
      let end = at + 1;
      let exponent = false;
      let fraction = false;
      for (; end < text.length; end++) {
        const part = text.charCodeAt(end);
        if (!isNumberPart(part)) break;
        if (part === LOWER_E || part === UPPER_E) exponent = true;
        else if (part === DOT) fraction = true;
      }
      // At most 15 characters and no exponent: a safe integer or a finite number, never equal
      // to a kept one.
      const holder = top >= 0 && kept[top] ? holders[top] : undefined;
      if (holder !== undefined && (exponent || end - at >= 16)) {
        const key = keys[top] ?? '';
        const current = holder[key];
        // Kept from an earlier text of a key given twice: this later one is what JSON.parse kept.
        const earlier = typeof current === 'object' && current !== null && sourceJson.isRawJSON(current);
        // Only an integer's digits or an exponent can be past what a double holds.
        if ((left > 0 && (exponent || !fraction)) || earlier) {
          const number = text.slice(at, end);
          if ((earlier ? Number(rawTextOf(current)) : current) === Number(number)) {
            if (left > 0 && isInexactNumber(number)) {
              holder[key] = sourceJson.rawJSON(number);
              left--;
            } else if (earlier) holder[key] = Number(number);
          }
        }
      }
      at = end;
    } else at++;
  }
}
