import type { JsonEndpoint } from '../backends/backend.js';
import { TokenCounter } from './token-counter.js';

/**
 * Prompt tokens of a request before it is sent, for quota reservations. OpenAI models are
 * counted with their real tokenizer (o200k_base); other models with it too, which is close for
 * Llama-style BPEs and errs high for most. Reservations are settled with the upstream's real
 * usage, so an estimate only needs to be near, never exact. Every text of one request goes
 * through one TokenCounter, whose bound on exact counting holds for the request as a whole
 * (token-counter.ts).
 */
const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

/**
 * The most output tokens one request may ask for (max_tokens and its kin): far above any
 * model's limit, and small enough that estimates (x n, x prices) stay exact integers.
 */
export const MAX_OUTPUT_TOKENS = 2_147_483_647;

/** The text parts of a content value, in order (nested arrays are flattened without recursion). */
function textsOf(content: unknown, into: string[]): void {
  const stack: unknown[] = [content];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') into.push(value);
    else if (Array.isArray(value)) for (let i = value.length - 1; i >= 0; i--) stack.push(value[i]);
    else if (value !== null && typeof value === 'object') {
      // Images and audio are priced by the provider in ways the text does not show; the
      // settlement corrects the estimate.
      const text = (value as { text?: unknown }).text;
      if (typeof text === 'string') into.push(text);
    }
  }
}

export function estimateChatPromptTokens(messages: unknown, counter = new TokenCounter()): number {
  if (!Array.isArray(messages)) return 0;
  let tokens = REPLY_PRIMING;
  const texts: string[] = [];
  for (const message of messages) {
    const m = (message ?? {}) as { role?: unknown; content?: unknown; name?: unknown; tool_calls?: unknown };
    tokens += PER_MESSAGE;
    textsOf(m.content, texts);
    if (typeof m.role === 'string') texts.push(m.role);
    if (typeof m.name === 'string') {
      texts.push(m.name);
      tokens += 1;
    }
    if (m.tool_calls !== undefined) texts.push(JSON.stringify(m.tool_calls));
  }
  return tokens + counter.count(texts);
}

/** Token arrays count as themselves; strings and message items by their text. */
function collectText(input: unknown, texts: string[]): number {
  if (Array.isArray(input) && input.length > 0 && input.every((item) => typeof item === 'number'))
    return input.length;
  if (Array.isArray(input)) {
    let tokens = 0;
    for (const item of input) {
      if (Array.isArray(item) && item.length > 0 && item.every((n) => typeof n === 'number'))
        tokens += item.length;
      else textsOf(item, texts);
    }
    return tokens;
  }
  textsOf(input, texts);
  return 0;
}

export function estimateTextTokens(input: unknown, counter = new TokenCounter()): number {
  const texts: string[] = [];
  const tokens = collectText(input, texts);
  return tokens + counter.count(texts);
}

const OUTPUT_FIELDS: Partial<Record<JsonEndpoint, readonly string[]>> = {
  'chat.completions': ['max_completion_tokens', 'max_tokens'],
  completions: ['max_tokens'],
  responses: ['max_output_tokens'],
  messages: ['max_tokens'],
};

/**
 * Anthropic's Messages: the system prompt, every block's text (tool inputs as their JSON, tool
 * results by their content, thinking by its text) and the tool schemas. Claude Code's prompts are
 * mostly tool results and tool schemas, which a count of `text` fields alone would miss.
 */
export function estimateMessagesPromptTokens(
  body: Record<string, unknown>,
  counter = new TokenCounter(),
): number {
  const texts: string[] = [];
  textsOf(body.system, texts);
  let tokens = REPLY_PRIMING;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const message of messages) {
    tokens += PER_MESSAGE;
    const content = (message as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) {
      textsOf(content, texts);
      continue;
    }
    for (const block of content) {
      const b = (block ?? {}) as {
        type?: unknown;
        input?: unknown;
        content?: unknown;
        thinking?: unknown;
        name?: unknown;
      };
      if (b.type === 'tool_use' || b.type === 'server_tool_use') {
        if (typeof b.name === 'string') texts.push(b.name);
        texts.push(JSON.stringify(b.input ?? {}));
      } else if (b.type === 'tool_result') textsOf(b.content, texts);
      else if (b.type === 'thinking' && typeof b.thinking === 'string') texts.push(b.thinking);
      else textsOf(block, texts);
    }
  }
  if (Array.isArray(body.tools)) texts.push(JSON.stringify(body.tools));
  return tokens + counter.count(texts);
}

/**
 * Definitions a model reads as part of its prompt though no message holds them: tool and function
 * schemas, a response format's schema. Counted as their JSON, which the provider renders into the
 * prompt in a form of its own (near in size): without them an agent's request with a dozen tools
 * was estimated at a twentieth of its prompt, and token-rate limits let through three times theirs.
 */
function definitionTokens(
  body: Record<string, unknown>,
  fields: readonly string[],
  counter: TokenCounter,
): number {
  const texts: string[] = [];
  for (const field of fields) {
    const value = body[field];
    if (value !== null && typeof value === 'object') texts.push(JSON.stringify(value));
  }
  return texts.length === 0 ? 0 : counter.count(texts);
}

const CHAT_DEFINITIONS = ['tools', 'functions', 'response_format'];
const RESPONSES_DEFINITIONS = ['tools', 'text'];

/**
 * The request's own cap on output tokens, if it set one. Only the fields its endpoint defines;
 * beyond MAX_OUTPUT_TOKENS (refused by the schemas) it reads as that maximum, so no estimate
 * built from it can leave the safe integers.
 */
export function requestedOutputTokens(
  body: Record<string, unknown>,
  endpoint: JsonEndpoint = 'chat.completions',
): number | undefined {
  for (const field of OUTPUT_FIELDS[endpoint] ?? []) {
    const value = body[field];
    if (typeof value === 'number' && Number.isInteger(value) && value > 0)
      return Math.min(value, MAX_OUTPUT_TOKENS);
  }
  return undefined;
}

/**
 * Prompt tokens the request will send, counted before it goes. Give `counter` a memory (the
 * quota stage does) so texts the team sent before are not counted again.
 */
export function estimatePromptTokens(
  endpoint: JsonEndpoint,
  body: Record<string, unknown>,
  counter = new TokenCounter(),
): number {
  switch (endpoint) {
    case 'chat.completions':
      return (
        estimateChatPromptTokens(body.messages, counter) + definitionTokens(body, CHAT_DEFINITIONS, counter)
      );
    case 'completions':
      return estimateTextTokens(body.prompt, counter);
    case 'embeddings':
      return estimateTextTokens(body.input, counter);
    case 'messages':
    case 'messages.count_tokens':
      return estimateMessagesPromptTokens(body, counter);
    case 'responses': {
      const texts: string[] = [];
      const tokens = collectText(body.input, texts) + collectText(body.instructions ?? '', texts);
      return tokens + counter.count(texts) + definitionTokens(body, RESPONSES_DEFINITIONS, counter);
    }
    default:
      return 0;
  }
}
