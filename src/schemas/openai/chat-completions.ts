import { z } from 'zod';
import { countField, modelField, streamFields, tokenLimitField } from './common.js';

/** The roles OpenAI accepts, in the order its own error message lists them. */
export const CHAT_ROLES = ['system', 'assistant', 'user', 'function', 'tool', 'developer'] as const;

const message = z.looseObject({
  // OpenAI refuses any other role with a 400; forwarding one would get an empty or odd answer.
  role: z.enum(CHAT_ROLES),
});

export const chatCompletionRequest = z.looseObject({
  model: modelField,
  messages: z.array(message, { error: 'expected an array of messages' }).min(1),
  n: countField,
  max_tokens: tokenLimitField,
  max_completion_tokens: tokenLimitField,
  temperature: z.number({ error: 'expected a number' }).min(0).max(2).nullish(),
  tools: z.array(z.looseObject({ type: z.string() }), { error: 'expected an array' }).nullish(),
  ...streamFields,
});

export type ChatCompletionRequest = z.output<typeof chatCompletionRequest>;
