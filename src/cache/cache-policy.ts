import type { IncomingHttpHeaders } from 'node:http';
import type { JsonEndpoint } from '../backends/backend.js';
import type { CacheConfig, CachePolicyConfig } from '../config/schema.js';
import { InvalidRequestError } from '../errors.js';
import type { CachePolicy } from '../registry/records.js';

/**
 * ③ cache, the decision: whether a request may be answered from the cache and whether its
 * answer is stored, from the policy (config, model, team, key; the most specific setting
 * wins) and the request's own controls (`x-tollgate-cache`, `Cache-Control`,
 * `x-tollgate-cache-ttl`).
 */
export type CacheableEndpoint = Extract<
  JsonEndpoint,
  'chat.completions' | 'completions' | 'embeddings' | 'messages'
>;

export function isCacheable(endpoint: JsonEndpoint): endpoint is CacheableEndpoint {
  return (
    endpoint === 'chat.completions' ||
    endpoint === 'completions' ||
    endpoint === 'embeddings' ||
    endpoint === 'messages'
  );
}

export interface ResolvedPolicy {
  enabled: boolean;
  /** Off by an admin on the team or key: final, no request header turns it on. */
  forbidden: boolean;
  ttlSeconds: number;
  maxTemperature: number;
  scope: 'team' | 'key' | 'global';
}

/** Merges the levels field by field; later (more specific) levels win. */
export function resolvePolicy(
  config: CacheConfig,
  model: CachePolicyConfig | undefined,
  team: CachePolicy | null | undefined,
  key: CachePolicy | null | undefined,
): ResolvedPolicy {
  const policy: ResolvedPolicy = {
    enabled: config.enabled,
    forbidden: false,
    ttlSeconds: config.ttl,
    maxTemperature: config.maxTemperature,
    scope: config.scope,
  };
  const levels = [
    model && { ...model, max_temperature: model.maxTemperature },
    team ?? undefined,
    key ?? undefined,
  ];
  for (const [index, level] of levels.entries()) {
    if (!level) continue;
    if (level.enabled !== undefined) {
      policy.enabled = level.enabled;
      // The config's and a model's `enabled` are defaults; a team's or key's is the admin's word.
      policy.forbidden = !level.enabled && index > 0;
    }
    if (level.ttl !== undefined) policy.ttlSeconds = level.ttl;
    if (level.max_temperature !== undefined) policy.maxTemperature = level.max_temperature;
    if (level.scope !== undefined) policy.scope = level.scope;
  }
  return policy;
}

export interface RequestDirectives {
  /** `x-tollgate-cache`: on (cache even if the policy would not), off, refresh (store fresh). */
  mode: 'default' | 'on' | 'off' | 'refresh';
  /** `Cache-Control: no-cache`: do not answer from the cache, store the fresh answer. */
  noCache: boolean;
  /** `Cache-Control: no-store`: do not store this answer. */
  noStore: boolean;
  /** `Cache-Control: max-age=N`: accept only entries at most N seconds old. */
  maxAgeSeconds?: number | undefined;
  /** `x-tollgate-cache-ttl`: keep this answer N seconds (up to `cache.maxTtl`). */
  ttlSeconds?: number | undefined;
}

const MODES = new Set(['on', 'off', 'refresh']);

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

export function parseDirectives(headers: IncomingHttpHeaders): RequestDirectives {
  const directives: RequestDirectives = { mode: 'default', noCache: false, noStore: false };
  const mode = single(headers['x-tollgate-cache'])?.trim().toLowerCase();
  if (mode) {
    if (!MODES.has(mode))
      throw new InvalidRequestError(
        `Invalid x-tollgate-cache header '${mode.slice(0, 20)}': expected on, off or refresh.`,
        'x-tollgate-cache',
      );
    directives.mode = mode as RequestDirectives['mode'];
  }
  const ttl = single(headers['x-tollgate-cache-ttl'])?.trim();
  if (ttl !== undefined && ttl !== '') {
    if (!/^\d{1,9}$/.test(ttl) || Number(ttl) === 0)
      throw new InvalidRequestError(
        'Invalid x-tollgate-cache-ttl header: expected a whole number of seconds above 0.',
        'x-tollgate-cache-ttl',
      );
    directives.ttlSeconds = Number(ttl);
  }
  // Cache-Control directives we do not know are ignored, as HTTP caches do.
  for (const part of (single(headers['cache-control']) ?? '').split(',')) {
    const [name = '', value] = part.trim().toLowerCase().split('=');
    if (name === 'no-cache') directives.noCache = true;
    else if (name === 'no-store') directives.noStore = true;
    else if (name === 'max-age' && value !== undefined && /^\d{1,9}$/.test(value.replaceAll('"', '')))
      directives.maxAgeSeconds = Number(value.replaceAll('"', ''));
  }
  return directives;
}

export type CacheVerdict =
  | { use: false }
  | {
      use: true;
      /** Look for a stored answer (else REFRESH: go upstream and store). */
      lookup: boolean;
      store: boolean;
      ttlMs: number;
      maxAgeMs?: number | undefined;
    };

/**
 * Sampled answers differ from call to call: by default only near-deterministic requests
 * (temperature at most the policy's, or a fixed `seed`) are cached. Embeddings always are.
 */
function deterministicEnough(
  endpoint: CacheableEndpoint,
  body: Record<string, unknown>,
  max: number,
): boolean {
  if (endpoint === 'embeddings') return true;
  if (typeof body.seed === 'number') return true;
  const temperature = typeof body.temperature === 'number' ? body.temperature : 1;
  return temperature <= max;
}

export function decide(
  endpoint: CacheableEndpoint,
  body: Record<string, unknown>,
  policy: ResolvedPolicy,
  directives: RequestDirectives,
  maxTtlSeconds: number,
): CacheVerdict {
  if (directives.mode === 'off' || policy.forbidden) return { use: false };
  const asked = directives.mode === 'on' || directives.mode === 'refresh';
  if (!asked && !policy.enabled) return { use: false };
  if (!asked && !deterministicEnough(endpoint, body, policy.maxTemperature)) return { use: false };
  const lookup = directives.mode !== 'refresh' && !directives.noCache;
  const store = !directives.noStore;
  if (!lookup && !store) return { use: false };
  const ttlSeconds = Math.min(directives.ttlSeconds ?? policy.ttlSeconds, maxTtlSeconds);
  return {
    use: true,
    lookup,
    store,
    ttlMs: ttlSeconds * 1000,
    maxAgeMs: directives.maxAgeSeconds === undefined ? undefined : directives.maxAgeSeconds * 1000,
  };
}
