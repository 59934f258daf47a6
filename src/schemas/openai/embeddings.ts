import { z } from 'zod';
import { modelField } from './common.js';
import { promptInput } from './prompt-input.js';

export const embeddingRequest = z.looseObject({
  model: modelField,
  input: promptInput({ nonEmpty: true }),
  encoding_format: z.enum(['float', 'base64'], { error: "expected 'float' or 'base64'" }).nullish(),
  dimensions: z.number({ error: 'expected a number' }).int().min(1).nullish(),
});

export type EmbeddingRequest = z.output<typeof embeddingRequest>;
