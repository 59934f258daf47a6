import { countTokens } from 'gpt-tokenizer';
import type { JsonEndpoint } from '../backends/backend.js';

/**
 * Prompt tokens of a request before it is sent, for quota reservations. OpenAI models are
 * counted with their real tokenizer (o200k_base); other models with it too, which is close for
 * Llama-style BPEs and errs high for most. Reservations are settled with the upstream's real
 * usage, so an estimate only needs to be near, never exact.
 */
const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map(textOf).join('');
  if (content !== null && typeof content === 'object') {
    const part = content as { text?: unknown; type?: unknown };
    // Images and audio are priced by the provider in ways the text does not show; the
    // settlement corrects the estimate.
    return typeof part.text === 'string' ? part.text : '';
  }
  return '';
}

export function estimateChatPromptTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let tokens = REPLY_PRIMING;
  for (const message of messages) {
    const m = message as { role?: unknown; content?: unknown; name?: unknown; tool_calls?: unknown };
    tokens += PER_MESSAGE + countTokens(textOf(m.content));
    if (typeof m.role === 'string') tokens += countTokens(m.role);
    if (typeof m.name === 'string') tokens += countTokens(m.name) + 1;
    if (m.tool_calls !== undefined) tokens += countTokens(JSON.stringify(m.tool_calls));
  }
  return tokens;
}

export function estimateTextTokens(input: unknown): number {
  if (typeof input === 'string') return countTokens(input);
  if (Array.isArray(input)) {
    // Token arrays count as themselves; strings and message items by their text.
    if (input.every((item) => typeof item === 'number')) return input.length;
    return input.reduce<number>((sum, item) => sum + estimateTextTokens(item), 0);
  }
  return countTokens(textOf(input));
}

/** The request's own cap on output tokens, if it set one. */
export function requestedOutputTokens(body: Record<string, unknown>): number | undefined {
  for (const field of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const value = body[field];
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  }
  return undefined;
}

/** Prompt tokens the request will send, counted before it goes. */
export function estimatePromptTokens(endpoint: JsonEndpoint, body: Record<string, unknown>): number {
  switch (endpoint) {
    case 'chat.completions':
      return estimateChatPromptTokens(body.messages);
    case 'completions':
      return estimateTextTokens(body.prompt);
    case 'embeddings':
      return estimateTextTokens(body.input);
    case 'responses':
      return estimateTextTokens(body.input) + estimateTextTokens(body.instructions ?? '');
    default:
      return 0;
  }
}
