/** Anthropic's usage object (`message_start`, `message_delta`, a JSON answer). */
export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  output_tokens_details?: { thinking_tokens?: number | null } | null;
  [field: string]: unknown;
}

/** OpenAI's usage object as the gateway reports it for an Anthropic answer. */
export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  completion_tokens_details?: { reasoning_tokens: number };
  /** Anthropic's own counts, kept so that accounting can price cache writes and reads apart. */
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** Cache writes by lifetime (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`), priced apart. */
  cache_creation?: Record<string, unknown>;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

/**
 * Later counts win: `message_delta` repeats (cumulatively) what `message_start` said, and newer
 * API versions send the input counts there too. Fields it leaves out keep their earlier value.
 */
export function mergeUsage(
  earlier: AnthropicUsage,
  later: AnthropicUsage | undefined | null,
): AnthropicUsage {
  if (!later) return earlier;
  const merged: AnthropicUsage = { ...earlier };
  for (const [field, value] of Object.entries(later))
    if (value !== null && value !== undefined) merged[field] = value;
  return merged;
}

/**
 * OpenAI counts cached prompt tokens inside `prompt_tokens`; Anthropic counts them apart from
 * `input_tokens`. So prompt = input + cache reads + cache writes, and `cached_tokens` = reads.
 */
export function toChatUsage(usage: AnthropicUsage): ChatUsage {
  const input = count(usage.input_tokens);
  const cacheRead = count(usage.cache_read_input_tokens);
  const cacheWrite = count(usage.cache_creation_input_tokens);
  const output = count(usage.output_tokens);
  const prompt = input + cacheRead + cacheWrite;
  const reasoning = count(usage.output_tokens_details?.thinking_tokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: output,
    total_tokens: prompt + output,
    prompt_tokens_details: { cached_tokens: cacheRead },
    ...(reasoning > 0 ? { completion_tokens_details: { reasoning_tokens: reasoning } } : {}),
    cache_creation_input_tokens: cacheWrite,
    cache_read_input_tokens: cacheRead,
    ...(isRecord(usage.cache_creation) ? { cache_creation: usage.cache_creation } : {}),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
