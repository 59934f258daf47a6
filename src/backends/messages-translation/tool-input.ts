import { sourceJson } from '../../json-numbers.js';
import { isObject } from './json-values.js';

/**
 * A number the model wrote that JavaScript cannot hold as written (an integer past 2^53, a
 * 20-digit fraction, an exponent past Infinity) is kept as its text, so the tool_use input the
 * client reads holds the model's digits rather than our rounding of them (or `null` for Infinity).
 * Stricter than a request body's rule (json-numbers.ts): any text JSON.stringify would write
 * otherwise (1.10, -0) is kept too, since nothing here reads the numbers, and the arguments are
 * parsed whole anyway.
 */
function exactNumbers(_key: string, value: unknown, context: { source?: string }): unknown {
  if (typeof value !== 'number' || context.source === undefined) return value;
  return JSON.stringify(value) === context.source ? value : sourceJson.rawJSON(context.source);
}

/**
 * A chat tool call's `arguments` (a JSON string, as the model wrote it) as a tool_use `input`,
 * which must be an object. Models do write broken JSON now and then; such arguments become `{}`
 * (the client's tool then reports the missing parameters to the model, which can try again)
 * rather than an answer no Anthropic client can parse. The input is meant to be written out with
 * JSON.stringify, which writes kept number texts as they were.
 */
export function toolInputOf(args: string): { input: Record<string, unknown>; json: string } {
  if (args.trim() === '') return { input: {}, json: '{}' };
  try {
    const parsed = sourceJson.parse(args, exactNumbers);
    if (isObject(parsed)) return { input: parsed, json: args };
  } catch {
    // Broken JSON: below.
  }
  return { input: {}, json: '{}' };
}
