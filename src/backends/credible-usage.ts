/** The most tokens a count may say: the bound a request's own max_tokens has (2^31-1). */
const MOST_TOKENS = 2_147_483_647;

/**
 * Whether a usage object an upstream or a module reported can be charged as it is: every
 * `*_tokens` count in it (top-level and inside its detail objects) a whole number from 0 to
 * MOST_TOKENS, or null. Usage that is not (a negative count, "5", 1e300) is treated as
 * missing, so the gateway counts the answer itself and marks it estimated: charged as given, a
 * negative count made a request free and 1e300 ran a budget into figures no report could sum.
 * Other fields are the provider's own and left alone (Groq's `queue_time` in seconds, OpenRouter's
 * `cost` in dollars).
 */
export function isCredibleUsage(usage: object): boolean {
  // More of the prompt read from cache than the prompt holds is no count either.
  const { prompt_tokens: prompt, prompt_tokens_details: details } = usage as {
    prompt_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown } | null;
  };
  const cached = details?.cached_tokens;
  if (typeof prompt === 'number' && typeof cached === 'number' && cached > prompt) return false;
  // for-in, not Object.entries: this runs on every answer, and the pairs' arrays cost ~8k
  // instructions a request (bench/instructions.mjs).
  const fields = usage as Record<string, unknown>;
  for (const field in fields) {
    if (!Object.hasOwn(fields, field)) continue;
    const value = fields[field];
    if (isTokensName(field)) {
      if (value !== null && !isCount(value)) return false;
    } else if (value !== null && typeof value === 'object') {
      const details = value as Record<string, unknown>;
      for (const name in details) {
        if (!Object.hasOwn(details, name) || !isTokensName(name)) continue;
        const detail = details[name];
        if (detail !== null && !isCount(detail)) return false;
      }
    }
  }
  return true;
}

function isTokensName(name: string): boolean {
  return name.endsWith('_tokens');
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MOST_TOKENS;
}

/**
 * Whether credible usage (isCredibleUsage) says what an answer cost: a prompt count, and for an
 * answer the model generated (`output`) an output count too. The names are the ones accounting
 * reads (`prompt_tokens ?? input_tokens`, `completion_tokens ?? output_tokens`): OpenAI's, the
 * Responses API's and Anthropic's. Usage without them (`{"completion_tokens":5}`, a
 * `"prompt_tokens":null`) is treated as missing like usage that is no counts: charged as given it
 * made the prompt free. Only for a whole usage object: Anthropic's stream parts carry a part each
 * (`message_delta` only the output). Property reads only: this runs on every answer.
 */
export function hasUsageCounts(usage: object, output: boolean): boolean {
  const counts = usage as {
    prompt_tokens?: unknown;
    input_tokens?: unknown;
    completion_tokens?: unknown;
    output_tokens?: unknown;
  };
  if (typeof (counts.prompt_tokens ?? counts.input_tokens) !== 'number') return false;
  return !output || typeof (counts.completion_tokens ?? counts.output_tokens) === 'number';
}

/** Usage the gateway charges as reported: counts only (isCredibleUsage) and the ones it needs (hasUsageCounts). */
export function isChargeableUsage(usage: object, output: boolean): boolean {
  return isCredibleUsage(usage) && hasUsageCounts(usage, output);
}
