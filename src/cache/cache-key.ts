import { hash } from 'node:crypto';
import { sourceJson } from '../json-source.js';
import type { CacheableEndpoint } from './cache-policy.js';

/**
 * ③ cache, the key: SHA-256 over the endpoint, the route (the `models` entry) and the public
 * model name the request asked for, and a canonical form of the body: object keys sorted, whitespace gone, and the
 * fields that only shape delivery or bookkeeping left out. Everything else can change the
 * answer, so it counts. Not the deployment: a model served by several deployments (retries,
 * failover, weights) shares one entry whichever of them answered. Bump KEY_VERSION when the canonical form changes.
 */
const KEY_VERSION = 2;

/** Top-level fields that never change what the model answers. */
const IGNORED_FIELDS = new Set([
  'model', // replaced by the route and the public name
  'stream',
  'stream_options',
  'user',
  'safety_identifier',
  'metadata',
  'store',
  'service_tier',
  'prompt_cache_key',
  'prompt_cache_retention',
]);

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  // A number kept as the client wrote it (json-numbers.ts) is a leaf: JSON.stringify writes its text.
  if (value !== null && typeof value === 'object' && !sourceJson.isRawJSON(value)) {
    const sorted: Record<string, unknown> = {};
    for (const name of Object.keys(value).sort())
      sorted[name] = canonical((value as Record<string, unknown>)[name]);
    return sorted;
  }
  return value;
}

export function cacheKey(
  endpoint: CacheableEndpoint,
  route: string,
  publicName: string,
  body: Record<string, unknown>,
): string {
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) if (!IGNORED_FIELDS.has(name)) kept[name] = value;
  return hash('sha256', JSON.stringify([KEY_VERSION, endpoint, route, publicName, canonical(kept)]), 'hex');
}
