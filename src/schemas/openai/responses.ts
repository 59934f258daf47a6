import { z } from 'zod';
import { modelField, tokenLimitField } from './common.js';

export const responseRequest = z.looseObject({
  model: modelField,
  input: z
    .union([z.string(), z.array(z.unknown())], { error: 'expected a string or an array of input items' })
    .optional(),
  max_output_tokens: tokenLimitField,
  stream: z.boolean({ error: 'expected a boolean' }).nullish(),
});

export type ResponseRequest = z.output<typeof responseRequest>;
