import { z } from 'zod';
import { InvalidRequestError } from '../../errors.js';

/** What every routed body carries. Bodies stay loose: unknown fields are the upstream's business. */
export const modelField = z.string({ error: 'expected a string' }).min(1, 'must not be empty');

export const streamFields = {
  stream: z.boolean({ error: 'expected a boolean' }).nullish(),
  stream_options: z
    .looseObject({ include_usage: z.boolean({ error: 'expected a boolean' }).nullish() })
    .nullish(),
};

export const countField = z
  .number({ error: 'expected a number' })
  .int('expected an integer')
  .min(1)
  .max(128)
  .nullish();
export const tokenLimitField = z
  .number({ error: 'expected a number' })
  .int('expected an integer')
  .min(1)
  .nullish();

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
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new InvalidRequestError('The request body is invalid.');
  const param = paramOf(issue.path);
  const missing = issue.code === 'invalid_type' && issue.input === undefined;
  if (missing) throw new InvalidRequestError(`Missing required parameter: '${param}'.`, param);
  throw new InvalidRequestError(`Invalid value for '${param}': ${issue.message}.`, param);
}
