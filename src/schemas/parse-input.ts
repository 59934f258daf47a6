import type { z } from 'zod';
import { InvalidRequestError } from '../errors.js';

function paramOf(path: PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/**
 * Validates what the gateway reads and turns the first problem into OpenAI's 400, with
 * `param` naming the field the way OpenAI does (`messages[0].role`).
 */
export function parseRequestBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError('The request body must be a JSON object.');
  }
  return parseInput(schema, body);
}

/** Query strings and bodies alike: the first problem becomes a 400 naming its field. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new InvalidRequestError('The request body is invalid.');
  if (issue.code === 'unrecognized_keys') {
    const param = paramOf([...issue.path, issue.keys[0] ?? '']);
    throw new InvalidRequestError(`Unrecognized request argument supplied: ${issue.keys.join(', ')}.`, param);
  }
  const param = paramOf(issue.path);
  const missing = issue.code === 'invalid_type' && issue.input === undefined;
  if (missing) throw new InvalidRequestError(`Missing required parameter: '${param}'.`, param);
  throw new InvalidRequestError(`Invalid value for '${param}': ${issue.message}.`, param);
}
