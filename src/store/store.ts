import type { FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { CacheStore } from './cache-store.js';
import type { HealthStore } from './health-store.js';
import type { QuotaStore } from './quota-store.js';
import type { RegistryStore } from './registry-store.js';
import type { UsageStore } from './usage-store.js';

/**
 * The one seam for shared state, in gateway terms: one sub-store per concern, each an interface
 * with a memory and a Redis implementation side by side and its own contract suite. Two
 * implementations of the whole (memory-store.ts, redis-store.ts) put them together over one
 * data directory or one Redis connection; create-store.ts picks one from the config.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  /** Teams, keys, the audit log and settings. */
  readonly registry: RegistryStore;
  /** Reservations of tokens, concurrency slots and budget. */
  readonly quota: QuotaStore;
  /** Usage sums and the request log. */
  readonly usage: UsageStore;
  /** The response cache's entries and in-flight coalescing. */
  readonly cache: CacheStore;
  /** Deployments' circuit breakers and provider limits, shared by the fleet. */
  readonly health: HealthStore;
  /** Resolves when the store can serve requests; rejects with the reason otherwise. */
  ping(): Promise<void>;
  /** Closes every sub-store and the connection they share. */
  close(): Promise<void>;
  /**
   * Where @fastify/rate-limit keeps its counters, every key under `prefix`: shared by every
   * instance (Redis), or undefined for the plugin's own in-process counters.
   */
  rateLimitStore(prefix: string): FastifyRateLimitStoreCtor | undefined;
}
