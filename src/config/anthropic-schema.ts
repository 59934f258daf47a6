import { z } from 'zod';
import { poolSchema, timeoutsSchema } from './upstream-http-schema.js';

/* The `anthropic` backend's section. Its own file so schema.ts only gains one union member. */

const positiveTokens = z.number().int().positive();

/** Thinking budgets (tokens) that OpenAI's `reasoning_effort` asks for. */
const thinkingBudgetsSchema = z
  .object({
    low: positiveTokens.min(1_024).default(1_024),
    medium: positiveTokens.min(1_024).default(4_096),
    high: positiveTokens.min(1_024).default(16_384),
  })
  .strict()
  .prefault({});

export const anthropicBackendSchema = z
  .object({
    type: z.literal('anthropic'),
    /** Without `/v1`, like the Anthropic SDK's base URL (a trailing `/v1` is accepted too). */
    baseUrl: z
      .url({ protocol: /^https?$/, error: 'expected an http(s) URL' })
      .refine((url) => !url.includes('?') && !url.includes('#'), 'a base URL takes no query or fragment')
      .default('https://api.anthropic.com'),
    // Empty means none, so `${ANTHROPIC_API_KEY:-}` can leave it unset.
    apiKey: z
      .string()
      .optional()
      .transform((key) => key || undefined),
    /** Several keys, used by weight, as for `openai` (refused keys out, rate-limited ones rest). */
    apiKeys: z
      .array(z.object({ key: z.string().min(1), weight: z.number().positive().default(1) }).strict())
      .min(1)
      .optional(),
    /** The `anthropic-version` header. */
    anthropicVersion: z.string().min(1).default('2023-06-01'),
    /** `anthropic-beta` flags sent with every request. */
    betas: z.array(z.string().min(1)).default([]),
    /** `max_tokens` when the request sets none (the Messages API requires one). */
    maxTokens: positiveTokens.default(4_096),
    /** The same per upstream model: an exact name, else the longest `<name>-...` prefix. */
    modelMaxTokens: z.record(z.string().min(1), positiveTokens).default({}),
    thinkingBudgets: thinkingBudgetsSchema,
    headers: z.record(z.string(), z.string()).default({}),
    timeouts: timeoutsSchema,
    pool: poolSchema,
  })
  .strict();

export type AnthropicBackendConfig = z.output<typeof anthropicBackendSchema>;
