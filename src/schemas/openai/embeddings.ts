import { z } from 'zod';
import { modelField } from './common.js';

const tokens = z.array(z.number().int());

export const embeddingRequest = z.looseObject({
  model: modelField,
  input: z.union([z.string(), z.array(z.string()).min(1), tokens.min(1), z.array(tokens).min(1)], {
    error: 'expected a string, an array of strings, or token arrays',
  }),
  encoding_format: z.enum(['float', 'base64'], { error: "expected 'float' or 'base64'" }).nullish(),
  dimensions: z.number({ error: 'expected a number' }).int().min(1).nullish(),
});

export type EmbeddingRequest = z.output<typeof embeddingRequest>;
