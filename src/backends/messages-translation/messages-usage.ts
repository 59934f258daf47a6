import { countOf, isObject, objectOf } from '../../json-values.js';
import { isChargeableUsage } from '../credible-usage.js';

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

/**
 * From a chat `usage` object; undefined (the gateway counts, and records it as estimated) unless it
 * is counts (isCredibleUsage) holding both a prompt and a completion count: one missing, given as
 * 0 here, made the prompt (or the answer) free, as the gateway would not charge on chat itself.
 */
export function messagesUsageOf(chatUsage: unknown): MessagesUsage | undefined {
  if (!isObject(chatUsage) || !isChargeableUsage(chatUsage, true)) return undefined;
  const prompt = countOf(chatUsage.prompt_tokens ?? chatUsage.input_tokens) ?? 0;
  const completion = countOf(chatUsage.completion_tokens ?? chatUsage.output_tokens) ?? 0;
  const cached = Math.min(prompt, countOf(objectOf(chatUsage.prompt_tokens_details).cached_tokens) ?? 0);
  return {
    input_tokens: prompt - cached,
    output_tokens: completion,
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
