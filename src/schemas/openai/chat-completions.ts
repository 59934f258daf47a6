import { z } from 'zod';
import { countField, modelField, streamFields, tokenLimitField } from './common.js';

const message = z.looseObject({
  role: z.string({ error: 'expected a string' }).min(1),
});

export const chatCompletionRequest = z.looseObject({
  model: modelField,
  messages: z.array(message, { error: 'expected an array' }).min(1, 'expected at least one message'),
  n: countField,
  max_tokens: tokenLimitField,
  max_completion_tokens: tokenLimitField,
  temperature: z.number({ error: 'expected a number' }).min(0).max(2).nullish(),
  tools: z.array(z.looseObject({ type: z.string() }), { error: 'expected an array' }).nullish(),
  ...streamFields,
});

export type ChatCompletionRequest = z.output<typeof chatCompletionRequest>;
