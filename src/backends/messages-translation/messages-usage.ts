import { countOf, objectOf } from '../../json-values.js';

/**
 * Usage in Anthropic's terms. Anthropic counts cached prompt tokens apart from `input_tokens`
 * (input + cache read + cache creation = the whole prompt), OpenAI counts them inside
 * `prompt_tokens`: so input = prompt - cached, cache read = cached, cache creation = 0 (no chat
 * server reports cache writes), output = completion (reasoning included, as Anthropic counts
 * thinking).
 */
export interface MessagesUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** From a chat `usage` object; undefined when it holds no prompt or completion count. */
export function messagesUsageOf(chatUsage: unknown): MessagesUsage | undefined {
  const usage = objectOf(chatUsage);
  const prompt = countOf(usage.prompt_tokens);
  const completion = countOf(usage.completion_tokens);
  if (prompt === undefined && completion === undefined) return undefined;
  const cached = Math.min(prompt ?? 0, countOf(objectOf(usage.prompt_tokens_details).cached_tokens) ?? 0);
  return {
    input_tokens: (prompt ?? 0) - cached,
    output_tokens: completion ?? 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

/** Counted by the gateway (the upstream reported nothing): no cache is known. */
export function countedUsage(inputTokens: number, outputTokens: number): MessagesUsage {
  return {
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
}
