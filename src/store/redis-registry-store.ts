import type { Cluster, Redis } from 'ioredis';
import type { AuditEvent, KeyRecord, Page, PageQuery, TeamRecord } from '../registry/records.js';
import { loadLua } from './lua-script.js';
import type { RedisConnection } from './redis-connection.js';
import type { RegistryStore } from './registry-store.js';
import { failClosedOnOutage } from './store-unavailable.js';

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

const UPDATE_KEY = loadLua('registry-update-key');
const TOUCH_KEYS = loadLua('registry-touch-keys');

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

/** Teams, keys, audit and settings in Redis, shared by every gateway instance. */
export class RedisRegistryStore implements RegistryStore {
  private readonly client: Redis | Cluster;

  constructor(private readonly connection: RedisConnection) {
    this.client = connection.client;
    failClosedOnOutage(this, connection.client);
  }

  async insertTeam(team: TeamRecord): Promise<void> {
    await this.connection.ready();
    await this.client.multi().set(K.team(team.id), JSON.stringify(team)).zadd(K.teams, 0, team.id).exec();
  }

  async getTeam(id: string): Promise<TeamRecord | undefined> {
    await this.connection.ready();
    const value = await this.client.get(K.team(id));
    return value === null ? undefined : (JSON.parse(value) as TeamRecord);
  }

  async listTeams(query: PageQuery): Promise<Page<TeamRecord>> {
    await this.connection.ready();
    const { ids, hasMore } = await lexPage(this.client, K.teams, query);
    const values = ids.length ? await this.client.mget(ids.map(K.team)) : [];
    return { items: parseAll<TeamRecord>(values), hasMore };
  }

  async updateTeam(team: TeamRecord): Promise<void> {
    await this.connection.ready();
    await this.client.set(K.team(team.id), JSON.stringify(team));
  }

  async deleteTeam(id: string): Promise<void> {
    await this.connection.ready();
    await this.client.multi().del(K.team(id)).zrem(K.teams, id).exec();
  }

  async insertKey(key: KeyRecord): Promise<void> {
    await this.connection.ready();
    await this.client
      .multi()
      .set(K.key(key.id), JSON.stringify(key))
      .zadd(K.keys, 0, key.id)
      .zadd(K.teamKeys(key.teamId), 0, key.id)
      .set(K.hash(key.hash), key.id)
      .exec();
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    await this.connection.ready();
    const value = await this.client.get(K.key(id));
    return value === null ? undefined : (JSON.parse(value) as KeyRecord);
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    await this.connection.ready();
    const id = await this.client.get(K.hash(hash));
    if (id === null) return undefined;
    const key = await this.getKey(id);
    if (!key) return undefined;
    if (key.hash !== hash && !key.retiredHashes.some((r) => r.hash === hash && r.until > Date.now()))
      return undefined;
    return key;
  }

  async listKeys(query: PageQuery & { teamId?: string | undefined }): Promise<Page<KeyRecord>> {
    await this.connection.ready();
    const zset = query.teamId === undefined ? K.keys : K.teamKeys(query.teamId);
    const { ids, hasMore } = await lexPage(this.client, zset, query);
    const values = ids.length ? await this.client.mget(ids.map(K.key)) : [];
    return { items: parseAll<KeyRecord>(values), hasMore };
  }

  async updateKey(next: KeyRecord, previous: KeyRecord): Promise<boolean> {
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
    return (await this.connection.run(UPDATE_KEY, keys, args)) === 1;
  }

  async touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    await this.connection.run(
      TOUCH_KEYS,
      [K.lastUsed],
      [...lastUsed].flatMap(([id, at]) => [id, String(at)]),
    );
  }

  async lastUsed(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (ids.length === 0) return out;
    await this.connection.ready();
    const values = await this.client.hmget(K.lastUsed, ...ids);
    ids.forEach((id, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) out.set(id, Number(value));
    });
    return out;
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    await this.connection.ready();
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
    await this.connection.ready();
    const { ids, hasMore } = await lexPage(this.client, K.audit, query);
    const values = ids.length ? await this.client.hmget(K.auditData, ...ids) : [];
    return { items: parseAll<AuditEvent>(values), hasMore };
  }

  async setSettingIfAbsent(name: string, value: string): Promise<string> {
    await this.connection.ready();
    await this.client.hsetnx(K.settings, name, value);
    return (await this.client.hget(K.settings, name)) ?? value;
  }
}
