import type { Cluster, Redis } from 'ioredis';
import { ServiceUnavailableError } from '../errors.js';
import type { AuditEvent, KeyRecord, Page, PageQuery, TeamRecord } from '../registry/records.js';
import { createRedisClient, type RedisTarget } from './redis-client.js';
import type { Store } from './store.js';

/**
 * Every registry key shares one hash tag, so on a Redis Cluster they live in one slot and a
 * change that touches several (a key, its hash index, its team's list) is one MULTI. The
 * registry is small and read through a short in-process cache, so one slot carries it easily;
 * high-volume state (counters, cache) uses per-team tags of its own.
 */
const P = 'tg:{registry}:';
const K = {
  team: (id: string) => `${P}team:${id}`,
  teams: `${P}teams`,
  key: (id: string) => `${P}key:${id}`,
  keys: `${P}keys`,
  teamKeys: (teamId: string) => `${P}team-keys:${teamId}`,
  hash: (hash: string) => `${P}hash:${hash}`,
  lastUsed: `${P}last-used`,
  audit: `${P}audit`,
  auditData: `${P}audit-data`,
  settings: `${P}settings`,
};
const AUDIT_CAP = 100_000;
const FIRST_CONNECTION_WAIT_MS = 2_000;

/**
 * Compare-and-set of a key record with its hash index, in one atomic step: applies only if the
 * stored record is still the one the caller read, so concurrent admins on several instances
 * cannot undo each other's rotation or revocation.
 * KEYS: record, current hash, retired hashes (r of them), hashes to drop.
 * ARGV: expected record, next record, id, r, then r TTLs in ms.
 */
const UPDATE_KEY = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
local r = tonumber(ARGV[4])
for i = 1, r do
  local ttl = tonumber(ARGV[4 + i])
  if ttl > 0 then redis.call('SET', KEYS[2 + i], ARGV[3], 'PX', ttl) else redis.call('DEL', KEYS[2 + i]) end
end
for i = 3 + r, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
`;

/**
 * Last-used times only move forward: several instances flush their batches independently, and
 * an older batch landing after a newer one must not turn a key's last use back.
 * KEYS: the last-used hash. ARGV: id, time, id, time, ...
 */
const TOUCH_KEYS = `
for i = 1, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`;

export interface RedisStoreOptions {
  target: RedisTarget;
}

async function lexPage(
  client: Redis | Cluster,
  zset: string,
  query: PageQuery,
): Promise<{ ids: string[]; hasMore: boolean }> {
  const from = query.after === undefined ? '-' : `(${query.after}`;
  const ids = await client.zrangebylex(zset, from, '+', 'LIMIT', 0, query.limit + 1);
  return { ids: ids.slice(0, query.limit), hasMore: ids.length > query.limit };
}

function parseAll<T>(values: Array<string | null>): T[] {
  return values.filter((value): value is string => value !== null).map((value) => JSON.parse(value) as T);
}

/** Redis cannot be reached: callers answer 503 with retry-after (fail closed), never a 500. */
export class StoreUnavailableError extends ServiceUnavailableError {
  constructor() {
    super('The gateway cannot reach its shared state (Redis) right now; retry shortly.', 1);
  }
}

/** Shared state in Redis, so several gateway instances behave as one. */
export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly client: Redis | Cluster;
  private everReady = false;
  private firstConnection: Promise<void> | undefined;
  private closed = false;

  constructor(options: RedisStoreOptions) {
    this.client = createRedisClient(options.target);
    this.client.on('ready', () => {
      this.everReady = true;
    });
  }

  /**
   * Fails fast while Redis is down, so an outage costs callers no waiting: once the connection
   * has been up, a command is only sent while it is up. Only the very first connection (at boot)
   * is waited for, briefly, and all callers share that one wait.
   */
  private connected(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    if (this.client.status === 'ready') return Promise.resolve();
    if (this.everReady) return Promise.reject(new StoreUnavailableError());
    this.firstConnection ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        this.firstConnection = undefined;
        reject(new StoreUnavailableError());
      }, FIRST_CONNECTION_WAIT_MS);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
    return this.firstConnection;
  }

  async ping(): Promise<void> {
    await this.connected();
    const answer = await this.client.ping();
    if (answer !== 'PONG') throw new Error(`unexpected PING answer: ${answer}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }

  async insertTeam(team: TeamRecord): Promise<void> {
    await this.connected();
    await this.client.multi().set(K.team(team.id), JSON.stringify(team)).zadd(K.teams, 0, team.id).exec();
  }

  async getTeam(id: string): Promise<TeamRecord | undefined> {
    await this.connected();
    const value = await this.client.get(K.team(id));
    return value === null ? undefined : (JSON.parse(value) as TeamRecord);
  }

  async listTeams(query: PageQuery): Promise<Page<TeamRecord>> {
    await this.connected();
    const { ids, hasMore } = await lexPage(this.client, K.teams, query);
    const values = ids.length ? await this.client.mget(ids.map(K.team)) : [];
    return { items: parseAll<TeamRecord>(values), hasMore };
  }

  async updateTeam(team: TeamRecord): Promise<void> {
    await this.connected();
    await this.client.set(K.team(team.id), JSON.stringify(team));
  }

  async deleteTeam(id: string): Promise<void> {
    await this.connected();
    await this.client.multi().del(K.team(id)).zrem(K.teams, id).exec();
  }

  async insertKey(key: KeyRecord): Promise<void> {
    await this.connected();
    await this.client
      .multi()
      .set(K.key(key.id), JSON.stringify(key))
      .zadd(K.keys, 0, key.id)
      .zadd(K.teamKeys(key.teamId), 0, key.id)
      .set(K.hash(key.hash), key.id)
      .exec();
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    await this.connected();
    const value = await this.client.get(K.key(id));
    return value === null ? undefined : (JSON.parse(value) as KeyRecord);
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    await this.connected();
    const id = await this.client.get(K.hash(hash));
    if (id === null) return undefined;
    const key = await this.getKey(id);
    if (!key) return undefined;
    if (key.hash !== hash && !key.retiredHashes.some((r) => r.hash === hash && r.until > Date.now()))
      return undefined;
    return key;
  }

  async listKeys(query: PageQuery & { teamId?: string | undefined }): Promise<Page<KeyRecord>> {
    await this.connected();
    const zset = query.teamId === undefined ? K.keys : K.teamKeys(query.teamId);
    const { ids, hasMore } = await lexPage(this.client, zset, query);
    const values = ids.length ? await this.client.mget(ids.map(K.key)) : [];
    return { items: parseAll<KeyRecord>(values), hasMore };
  }

  async updateKey(next: KeyRecord, previous: KeyRecord): Promise<boolean> {
    await this.connected();
    const now = Date.now();
    const keep = new Set([next.hash, ...next.retiredHashes.map((r) => r.hash)]);
    const drop = [previous.hash, ...previous.retiredHashes.map((r) => r.hash)].filter(
      (hash) => !keep.has(hash),
    );
    const keys = [
      K.key(next.id),
      K.hash(next.hash),
      ...next.retiredHashes.map((r) => K.hash(r.hash)),
      ...drop.map(K.hash),
    ];
    const args = [
      JSON.stringify(previous),
      JSON.stringify(next),
      next.id,
      String(next.retiredHashes.length),
      ...next.retiredHashes.map((r) => String(Math.max(0, r.until - now))),
    ];
    const applied = await this.client.eval(UPDATE_KEY, keys.length, ...keys, ...args);
    return applied === 1;
  }

  async touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    await this.connected();
    await this.client.eval(
      TOUCH_KEYS,
      1,
      K.lastUsed,
      ...[...lastUsed].flatMap(([id, at]) => [id, String(at)]),
    );
  }

  async lastUsed(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (ids.length === 0) return out;
    await this.connected();
    const values = await this.client.hmget(K.lastUsed, ...ids);
    ids.forEach((id, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) out.set(id, Number(value));
    });
    return out;
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    await this.connected();
    await this.client
      .multi()
      .hset(K.auditData, event.id, JSON.stringify(event))
      .zadd(K.audit, 0, event.id)
      .exec();
    const size = await this.client.zcard(K.audit);
    if (size > AUDIT_CAP) {
      const oldest = await this.client.zrange(K.audit, '0', String(size - AUDIT_CAP - 1));
      if (oldest.length)
        await this.client
          .multi()
          .zrem(K.audit, ...oldest)
          .hdel(K.auditData, ...oldest)
          .exec();
    }
  }

  async listAudit(query: PageQuery): Promise<Page<AuditEvent>> {
    await this.connected();
    const { ids, hasMore } = await lexPage(this.client, K.audit, query);
    const values = ids.length ? await this.client.hmget(K.auditData, ...ids) : [];
    return { items: parseAll<AuditEvent>(values), hasMore };
  }

  async setSettingIfAbsent(name: string, value: string): Promise<string> {
    await this.connected();
    await this.client.hsetnx(K.settings, name, value);
    return (await this.client.hget(K.settings, name)) ?? value;
  }
}
