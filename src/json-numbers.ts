import { type KeepRule, putBackInexactNumbers } from './json-number-scan.js';
import { rawTextOf, sourceJson } from './json-source.js';

/**
 * A text that may hold a number JavaScript cannot keep: after `:`, `,` or `[`, 16 digits in a
 * row (2^53 has 16) or an exponent of three digits (past ~1.8e308 is Infinity). Most bodies hold
 * none, and this test costs far less than the scan (0.13 µs on a 200-byte chat request). It can
 * match inside a string (`"id: 1234567890123456"`), which only costs the scan, but not inside
 * base64 (an image's data), which has none of those three characters.
 */
const MAY_HOLD_INEXACT = /[:,[]\s*-?(?:\d{16}|\d+(?:\.\d+)?[eE][+-]?\d{3})/;

/**
 * JSON whose numbers the gateway writes on without reading them: JSON schemas (a chat tool's
 * `parameters`, a Messages tool's `input_schema`, a response format's `schema`) and a Messages
 * tool call's `input`. Elsewhere a value is read (a `type`, a `text`, a token id) and stays what
 * JSON.parse made of it, so a number past 2^53 there is refused or rounded as before.
 */
const SCHEMA_KEYS: ReadonlySet<string> = new Set(['parameters', 'input_schema', 'schema']);
const TOOL_CALL_TYPES: ReadonlySet<unknown> = new Set(['tool_use', 'server_tool_use']);

function isWrittenOn(key: string | number, holder: Record<string | number, unknown>): boolean {
  if (typeof key !== 'string') return false;
  return SCHEMA_KEYS.has(key) || (key === 'input' && TOOL_CALL_TYPES.has(holder.type));
}

/**
 * Numbers kept per body at most: far more than any tool call or schema holds, few enough that a
 * body of nothing else costs a few milliseconds more than its parse (5 MB of them kept took
 * 298 ms and 265 MB against the parse's 38 ms).
 */
export const MOST_KEPT_NUMBERS = 10_000;

function keepNumbers(text: string, parsed: unknown, keep: KeepRule): unknown {
  if (MAY_HOLD_INEXACT.test(text)) putBackInexactNumbers(text, parsed, keep, MOST_KEPT_NUMBERS);
  return parsed;
}

/**
 * A client's request body, already parsed, with the numbers JavaScript cannot hold (an integer
 * past 2^53, a number past ~1.8e308) put back as written inside the JSON the gateway only writes on
 * (isWrittenOn), so a tool call's 19-digit id reaches the upstream unrounded instead of rounded,
 * and 1e400 instead of null.
 */
export function bodyKeepingNumbers(text: string, parsed: unknown): unknown {
  return keepNumbers(text, parsed, isWrittenOn);
}

/**
 * JSON.parse, with every number JavaScript cannot hold below the top value kept as written: for
 * JSON that is written on whole (a tool call's arguments). Throws as JSON.parse does.
 */
export function parseKeepingNumbers(text: string): unknown {
  return keepNumbers(text, JSON.parse(text), 'all');
}

/**
 * An upstream's answer, parsed, with the numbers of its tool calls' inputs kept as written (the
 * same JSON a request keeps: isWrittenOn).
 */
export function answerKeepingNumbers(text: string): unknown {
  return bodyKeepingNumbers(text, JSON.parse(text));
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
