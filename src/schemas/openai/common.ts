import { z } from 'zod';

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
