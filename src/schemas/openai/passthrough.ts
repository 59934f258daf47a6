import { z } from 'zod';
import { modelField } from './common.js';

/**
 * Bodies the gateway only routes. `model` may be absent where OpenAI has a default; the
 * gateway then routes by that default name without writing it into the body.
 */
export const imageGenerationRequest = z.looseObject({
  model: modelField.nullish(),
  prompt: z.string({ error: 'expected a string' }).min(1),
  stream: z.boolean({ error: 'expected a boolean' }).nullish(),
});

export const moderationRequest = z.looseObject({
  model: modelField.nullish(),
  input: z.union([z.string(), z.array(z.unknown())], { error: 'expected a string or an array' }),
});

export const speechRequest = z.looseObject({
  model: modelField,
  input: z.string({ error: 'expected a string' }),
  voice: z.union([z.string(), z.looseObject({})], { error: 'expected a voice' }),
});
