/**
 * JSON answers read as bytes: what the relay and the cache need to know of an upstream's JSON
 * without parsing it (a body may be megabytes, and most need no parse at all), and the one parse
 * for when they do.
 */

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const COLON = 0x3a;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const QUOTE = 0x22;

/**
 * For a quoted key found at `at` (`key` holds its quotes): where its value starts, past the colon
 * and any space; -1 when the quoted word is not followed by a colon (it is a value, not a key).
 */
export function valueStartAfterKey(bytes: Buffer, at: number, key: Buffer): number {
  let i = at + key.length;
  while (i < bytes.length && SPACE.has(bytes[i] ?? 0)) i++;
  if (bytes[i] !== COLON) return -1;
  i++;
  while (i < bytes.length && SPACE.has(bytes[i] ?? 0)) i++;
  return i;
}

/** Opens with `{` and closes with `}`, space aside: not a JSON object cut short (nor anything else). */
export function isWholeObject(bytes: Buffer): boolean {
  let start = 0;
  while (start < bytes.length && SPACE.has(bytes[start] ?? 0)) start++;
  let end = bytes.length - 1;
  while (end > start && SPACE.has(bytes[end] ?? 0)) end--;
  return bytes[start] === OPEN_BRACE && bytes[end] === CLOSE_BRACE;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The JSON object the bytes hold; undefined when they hold anything else (an upstream's 200 may). */
export function jsonObjectOf(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
