import { z } from 'zod';
import { countField, modelField, streamFields, tokenLimitField } from './common.js';
import { promptInput } from './prompt-input.js';

export const completionRequest = z.looseObject({
  model: modelField,
  prompt: promptInput({ nonEmpty: false }),
  n: countField,
  max_tokens: tokenLimitField,
  ...streamFields,
});

export type CompletionRequest = z.output<typeof completionRequest>;
