import type { CacheStore } from '../../src/store/cache-store.js';
import { Tally } from './tally.js';

/**
 * What one instance asked of its cache store, as events a test waits for instead of sleeping:
 * the store itself stays the real one, each call is only counted on its way back.
 */
export interface CacheWatch {
  /**
   * Lookups that found no entry. What the request does next (join a flight in this process, or
   * claim the fill) follows without waiting on any I/O, so it is decided before any answer the
   * test holds back could arrive.
   */
  misses: Tally;
  /** Claims another request, on any instance, already held: this one now waits for or follows it. */
  lostClaims: Tally;
  /** Claims let go (after the leader stored its answer, or gave up). */
  released: Tally;
  /** Per claim let go, in order: whether its answer was stored first. */
  releases: boolean[];
}

/** Counts, from now on, the calls to `cache` that a test orders its steps by. */
export function watchCache(cache: CacheStore): CacheWatch {
  const watch: CacheWatch = {
    misses: new Tally(),
    lostClaims: new Tally(),
    released: new Tally(),
    releases: [],
  };
  const get = cache.get.bind(cache);
  cache.get = async (scope, hash, nowMs) => {
    const answer = await get(scope, hash, nowMs);
    if (answer === undefined) watch.misses.add();
    return answer;
  };
  const claim = cache.claim.bind(cache);
  cache.claim = async (scope, hash, ttlMs) => {
    const won = await claim(scope, hash, ttlMs);
    if (!won) watch.lostClaims.add();
    return won;
  };
  const release = cache.release.bind(cache);
  cache.release = async (scope, hash, filled) => {
    try {
      await release(scope, hash, filled);
    } finally {
      watch.releases.push(filled);
      watch.released.add();
    }
  };
  return watch;
}
