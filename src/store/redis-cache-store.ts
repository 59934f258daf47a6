import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { CachedAnswer, CacheScopeStats, CacheStore, FillOutcome, LiveEntry } from './cache-store.js';
import { loadLua } from './lua-script.js';
import { duplicateClient } from './redis-client.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage } from './store-unavailable.js';

/**
 * Key layout. Everything of one scope shares the hash tag `{c:<scope>}`, so on a Cluster a
 * scope lives in one slot and one script may touch its entry, index and lock together; scopes
 * spread over the nodes.
 *   tg:{c:<scope>}:e:<hash>     hash: b = body (bytes), c = createdAt, m = model, x = expiresAt
 *                               (callers' clock); PEXPIRE = ttl
 *   tg:{c:<scope>}:idx          zset: member = hash, score = expiresAt
 *   tg:{c:<scope>}:info         hash: hash -> "<bytes>:<model>" (stats and purge by model
 *                               without reading bodies); idx and info live as long as their
 *                               longest-lived entry
 *   tg:{c:<scope>}:lock:<hash>  string: the leader's token; PX = claim ttl
 *   tg:{c:<scope>}:live:<hash>  stream: a streamed fill's SSE blocks (b) and its end (end)
 *   tg:{c:<scope>}:fol:<hash>   zset: member = a remote follower of that stream, score = when
 *                               its mark lapses (Redis's clock); lives as long as its last mark
 *   tg:cache:scopes             set of scopes that may hold entries (purge and stats of all)
 * Fills are announced on the channel tg:cache:fills as JSON [scope, hash, outcome].
 */
const scopePrefix = (scope: string) => `tg:{c:${scope}}:`;
const C = {
  entry: (p: string, hash: string) => `${p}e:${hash}`,
  index: (p: string) => `${p}idx`,
  info: (p: string) => `${p}info`,
  lock: (p: string, hash: string) => `${p}lock:${hash}`,
  live: (p: string, hash: string) => `${p}live:${hash}`,
  followers: (p: string, hash: string) => `${p}fol:${hash}`,
};
const SCOPES = 'tg:cache:scopes';
const FILLS_CHANNEL = 'tg:cache:fills';
/** How often a waiter looks at the lock itself, in case a message was missed or the leader died. */
const POLL_MS = 150;

const SET_ENTRY = loadLua('cache-prune', 'cache-set-entry');
const PURGE = loadLua('cache-purge');
const STATS = loadLua('cache-prune', 'cache-stats');
const CLAIM = loadLua('cache-claim');
const APPEND_LIVE = loadLua('cache-followers', 'cache-append-live');
const FOLLOW = loadLua('cache-followers', 'cache-follow');
const COUNT_FOLLOWERS = loadLua('cache-followers', 'cache-count-followers');
const RELEASE = loadLua('cache-release');

const waiterKey = (scope: string, hash: string) => `${scope}\n${hash}`;
const byScope = (a: CacheScopeStats, b: CacheScopeStats) =>
  a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0;

function checkScope(scope: string): void {
  // A brace would end the hash tag early and scatter a scope's keys over the Cluster.
  if (scope.includes('{') || scope.includes('}')) throw new TypeError(`invalid cache scope: ${scope}`);
}

/**
 * Cache state in Redis, shared by every gateway instance. Uses the RedisStore's connection (never
 * closing it) and its connectivity check, so an outage fails fast with StoreUnavailableError;
 * only the subscriber connection for fill announcements is its own.
 */
export class RedisCacheStore implements CacheStore {
  readonly shared = true;
  private readonly instance = randomBytes(8).toString('hex');
  private sequence = 0;
  /** Our tokens of the claims we lead, to release only our own lock. */
  private readonly tokens = new Map<string, string>();
  private readonly waiters = new Map<string, Set<(outcome: FillOutcome) => void>>();
  /** Every pending waiter (close() answers them all). */
  private readonly pending = new Set<(outcome: FillOutcome) => void>();
  private subscriber: Redis | Cluster | undefined;
  private subscribed: Promise<void> | undefined;
  private closed = false;

  private readonly client: Redis | Cluster;

  constructor(private readonly connection: RedisConnection) {
    this.client = connection.client;
    failClosedOnOutage(this, connection.client);
  }

  private connected(): Promise<void> {
    return this.connection.ready();
  }

  async appendLive(
    scope: string,
    hash: string,
    blocks: readonly Buffer[],
    end: 'complete' | 'broken' | undefined,
    ttlMs: number,
  ): Promise<number> {
    checkScope(scope);
    const token = this.tokens.get(waiterKey(scope, hash));
    if (token === undefined) return 0;
    const p = scopePrefix(scope);
    const followers = await this.connection.run(
      APPEND_LIVE,
      [C.lock(p, hash), C.live(p, hash), C.followers(p, hash)],
      [token, Math.max(1, Math.ceil(ttlMs)), end ?? '', ...blocks],
    );
    return Number(followers) || 0;
  }

  async follow(scope: string, hash: string, follower: string, ttlMs: number): Promise<void> {
    checkScope(scope);
    await this.connection.run(
      FOLLOW,
      [C.followers(scopePrefix(scope), hash)],
      [follower, Math.max(1, Math.ceil(ttlMs))],
    );
  }

  async unfollow(scope: string, hash: string, follower: string): Promise<void> {
    checkScope(scope);
    await this.connected();
    await this.client.zrem(C.followers(scopePrefix(scope), hash), follower);
  }

  async followers(scope: string, hash: string): Promise<number> {
    checkScope(scope);
    const count = await this.connection.run(COUNT_FOLLOWERS, [C.followers(scopePrefix(scope), hash)], []);
    return Number(count) || 0;
  }

  async readLive(scope: string, hash: string, afterId: string, max: number): Promise<LiveEntry[]> {
    checkScope(scope);
    await this.connected();
    const key = C.live(scopePrefix(scope), hash);
    const rows = await this.client.xrangeBuffer(
      key,
      afterId === '0' ? '-' : `(${afterId}`,
      '+',
      'COUNT',
      max,
    );
    return rows.map(([id, fields]) => {
      const entry: LiveEntry = { id: id.toString() };
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const name = fields[i]?.toString();
        const value = fields[i + 1] as Buffer;
        if (name === 'b') entry.block = value;
        else if (name === 'end') entry.end = value.toString() === 'complete' ? 'complete' : 'broken';
      }
      return entry;
    });
  }

  async get(scope: string, hash: string, nowMs: number): Promise<CachedAnswer | undefined> {
    checkScope(scope);
    await this.connected();
    const [body, createdAt, model, expiresAt] = await this.client.hmgetBuffer(
      C.entry(scopePrefix(scope), hash),
      'b',
      'c',
      'm',
      'x',
    );
    if (!body || !createdAt || !model || !expiresAt) return undefined;
    // The caller's clock decides, which may differ from Redis's own expiry.
    if (Number(expiresAt.toString()) <= nowMs) return undefined;
    return { body, createdAt: Number(createdAt.toString()), model: model.toString() };
  }

  async set(scope: string, hash: string, answer: CachedAnswer, ttlMs: number, nowMs: number): Promise<void> {
    checkScope(scope);
    const p = scopePrefix(scope);
    if (ttlMs <= 0) {
      await this.connected();
      await this.client.multi().del(C.entry(p, hash)).zrem(C.index(p), hash).hdel(C.info(p), hash).exec();
      return;
    }
    await this.connection.run(
      SET_ENTRY,
      [C.entry(p, hash), C.index(p), C.info(p)],
      [
        answer.body,
        answer.createdAt,
        answer.model,
        nowMs + ttlMs,
        Math.ceil(ttlMs),
        hash,
        answer.body.length,
        nowMs,
        p,
      ],
    );
    // Added after the entry, so a concurrent forgetScope() never loses a scope that has entries.
    await this.client.sadd(SCOPES, scope);
  }

  /**
   * Drops an empty scope from the set of scopes. Re-checks after removing: a set() that wrote
   * in between either is seen here or adds its scope again after its write.
   */
  private async forgetScope(scope: string): Promise<void> {
    const index = C.index(scopePrefix(scope));
    if ((await this.client.zcard(index)) > 0) return;
    await this.client.srem(SCOPES, scope);
    if ((await this.client.zcard(index)) > 0) await this.client.sadd(SCOPES, scope);
  }

  private async scopes(scope: string | undefined): Promise<string[]> {
    if (scope !== undefined) {
      checkScope(scope);
      return [scope];
    }
    await this.connected();
    return this.client.smembers(SCOPES);
  }

  async purge(
    filter: { scope?: string | undefined; model?: string | undefined },
    nowMs: number,
  ): Promise<number> {
    const scopes = await this.scopes(filter.scope);
    const counts = await Promise.all(
      scopes.map(async (scope) => {
        const p = scopePrefix(scope);
        const [removed = 0, left = 0] = (await this.connection.run(
          PURGE,
          [C.index(p), C.info(p)],
          [p, filter.model ?? '', nowMs, filter.model === undefined ? '0' : '1'],
        )) as number[];
        if (left === 0) await this.forgetScope(scope);
        return removed;
      }),
    );
    return counts.reduce((sum, n) => sum + n, 0);
  }

  async stats(filter: { scope?: string | undefined }, nowMs: number): Promise<CacheScopeStats[]> {
    const scopes = await this.scopes(filter.scope);
    const all = await Promise.all(
      scopes.map(async (scope) => {
        const p = scopePrefix(scope);
        const [entries = 0, bytes = 0] = (await this.connection.run(
          STATS,
          [C.index(p), C.info(p)],
          [p, nowMs],
        )) as number[];
        if (entries === 0) await this.forgetScope(scope);
        return { scope, entries, bytes };
      }),
    );
    // One scope asked for is answered even when empty; of all scopes, those that have entries.
    return (filter.scope !== undefined ? all : all.filter((s) => s.entries > 0)).sort(byScope);
  }

  async claim(scope: string, hash: string, ttlMs: number): Promise<boolean> {
    checkScope(scope);
    await this.connected();
    const token = `${this.instance}:${++this.sequence}`;
    const p = scopePrefix(scope);
    const answer = await this.connection.run(
      CLAIM,
      [C.lock(p, hash), C.live(p, hash), C.followers(p, hash)],
      [token, Math.max(1, Math.ceil(ttlMs))],
    );
    if (answer !== 1) return false;
    this.tokens.set(waiterKey(scope, hash), token);
    return true;
  }

  async release(scope: string, hash: string, filled: boolean): Promise<void> {
    checkScope(scope);
    const key = waiterKey(scope, hash);
    const token = this.tokens.get(key);
    this.tokens.delete(key);
    const released =
      token !== undefined &&
      (await this.connection.run(RELEASE, [C.lock(scopePrefix(scope), hash)], [token])) === 1;
    // A lapsed claim (someone else may lead now) announces nothing but a fill: its entry is there.
    if (!released && !filled) return;
    await this.connected();
    await this.client.publish(FILLS_CHANNEL, JSON.stringify([scope, hash, filled ? 'filled' : 'failed']));
  }

  private wake(scope: string, hash: string, outcome: FillOutcome): void {
    const waiters = this.waiters.get(waiterKey(scope, hash));
    if (waiters) for (const done of [...waiters]) done(outcome);
  }

  /** The one subscriber connection of this store, created on first need. */
  private subscribe(): Promise<void> {
    if (this.subscribed) return this.subscribed;
    const subscriber = duplicateClient(this.client, { enableOfflineQueue: true });
    subscriber.on('error', () => {});
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== FILLS_CHANNEL) return;
      try {
        const [scope, hash, outcome] = JSON.parse(message) as [string, string, FillOutcome];
        if (outcome === 'filled' || outcome === 'failed') this.wake(scope, hash, outcome);
      } catch {
        // Not one of ours.
      }
    });
    this.subscriber = subscriber;
    this.subscribed = subscriber.subscribe(FILLS_CHANNEL).then(
      () => {},
      (error: unknown) => {
        // Try again with a new connection next time; waiters poll meanwhile.
        if (this.subscriber === subscriber) {
          this.subscriber = undefined;
          this.subscribed = undefined;
        }
        subscriber.disconnect();
        throw error;
      },
    );
    return this.subscribed;
  }

  async waitForFill(scope: string, hash: string, timeoutMs: number): Promise<FillOutcome> {
    checkScope(scope);
    if (this.closed) throw new Error('cache is closed');
    await this.connected();
    const p = scopePrefix(scope);
    const key = waiterKey(scope, hash);
    return new Promise<FillOutcome>((resolve) => {
      let settled = false;
      let poll: NodeJS.Timeout | undefined;
      let waiters = this.waiters.get(key);
      if (!waiters) {
        waiters = new Set();
        this.waiters.set(key, waiters);
      }
      const set = waiters;
      const done = (outcome: FillOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        clearTimeout(poll);
        this.pending.delete(done);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
        resolve(outcome);
      };
      const timeout = setTimeout(() => done('timeout'), Math.max(0, timeoutMs));
      this.pending.add(done);
      set.add(done);
      // Nobody leads any more (released, or the claim lapsed): the entry tells which.
      const check = async () => {
        try {
          const answers = await this.client.multi().exists(C.lock(p, hash)).exists(C.entry(p, hash)).exec();
          if (settled) return;
          const [[lockError, lock] = [], [entryError, entry] = []] = answers ?? [];
          if (!lockError && !entryError && lock === 0) done(entry === 1 ? 'filled' : 'failed');
        } catch {
          // Redis is briefly unreachable: keep trying until the timeout.
        }
        if (!settled) poll = setTimeout(check, POLL_MS);
      };
      // Subscribed before the first look, so a release just after it is not missed.
      this.subscribe()
        .catch(() => {})
        .then(() => {
          if (!settled) void check();
        });
    });
  }

  async close(): Promise<void> {
    // Claims still held (a fill cut short by shutdown) are given up now, so other instances
    // waiting on them go upstream at once instead of after the claim's ttl.
    await Promise.allSettled(
      [...this.tokens.keys()].map((key) => {
        const [scope = '', hash = ''] = key.split('\n');
        return this.release(scope, hash, false);
      }),
    );
    this.closed = true;
    for (const done of [...this.pending]) done('failed');
    this.tokens.clear();
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.subscribed = undefined;
    subscriber?.disconnect();
  }
}
