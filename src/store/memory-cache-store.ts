import type { CachedAnswer, CacheScopeStats, CacheStore, FillOutcome, LiveEntry } from './cache-store.js';

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export interface MemoryCacheStoreOptions {
  /** Total bytes of bodies kept; the least recently used entries go first. Default 64 MiB. */
  maxBytes?: number | undefined;
}

interface Entry {
  scope: string;
  answer: CachedAnswer;
  /** In the callers' clock (nowMs). */
  expiresAt: number;
}

interface Claim {
  /** The claim lapses (a lost leader) when this fires: its waiters then get `failed`. */
  timer: NodeJS.Timeout;
  waiters: Set<(outcome: FillOutcome) => void>;
}

const id = (scope: string, hash: string) => `${scope}\n${hash}`;

/**
 * Cache state in this process: entries in one Map whose order is the recency of use (a hit moves
 * its entry to the end), so eviction takes from the front. Coalescing claims are per process,
 * which is all a single embedded instance needs.
 */
export class MemoryCacheStore implements CacheStore {
  /** One process: joiners follow a stream through the cache stage's own flights. */
  readonly shared = false;
  private readonly maxBytes: number;
  /** Live streams (kept for the contract; this process never needs them itself). */
  private readonly live = new Map<string, { entries: LiveEntry[]; sequence: number; expiresAt: number }>();
  /** Marks of live streams' followers: follower -> when it lapses (kept for the contract too). */
  private readonly marks = new Map<string, Map<string, number>>();
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly claims = new Map<string, Claim>();
  /** The waiters' timeout timers, cleared by close(). */
  private readonly timeouts = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(options: MemoryCacheStoreOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  private remove(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.bytes -= entry.answer.body.length;
    }
    return entry;
  }

  async appendLive(
    scope: string,
    hash: string,
    blocks: readonly Buffer[],
    end: 'complete' | 'broken' | undefined,
    ttlMs: number,
  ): Promise<number> {
    const now = Date.now();
    for (const [key, record] of this.live) if (record.expiresAt <= now) this.live.delete(key);
    const key = id(scope, hash);
    // Only the leader writes (a claim here lasts until release or its ttl).
    if (!this.claims.has(key)) return 0;
    const record = this.live.get(key) ?? { entries: [], sequence: 0, expiresAt: 0 };
    this.live.set(key, record);
    for (const block of blocks)
      record.entries.push({ id: String(++record.sequence).padStart(12, '0'), block });
    if (end) record.entries.push({ id: String(++record.sequence).padStart(12, '0'), end });
    record.expiresAt = now + ttlMs;
    return this.marked(key, now);
  }

  /** Marks that hold at `now`; drops the lapsed ones. */
  private marked(key: string, now: number): number {
    const marks = this.marks.get(key);
    if (!marks) return 0;
    for (const [follower, until] of marks) if (until <= now) marks.delete(follower);
    if (marks.size === 0) this.marks.delete(key);
    return marks.size;
  }

  async follow(scope: string, hash: string, follower: string, ttlMs: number): Promise<void> {
    const key = id(scope, hash);
    const now = Date.now();
    this.marked(key, now);
    const marks = this.marks.get(key) ?? new Map<string, number>();
    this.marks.set(key, marks);
    marks.set(follower, now + ttlMs);
  }

  async unfollow(scope: string, hash: string, follower: string): Promise<void> {
    const key = id(scope, hash);
    this.marks.get(key)?.delete(follower);
    this.marked(key, Date.now());
  }

  async followers(scope: string, hash: string): Promise<number> {
    return this.marked(id(scope, hash), Date.now());
  }

  async readLive(scope: string, hash: string, afterId: string, max: number): Promise<LiveEntry[]> {
    const record = this.live.get(id(scope, hash));
    if (!record || record.expiresAt <= Date.now()) return [];
    return record.entries.filter((entry) => afterId === '0' || entry.id > afterId).slice(0, max);
  }

  async get(scope: string, hash: string, nowMs: number): Promise<CachedAnswer | undefined> {
    const key = id(scope, hash);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= nowMs) {
      this.remove(key);
      return undefined;
    }
    // Most recently used goes last.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return { ...entry.answer, body: Buffer.from(entry.answer.body) };
  }

  async set(scope: string, hash: string, answer: CachedAnswer, ttlMs: number, nowMs: number): Promise<void> {
    const key = id(scope, hash);
    this.remove(key);
    const size = answer.body.length;
    if (size > this.maxBytes || ttlMs <= 0) return;
    // Expired entries go before live ones, then the least recently used.
    if (this.bytes + size > this.maxBytes)
      for (const [k, entry] of this.entries) if (entry.expiresAt <= nowMs) this.remove(k);
    for (const k of this.entries.keys()) {
      if (this.bytes + size <= this.maxBytes) break;
      this.remove(k);
    }
    this.entries.set(key, {
      scope,
      answer: { body: Buffer.from(answer.body), createdAt: answer.createdAt, model: answer.model },
      expiresAt: nowMs + ttlMs,
    });
    this.bytes += size;
  }

  async purge(
    filter: { scope?: string | undefined; model?: string | undefined },
    nowMs: number,
  ): Promise<number> {
    let count = 0;
    for (const [key, entry] of this.entries) {
      if (filter.scope !== undefined && entry.scope !== filter.scope) continue;
      if (filter.model !== undefined && entry.answer.model !== filter.model) continue;
      this.remove(key);
      if (entry.expiresAt > nowMs) count++;
    }
    return count;
  }

  async stats(filter: { scope?: string | undefined }, nowMs: number): Promise<CacheScopeStats[]> {
    const byScope = new Map<string, CacheScopeStats>();
    if (filter.scope !== undefined) byScope.set(filter.scope, { scope: filter.scope, entries: 0, bytes: 0 });
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= nowMs) {
        this.remove(key);
        continue;
      }
      if (filter.scope !== undefined && entry.scope !== filter.scope) continue;
      let stats = byScope.get(entry.scope);
      if (!stats) {
        stats = { scope: entry.scope, entries: 0, bytes: 0 };
        byScope.set(entry.scope, stats);
      }
      stats.entries++;
      stats.bytes += entry.answer.body.length;
    }
    return [...byScope.values()].sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0));
  }

  private finish(key: string, outcome: FillOutcome): void {
    const claim = this.claims.get(key);
    if (!claim) return;
    clearTimeout(claim.timer);
    this.claims.delete(key);
    for (const wake of claim.waiters) wake(outcome);
  }

  async claim(scope: string, hash: string, ttlMs: number): Promise<boolean> {
    if (this.closed) throw new Error('cache is closed');
    const key = id(scope, hash);
    if (this.claims.has(key)) return false;
    this.live.delete(key);
    this.marks.delete(key);
    const timer = setTimeout(() => this.finish(key, 'failed'), Math.max(1, ttlMs));
    timer.unref();
    this.claims.set(key, { timer, waiters: new Set() });
    return true;
  }

  async release(scope: string, hash: string, filled: boolean): Promise<void> {
    this.finish(id(scope, hash), filled ? 'filled' : 'failed');
  }

  async waitForFill(scope: string, hash: string, timeoutMs: number): Promise<FillOutcome> {
    if (this.closed) throw new Error('cache is closed');
    const key = id(scope, hash);
    const claim = this.claims.get(key);
    // Nobody leads (any more): the fill is over, one way or the other.
    if (!claim) return this.entries.has(key) ? 'filled' : 'failed';
    return new Promise<FillOutcome>((resolve) => {
      const done = (outcome: FillOutcome) => {
        clearTimeout(timer);
        this.timeouts.delete(timer);
        claim.waiters.delete(done);
        resolve(outcome);
      };
      const timer = setTimeout(() => done('timeout'), Math.max(0, timeoutMs));
      this.timeouts.add(timer);
      claim.waiters.add(done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    // Waiters are told to go on their own; no timer outlives the store.
    for (const key of [...this.claims.keys()]) this.finish(key, 'failed');
    for (const timer of this.timeouts) clearTimeout(timer);
    this.timeouts.clear();
  }
}
