import { lookUpByModelPrefix } from '../config/model-prefix-lookup.js';
import type { TokenUsage } from '../pipeline/usage.js';
import { DEFAULT_PRICES, type ModelPrice } from './price-table.js';

export interface Cost {
  /** Millionths of a dollar: integers add up exactly, across instances, in Redis counters. */
  usdMicros: number;
  /** No price known for the model: it cost 0 here, and usage records say so. */
  unpriced: boolean;
}

/**
 * The price for an upstream model name: an exact entry, else the longest entry the name starts
 * with (`gpt-4o-2024-08-06` is priced as `gpt-4o`, `claude-sonnet-4-20250514` as `claude-sonnet-4`).
 */
export function priceFor(
  model: string,
  overrides: Readonly<Record<string, ModelPrice>> = {},
): ModelPrice | undefined {
  return lookUpByModelPrefix({ ...DEFAULT_PRICES, ...overrides }, model);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/** Cost of one answer from its usage, Chat/Completions or Responses API names alike. */
export function costOf(
  model: string,
  usage: TokenUsage,
  overrides?: Readonly<Record<string, ModelPrice>>,
): Cost {
  const price = priceFor(model, overrides);
  if (!price) return { usdMicros: 0, unpriced: true };
  const prompt = count(usage.prompt_tokens ?? usage.input_tokens);
  const completion = count(usage.completion_tokens ?? usage.output_tokens);
  const details = (usage.prompt_tokens_details ?? usage.input_tokens_details) as
    | { cached_tokens?: unknown; cache_write_tokens?: unknown }
    | undefined;
  const cached = Math.min(count(details?.cached_tokens), prompt);
  // Anthropic's cache writes are inside the prompt too (its adapter adds them) and cost more;
  // the Responses API names them `input_tokens_details.cache_write_tokens`.
  const writes = Math.min(
    count(usage.cache_creation_input_tokens ?? details?.cache_write_tokens),
    prompt - cached,
  );
  const hourly = Math.min(
    count(
      (usage.cache_creation as { ephemeral_1h_input_tokens?: unknown } | undefined)
        ?.ephemeral_1h_input_tokens,
    ),
    writes,
  );
  const writePrice = price.cacheWriteInput ?? price.input;
  // Prices are per 1M tokens and the result is in micro-dollars: the two millions cancel out.
  const micros =
    (prompt - cached - writes) * price.input +
    cached * (price.cachedInput ?? price.input) +
    (writes - hourly) * writePrice +
    hourly * (price.cacheWriteInput1h ?? writePrice) +
    completion * price.output;
  // Counters are exact integers: a sum past the safe range (absurd usage or prices) is clamped.
  const usdMicros = Number.isFinite(micros)
    ? Math.min(Math.round(micros), Number.MAX_SAFE_INTEGER)
    : Number.MAX_SAFE_INTEGER;
  return { usdMicros: Math.max(0, usdMicros), unpriced: false };
}
