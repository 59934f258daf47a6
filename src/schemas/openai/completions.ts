import { z } from 'zod';
import { countField, modelField, streamFields, tokenLimitField } from './common.js';

const tokens = z.array(z.number().int());

export const completionRequest = z.looseObject({
  model: modelField,
  prompt: z.union([z.string(), z.array(z.string()), tokens, z.array(tokens)], {
    error: 'expected a string, an array of strings, or token arrays',
  }),
  n: countField,
  max_tokens: tokenLimitField,
  ...streamFields,
});

export type CompletionRequest = z.output<typeof completionRequest>;
