/**
 * Default prices in USD per 1M tokens, the one data file the gateway ships. Operators override
 * or extend it in config; a model found in neither costs 0 and its usage is flagged `unpriced`.
 * Figures are the providers' published list prices as of 2025; check them before billing anyone.
 */
export interface ModelPrice {
  input: number;
  /** Prompt tokens served from the provider's prompt cache; defaults to `input`. */
  cachedInput?: number;
  /**
   * Prompt tokens written to the provider's prompt cache (Anthropic's `cache_creation_input_tokens`,
   * 5-minute lifetime); defaults to `input`.
   */
  cacheWriteInput?: number;
  /** Cache writes with a 1-hour lifetime (`cache_creation.ephemeral_1h_input_tokens`); defaults to `cacheWriteInput`. */
  cacheWriteInput1h?: number;
  output: number;
}

export const DEFAULT_PRICES: Readonly<Record<string, ModelPrice>> = {
  'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10 },
  'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2 },
  'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4 },
  'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8 },
  'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4 },
  'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
  o3: { input: 2, cachedInput: 0.5, output: 8 },
  'o3-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
  'o4-mini': { input: 1.1, cachedInput: 0.275, output: 4.4 },
  'text-embedding-3-small': { input: 0.02, output: 0 },
  'text-embedding-3-large': { input: 0.13, output: 0 },
  'claude-opus-4': { input: 15, cachedInput: 1.5, cacheWriteInput: 18.75, cacheWriteInput1h: 30, output: 75 },
  'claude-sonnet-4': { input: 3, cachedInput: 0.3, cacheWriteInput: 3.75, cacheWriteInput1h: 6, output: 15 },
  'claude-3-7-sonnet': {
    input: 3,
    cachedInput: 0.3,
    cacheWriteInput: 3.75,
    cacheWriteInput1h: 6,
    output: 15,
  },
  'claude-3-5-haiku': {
    input: 0.8,
    cachedInput: 0.08,
    cacheWriteInput: 1,
    cacheWriteInput1h: 1.6,
    output: 4,
  },
  // Claude: `cachedInput` is the cache-hit price; cache writes (1.25x input for 5 min, 2x for 1 h)
  // are priced as plain input. Names match by prefix, so each 4.x step that changed price is listed.
  'claude-opus-4-6': { input: 5, cachedInput: 0.5, cacheWriteInput: 6.25, cacheWriteInput1h: 10, output: 25 },
  'claude-opus-4-5': { input: 5, cachedInput: 0.5, cacheWriteInput: 6.25, cacheWriteInput1h: 10, output: 25 },
  'claude-opus-4-1': {
    input: 15,
    cachedInput: 1.5,
    cacheWriteInput: 18.75,
    cacheWriteInput1h: 30,
    output: 75,
  },
  'claude-sonnet-4-6': {
    input: 3,
    cachedInput: 0.3,
    cacheWriteInput: 3.75,
    cacheWriteInput1h: 6,
    output: 15,
  },
  'claude-sonnet-4-5': {
    input: 3,
    cachedInput: 0.3,
    cacheWriteInput: 3.75,
    cacheWriteInput1h: 6,
    output: 15,
  },
  'claude-haiku-4-5': { input: 1, cachedInput: 0.1, cacheWriteInput: 1.25, cacheWriteInput1h: 2, output: 5 },
  'claude-3-5-sonnet': {
    input: 3,
    cachedInput: 0.3,
    cacheWriteInput: 3.75,
    cacheWriteInput1h: 6,
    output: 15,
  },
  'claude-3-opus': { input: 15, cachedInput: 1.5, cacheWriteInput: 18.75, cacheWriteInput1h: 30, output: 75 },
  'claude-3-haiku': {
    input: 0.25,
    cachedInput: 0.03,
    cacheWriteInput: 0.3125,
    cacheWriteInput1h: 0.5,
    output: 1.25,
  },
};
