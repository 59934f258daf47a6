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

/**
 * The most keys one object may have for the body to be keyed. Sorting an object's keys and
 * building its sorted copy cost more per key the more keys it has (V8 turns a large object into
 * a dictionary): a 1 MB body of a 92,000-key `logit_bias` took 130-350 ms to key, against 7 ms for
 * a 900 KB chat of 19,700 keys in small objects. With every object within this bound, keying stays
 * linear in the body's bytes, so `cache.maxRequestBytes` bounds it. Real requests' objects (a
 * message, a tool's schema and its properties) have tens to hundreds of keys.
 */
export const MOST_KEYS_PER_OBJECT = 10_000;

/** The most levels of objects and arrays keyed below the body: canonical() recurses once per level, and must not exhaust the stack. */
export const MOST_NESTING = 1_000;

function withinBudget(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (depth > MOST_NESTING) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (!withinBudget(item, depth + 1)) return false;
    return true;
  }
  if (sourceJson.isRawJSON(value)) return true;
  const names = Object.keys(value);
  if (names.length > MOST_KEYS_PER_OBJECT) return false;
  for (const name of names)
    if (!withinBudget((value as Record<string, unknown>)[name], depth + 1)) return false;
  return true;
}

/**
 * Whether this body's key is cheap enough to compute on the event loop (every object within
 * MOST_KEYS_PER_OBJECT keys, nesting within MOST_NESTING). A walk without sorting or copying:
 * a few ms on a 1 MB body, and it stops at the first object over the bound.
 */
export function keyableBody(body: Record<string, unknown>): boolean {
  return withinBudget(body, 0);
}

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
