import { z } from 'zod';
import { MAX_OUTPUT_TOKENS } from '../../usage/token-estimate.js';

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
/**
 * max_tokens and its kin. Above MAX_OUTPUT_TOKENS no model answers and the gateway could not
 * account for the estimate (x n, x prices) in exact integers: a 400 naming the field.
 */
const TOKEN_LIMIT_RANGE = `expected an integer from 1 to ${MAX_OUTPUT_TOKENS}`;
export const tokenLimitField = z
  .number({ error: 'expected a number' })
  .int(TOKEN_LIMIT_RANGE)
  .min(1, TOKEN_LIMIT_RANGE)
  .max(MAX_OUTPUT_TOKENS, TOKEN_LIMIT_RANGE)
  .nullish();
