import { z } from 'zod';
import { modelField, tokenLimitField } from '../openai/common.js';

/**
 * Anthropic's Messages API request (`POST /v1/messages`), as far as the gateway reads it: for
 * routing, quotas and the translation to chat completions. Loose everywhere: fields and block
 * types the gateway does not know are forwarded to an Anthropic backend untouched (Claude Code
 * sends `context_management`, `output_config` and betas the gateway has never heard of).
 *
 * `content` and `system` may be a string or an array of blocks; the parsed output always holds
 * the array (a string is one text block), the body forwarded stays as the client sent it.
 */

/** Roles a Messages conversation may hold. `system` is Claude Code's mid-conversation system message. */
export const MESSAGE_ROLES = ['user', 'assistant', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

const asTextBlocks = (value: unknown) =>
  typeof value === 'string' ? [{ type: 'text', text: value }] : value;

export const contentBlock = z.looseObject({ type: z.string({ error: 'expected a string' }) });
export type ContentBlock = z.output<typeof contentBlock>;

const textBlock = z.looseObject({
  type: z.literal('text', { error: "expected 'text' (system blocks are text blocks)" }),
  text: z.string({ error: 'expected a string' }),
});

const content = z.preprocess(
  asTextBlocks,
  z.array(contentBlock, { error: 'expected a string or an array of content blocks' }),
);

/**
 * Claude Code retries a conversation without its mid-conversation system message only when the
 * 400 says "Unexpected role": any other role is refused in those words.
 */
const role = z
  .string({ error: 'expected a string' })
  .refine((value): value is MessageRole => (MESSAGE_ROLES as readonly string[]).includes(value), {
    error: (issue) =>
      `Unexpected role ${JSON.stringify(issue.input)}. Allowed roles are "user", "assistant" and "system"`,
  });

const message = z.looseObject({ role, content });
export type InputMessage = z.output<typeof message>;

const tool = z.looseObject({
  name: z.string({ error: 'expected a string' }).min(1, 'must not be empty'),
  type: z.string({ error: 'expected a string' }).nullish(),
});

const toolChoice = z
  .looseObject({
    type: z.enum(['auto', 'any', 'tool', 'none']),
    name: z.string({ error: 'expected a string' }).optional(),
    disable_parallel_tool_use: z.boolean({ error: 'expected a boolean' }).optional(),
  })
  .refine((choice) => choice.type !== 'tool' || typeof choice.name === 'string', {
    error: "a tool_choice of type 'tool' needs the tool's name",
    path: ['name'],
  });

const unitInterval = z.number({ error: 'expected a number' }).min(0).max(1).nullish();

/** What a Messages request and a count_tokens request share. */
const conversationFields = {
  model: modelField,
  messages: z.array(message, { error: 'expected an array of messages' }).min(1),
  system: z
    .preprocess(asTextBlocks, z.array(textBlock, { error: 'expected a string or an array of text blocks' }))
    .optional(),
  tools: z.array(tool, { error: 'expected an array of tools' }).nullish(),
  tool_choice: toolChoice.nullish(),
  thinking: z.looseObject({ type: z.string({ error: 'expected a string' }) }).nullish(),
};

export const messagesRequest = z.looseObject({
  ...conversationFields,
  // Required by Anthropic: no default is injected, the client must say.
  max_tokens: tokenLimitField.unwrap().unwrap(),
  stop_sequences: z
    .array(z.string({ error: 'expected a string' }), { error: 'expected an array of strings' })
    .nullish(),
  temperature: unitInterval,
  top_p: unitInterval,
  top_k: z.number({ error: 'expected a number' }).int('expected an integer').min(0).nullish(),
  metadata: z.looseObject({ user_id: z.string({ error: 'expected a string' }).nullish() }).nullish(),
  stream: z.boolean({ error: 'expected a boolean' }).nullish(),
});

export type MessagesRequest = z.output<typeof messagesRequest>;

/** `POST /v1/messages/count_tokens`: the conversation without the generation settings. */
export const countTokensRequest = z.looseObject(conversationFields);

export type CountTokensRequest = z.output<typeof countTokensRequest>;
