import type { TokenCounter } from '../usage/token-counter.js';
import { estimateTextTokens } from '../usage/token-estimate.js';

/**
 * Embeddings are cached per input item: a batch is split into one entry per input (the same
 * entry a one-input request for that text makes), so a batch that repeats earlier inputs only
 * sends the new ones upstream. These helpers cut an upstream batch answer into single-item
 * answers and put a batch answer back together from them.
 */
type Json = Record<string, unknown>;

interface EmbeddingItem {
  object?: unknown;
  index?: unknown;
  embedding?: unknown;
  [field: string]: unknown;
}

/**
 * True for an input list of strings or token arrays (one item too: `["x"]` and `"x"` are then the
 * same entry).
 */
export function splitsIntoItems(body: Json): body is Json & { input: unknown[] } {
  return (
    Array.isArray(body.input) &&
    body.input.length > 0 &&
    body.input.every((item) => typeof item === 'string' || Array.isArray(item))
  );
}

/**
 * The answer a one-input request for `input` would have had, from one item of a batch answer.
 * `counter`: one per batch, so its bound on exact counting holds for the whole request.
 */
export function singleItemAnswer(
  batch: Json,
  item: EmbeddingItem,
  input: unknown,
  counter?: TokenCounter,
): Buffer {
  const tokens = estimateTextTokens(input, counter);
  return Buffer.from(
    JSON.stringify({
      object: 'list',
      data: [{ ...item, index: 0 }],
      model: batch.model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    }),
  );
}

/** The items of a batch answer by their index, or undefined when it is not a list of embeddings. */
export function itemsOf(answer: Json): EmbeddingItem[] | undefined {
  if (!Array.isArray(answer.data)) return undefined;
  const items: EmbeddingItem[] = [];
  for (const entry of answer.data) {
    const item = entry as EmbeddingItem;
    if (typeof item.index !== 'number' || item.embedding === undefined) return undefined;
    items[item.index] = item;
  }
  return items;
}

function usageOf(answer: Json): { prompt_tokens: number; total_tokens: number } {
  const usage = (answer.usage ?? {}) as { prompt_tokens?: unknown; total_tokens?: unknown };
  const prompt = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
  return {
    prompt_tokens: prompt,
    total_tokens: typeof usage.total_tokens === 'number' ? usage.total_tokens : prompt,
  };
}

/**
 * The batch answer: item i from `parts[i]` (a stored single-item answer, or an item of the
 * upstream's answer for the inputs that missed), usage summed as the upstream would report it.
 */
export function mergeItems(parts: Array<{ answer: Json; item: EmbeddingItem }>, model: unknown): Buffer {
  let prompt = 0;
  let total = 0;
  const counted = new Set<Json>();
  const data = parts.map(({ answer, item }, index) => {
    if (!counted.has(answer)) {
      counted.add(answer);
      const usage = usageOf(answer);
      prompt += usage.prompt_tokens;
      total += usage.total_tokens;
    }
    return { ...item, index };
  });
  return Buffer.from(
    JSON.stringify({ object: 'list', data, model, usage: { prompt_tokens: prompt, total_tokens: total } }),
  );
}
