import { parseKeepingNumbers } from '../../json-numbers.js';
import { isObject } from '../../json-values.js';

/**
 * A chat tool call's `arguments` (a JSON string, as the model wrote it) as a tool_use `input`,
 * which must be an object. Models do write broken JSON now and then; such arguments become `{}`
 * (the client's tool then reports the missing parameters to the model, which can try again)
 * rather than an answer no Anthropic client can parse. Numbers JavaScript cannot hold (an id past
 * 2^53, an exponent past Infinity) are kept as the model wrote them (json-numbers.ts), so the
 * input, written out with JSON.stringify, holds the model's digits rather than our rounding of
 * them (or `null` for Infinity).
 */
export function toolInputOf(args: string): { input: Record<string, unknown>; json: string } {
  if (args.trim() === '') return { input: {}, json: '{}' };
  try {
    const parsed = parseKeepingNumbers(args);
    if (isObject(parsed)) return { input: parsed, json: args };
  } catch {
    // Broken JSON: below.
  }
  return { input: {}, json: '{}' };
}
