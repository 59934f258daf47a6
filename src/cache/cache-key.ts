import { createHash } from 'node:crypto';
import type { CacheableEndpoint } from './cache-policy.js';

/**
 * ③ cache, the key: SHA-256 over the endpoint, the deployment and upstream model the request
 * resolved to, and a canonical form of the body: object keys sorted, whitespace gone, and the
 * fields that only shape delivery or bookkeeping left out. Everything else can change the
 * answer, so it counts. Bump KEY_VERSION when the canonical form changes.
 */
const KEY_VERSION = 1;

/** Top-level fields that never change what the model answers. */
const IGNORED_FIELDS = new Set([
  'model', // replaced by the resolved deployment and upstream model
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
  if (value !== null && typeof value === 'object') {
    const sorted: Record<string, unknown> = {};
    for (const name of Object.keys(value).sort())
      sorted[name] = canonical((value as Record<string, unknown>)[name]);
    return sorted;
  }
  return value;
}

export function cacheKey(
  endpoint: CacheableEndpoint,
  deployment: string,
  upstreamModel: string,
  body: Record<string, unknown>,
): string {
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) if (!IGNORED_FIELDS.has(name)) kept[name] = value;
  return createHash('sha256')
    .update(JSON.stringify([KEY_VERSION, endpoint, deployment, upstreamModel, canonical(kept)]))
    .digest('hex');
}
