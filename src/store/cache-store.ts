/**
 * ③ cache's state: stored answers and the coalescing of identical requests in flight. Part of
 * the Store seam (`Store.cache`), with a memory and a Redis implementation side by side
 * (memory-cache-store.ts, redis-cache-store.ts) and one contract suite
 * (test/cache-store-contract.test.ts).
 *
 * A scope is who may read an entry: `team:<id>` (the default), `key:<id>` or `global`. Scopes
 * never contain braces (they become part of a Redis hash tag). A hash is the hex SHA-256 the
 * cache stage computes over the canonical request; entries of two scopes never mix.
 */
export interface CachedAnswer {
  /** The whole answer as JSON bytes (a streamed answer is stored assembled into its JSON form). */
  body: Buffer;
  /** Unix ms when it was stored (the `age` header is computed from it). */
  createdAt: number;
  /** The public model name the client asked for (for purging by model). */
  model: string;
}

export interface CacheScopeStats {
  scope: string;
  /** Live (unexpired) entries. */
  entries: number;
  /** Bytes of their bodies. */
  bytes: number;
}

export type FillOutcome = 'filled' | 'failed' | 'timeout';

/** One entry of a stream being filled: a block of SSE events, or its end. */
export interface LiveEntry {
  /** Increasing; read on after it. */
  id: string;
  block?: Buffer;
  /** The stream ended whole (`complete`) or broke off (`broken`). */
  end?: 'complete' | 'broken';
}

export interface CacheStore {
  /** True when other instances see this state (Redis): only then is a stream mirrored live. */
  readonly shared: boolean;
  /** The entry, unless it is missing or has expired at `nowMs`. */
  get(scope: string, hash: string, nowMs: number): Promise<CachedAnswer | undefined>;
  /** Stores (or replaces) an entry that expires `ttlMs` after `nowMs`. */
  set(scope: string, hash: string, answer: CachedAnswer, ttlMs: number, nowMs: number): Promise<void>;
  /** Removes the entries of one scope and/or one model (neither: every entry); returns how many. */
  purge(filter: { scope?: string | undefined; model?: string | undefined }, nowMs: number): Promise<number>;
  /** Live entries and their bytes, per scope (one scope when given, else every scope that has any). */
  stats(filter: { scope?: string | undefined }, nowMs: number): Promise<CacheScopeStats[]>;

  /**
   * Coalescing: true when the caller now leads the fill of (scope, hash) for at most `ttlMs`
   * (then it must `release`); false when another request, on any instance, already does.
   */
  claim(scope: string, hash: string, ttlMs: number): Promise<boolean>;
  /** The leader is done: it stored the answer (`filled`) or gave up. Wakes every waiter everywhere. */
  release(scope: string, hash: string, filled: boolean): Promise<void>;
  /**
   * Waits until the current leader of (scope, hash) releases: `filled` (read the entry now),
   * `failed` (go upstream yourself), or `timeout` after `timeoutMs`. A lead whose claim ran out
   * (a lost process) counts as `failed`.
   */
  waitForFill(scope: string, hash: string, timeoutMs: number): Promise<FillOutcome>;
  /**
   * Live streams: the leader of a streamed fill appends its SSE blocks as they pass (and its end),
   * so a stream that joins on another instance gets them from the first, then live. A claim
   * starts an empty record; only the caller holding the claim appends (otherwise nothing is
   * written), and each append renews the claim and the record for `ttlMs`. Answers how many
   * followers (see `follow`) are marked then: 0 when nothing was written.
   */
  appendLive(
    scope: string,
    hash: string,
    blocks: readonly Buffer[],
    end: 'complete' | 'broken' | undefined,
    ttlMs: number,
  ): Promise<number>;
  /** Entries after `afterId` (`'0'`: from the start), at most `max`; none when nothing is live. */
  readLive(scope: string, hash: string, afterId: string, max: number): Promise<LiveEntry[]>;
  /**
   * Followers of a live stream on other instances: each marks itself (`follower`, an id of its
   * own) for `ttlMs`, renews the mark while it reads, and takes it back when done. The leader,
   * once its own client left, reads on while any mark holds (`appendLive` answers how many do,
   * at no extra round trip); the mark of a follower that died lapses by itself. A new claim
   * starts with none.
   */
  follow(scope: string, hash: string, follower: string, ttlMs: number): Promise<void>;
  unfollow(scope: string, hash: string, follower: string): Promise<void>;
  /** Followers whose mark has not lapsed. */
  followers(scope: string, hash: string): Promise<number>;
  /** Frees timers and connections the cache holds of its own (not the store's). */
  close(): Promise<void>;
}
