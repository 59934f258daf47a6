/** JSON.parse's source text access and JSON.rawJSON (Node 22+; not in TypeScript's lib yet). */
export const sourceJson = JSON as JSON & {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
  parse(
    text: string,
    reviver: (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown,
  ): unknown;
};

/**
 * A text that may hold a number JavaScript cannot keep: after `:`, `,` or `[`, 16 digits in a
 * row (2^53 has 16) or an exponent of three digits (past 1e308 is Infinity). Most bodies hold
 * none, and this test is far cheaper than parsing with a reviver. It can match inside a string
 * (`"id: 1234567890123456"`), which only costs the slower parse, but not inside base64 (an
 * image's data), which has none of those three characters.
 */
const MAY_HOLD_INEXACT = /[:,[]\s*-?(?:\d{16}|\d+(?:\.\d+)?[eE][+-]?\d{3})/;

const INTEGER_TEXT = /^-?\d+$/;

/** The text a JSON.rawJSON value holds. */
function rawTextOf(value: unknown): string {
  return (value as { rawJSON: string }).rawJSON;
}

/**
 * Integers past 2^53 and numbers past ±1.8e308 kept as their text (a JSON.rawJSON value, which
 * JSON.stringify writes as it was): JavaScript would round the first (a tool's 19-digit id) and
 * turn the second into Infinity, which JSON.stringify writes as null. A fraction's rounding is
 * left alone: every JSON reader holds it as the same double.
 */
export function keepInexactNumber(_key: string, value: unknown, context: { source?: string }): unknown {
  if (typeof value !== 'number' || context.source === undefined) return value;
  if (Number.isFinite(value) && (Number.isSafeInteger(value) || !INTEGER_TEXT.test(context.source)))
    return value;
  return sourceJson.rawJSON(context.source);
}

/** JSON.parse, with numbers JavaScript cannot hold kept as they were written (keepInexactNumber). */
export function parseKeepingNumbers(text: string): unknown {
  return MAY_HOLD_INEXACT.test(text) ? sourceJson.parse(text, keepInexactNumber) : JSON.parse(text);
}

/**
 * A client's request body, already parsed, parsed again keeping the numbers JavaScript cannot hold
 * below its top level (a tool call's input, a JSON schema's bound), so that the upstream gets
 * them as the client wrote them. Top-level fields stay numbers: the gateway validates and reads
 * those (`max_tokens`, `seed`) and answers a value out of range as before.
 */
export function bodyKeepingNumbers(text: string, parsed: unknown): unknown {
  if (!MAY_HOLD_INEXACT.test(text)) return parsed;
  const exact = sourceJson.parse(text, keepInexactNumber);
  if (exact === null || typeof exact !== 'object') return exact;
  const top = exact as Record<string, unknown>;
  for (const name of Object.keys(top)) {
    const value = top[name];
    if (sourceJson.isRawJSON(value)) top[name] = Number(rawTextOf(value));
  }
  return top;
}

/**
 * A value with its kept number texts turned back into JavaScript numbers (the same object when it
 * holds none), for code that reads a schema's numbers rather than writing them on: node-llama-cpp
 * builds grammars from a tool's schema and renders it through chat templates that know no
 * JSON.rawJSON values.
 */
export function withPlainNumbers<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (sourceJson.isRawJSON(value)) return Number(rawTextOf(value)) as T;
  if (Array.isArray(value)) {
    const items = value.map(withPlainNumbers);
    return items.some((item, index) => item !== value[index]) ? (items as T) : value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const [name, item] of Object.entries(value)) {
    const plain = withPlainNumbers(item);
    if (plain === item) continue;
    copy ??= { ...(value as Record<string, unknown>) };
    copy[name] = plain;
  }
  return (copy ?? value) as T;
}
