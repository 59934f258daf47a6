/**
 * The one seam for shared state. Today it answers readiness; teams, keys, counters, usage
 * and cache entries join it as those features land, each with the same contract suite run
 * against every implementation.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  /** Resolves when the store can serve requests; rejects with the reason otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
