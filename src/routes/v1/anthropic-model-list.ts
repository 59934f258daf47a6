import { InvalidRequestError } from '../../errors.js';
import type { ModelCard } from '../../pipeline/router.js';

/**
 * `GET /v1/models` as Anthropic's API answers it (the Anthropic SDK's `models.list()`, Claude
 * Code's model check): `{"data":[{"type":"model",...}],"has_more","first_id","last_id"}`, paged by
 * `limit` (1..1000, default 20), `after_id` and `before_id`.
 */
export interface AnthropicModel {
  type: 'model';
  id: string;
  display_name: string;
  created_at: string;
}

export interface AnthropicModelPage {
  data: AnthropicModel[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 1000;

export function anthropicModel(card: ModelCard): AnthropicModel {
  return {
    type: 'model',
    id: card.id,
    display_name: card.id,
    created_at: new Date(card.created * 1000).toISOString().replace('.000Z', 'Z'),
  };
}

function limitOf(value: unknown): number {
  if (value === undefined) return DEFAULT_LIMIT;
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new InvalidRequestError(`limit: expected an integer from 1 to ${MAX_LIMIT}.`, 'limit');
  return limit;
}

export function anthropicModelPage(
  cards: readonly ModelCard[],
  query: Record<string, unknown>,
): AnthropicModelPage {
  const limit = limitOf(query.limit);
  const ids = cards.map((card) => card.id);
  const cursor = (name: 'after_id' | 'before_id'): number | undefined => {
    const id = query[name];
    if (id === undefined) return undefined;
    const at = typeof id === 'string' ? ids.indexOf(id) : -1;
    if (at === -1) throw new InvalidRequestError(`${name}: no model has the id ${JSON.stringify(id)}.`, name);
    return at;
  };
  const after = cursor('after_id');
  const before = cursor('before_id');
  let start = after === undefined ? 0 : after + 1;
  let end = before === undefined ? cards.length : before;
  // Paging backwards takes the models just before the cursor.
  if (before !== undefined && after === undefined) start = Math.max(0, end - limit);
  else end = Math.min(end, start + limit);
  const data = cards.slice(start, Math.max(start, end)).map(anthropicModel);
  const hasMore = before !== undefined && after === undefined ? start > 0 : end < (before ?? cards.length);
  return { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}
