import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import {
  BUDGET_TTL_MS,
  EXPIRED_RESERVATION_GRACE_MS,
  MINUTE_MS,
  nextWindowInMs,
  type QuotaLimitKind,
  type QuotaReservationRequest,
  type QuotaReservationResult,
  type QuotaScope,
  type QuotaScopeStatus,
  type QuotaSettleOutcome,
  type QuotaUsage,
  scopeStatus,
  TPM_WINDOW_TTL_MS,
  tpmWindow,
  validateReservation,
  validateScopes,
  validateTeamId,
  validateUsage,
} from '../quota/quota-types.js';
import type { AuditEvent, KeyRecord, Page, PageQuery, TeamRecord } from '../registry/records.js';
import {
  daysBetween,
  emptySums,
  metricsOf,
  USAGE_METRICS,
  type UsageMetric,
  type UsageQuery,
  type UsageRecord,
  type UsageRow,
  utcDay,
} from '../usage/usage-record.js';
import { RedisCacheStore } from './redis-cache-store.js';
import { createRedisClient, type RedisTarget } from './redis-client.js';
import type { Store } from './store.js';
import { failClosedOnOutage, StoreUnavailableError } from './store-unavailable.js';

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
const REQUEST_LOG = 'tg:{usage-log}:requests';
const REQUEST_LOG_CAP = 100_000;
const USAGE_DAY_TTL_SECONDS = 400 * 86_400;
const FIRST_CONNECTION_WAIT_MS = 2_000;
/** How long closing waits for Redis to answer what was sent before it. */
const QUIT_WAIT_MS = 2_000;

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

/**
 * Quota state of one team: every key under the team's own hash tag, so on a Cluster a team's
 * reservation is one script on one node while teams spread over all of them.
 */
const quotaPrefix = (teamId: string) => `tg:{q:${teamId}}:`;
const Q = {
  /** Hash: reservation id -> its record (JSON written by TypeScript, only decoded in Lua). */
  records: (p: string) => `${p}res`,
  /** Sorted set: live reservation ids by expiry time. */
  live: (p: string) => `${p}live`,
  /** Sorted set: expired reservation ids by when their record is forgotten. */
  expired: (p: string) => `${p}expired`,
  slots: (p: string, scope: string) => `${p}conc:${scope}`,
  window: (p: string, scope: string, nowMs: number) => `${p}tpm:${scope}:${tpmWindow(nowMs)}`,
  budget: (p: string, scope: string, period: string, periodKey: string) =>
    `${p}bud:${scope}:${period}:${periodKey}`,
};

/**
 * Shared start of every quota script. KEYS[1..3]: records, live, expired; ARGV[1]: now (the
 * caller's clock, so tests can inject time), ARGV[2]: how long expired records are kept.
 * Reaps reservations whose ttl has passed (lost processes): their slot and outstanding budget
 * amounts are freed, their minute window keeps what they reserved (those tokens may well have
 * been used), and the record stays for the grace period so a late settle still records spend.
 * Keys named in records are not in KEYS, but share the team's hash tag, so the same slot.
 */
const QUOTA_PRELUDE = `
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[2])
local function num(v) return tonumber(v) or 0 end
-- Numbers go to redis.call as text: Lua prints -0 as '-0' and big ones as '1e+15', which
-- HINCRBY/INCRBY refuse. Whole numbers are always passed through int().
local function int(n) return string.format('%d', n) end
local function extend(k, ms)
  local left = redis.call('PTTL', k)
  if left == -1 or left < ms then redis.call('PEXPIRE', k, ms) end
end
local function unreserve(r)
  for _, k in ipairs(r.c) do
    if redis.call('DECR', k) <= 0 then redis.call('DEL', k) end
  end
  for _, b in ipairs(r.b) do
    if redis.call('EXISTS', b[1]) == 1 then
      if redis.call('HINCRBY', b[1], 'rt', int(-r.t)) < 0 then redis.call('HSET', b[1], 'rt', 0) end
      if redis.call('HINCRBY', b[1], 'ru', int(-r.u)) < 0 then redis.call('HSET', b[1], 'ru', 0) end
    end
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    unreserve(cjson.decode(raw))
    redis.call('ZADD', KEYS[3], now + grace, id)
    extend(KEYS[3], grace)
    extend(KEYS[1], grace)
  end
  redis.call('ZREM', KEYS[2], id)
end
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(forgotten) do redis.call('HDEL', KEYS[1], id) end
if #forgotten > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
`;

/**
 * All-or-nothing reservation. ARGV[3]: id, ARGV[4]: plan, ARGV[5]: record. Every limit is
 * checked against the state before the request; only if none refuses is anything written.
 * Refusal ranks: budget tokens, budget USD, concurrency, tpm (a budget refusal must not be
 * retried, so it is the one reported); within a rank the first scope.
 * Returns {1} or {0, scope index, rank, limit, remaining, retry after ms or -1, budget index};
 * a grant with tokens-per-minute limits adds the tightest: {1, scope index, limit, remaining}.
 */
const RESERVE_QUOTA = `${QUOTA_PRELUDE}
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return {1} end
local plan = cjson.decode(ARGV[4])
local t, u = plan.t, plan.u
local deny = nil
local function refuse(rank, scope, limit, used, retry, budget)
  if deny == nil or rank < deny[3] then
    deny = {0, scope, rank, limit, math.max(0, limit - used), retry, budget}
  end
end
for i, s in ipairs(plan.s) do
  for j, b in ipairs(s.b) do
    local v = redis.call('HMGET', b.k, 'st', 'su', 'rt', 'ru')
    local usedT = num(v[1]) + num(v[3])
    local usedU = num(v[2]) + num(v[4])
    if b.mt and usedT + t > b.mt then refuse(1, i, b.mt, usedT, -1, j) end
    if b.mu and usedU + u > b.mu then refuse(2, i, b.mu, usedU, -1, j) end
  end
  if s.c then
    local inUse = num(redis.call('GET', s.c.k))
    if inUse + 1 > s.c.max then refuse(3, i, s.c.max, inUse, -1, 0) end
  end
  if s.m then
    local used = num(redis.call('GET', s.m.k))
    if used + t > s.m.max then refuse(4, i, s.m.max, used, plan.retry, 0) end
  end
end
if deny then return deny end
local tight = nil
for i, s in ipairs(plan.s) do
  for _, b in ipairs(s.b) do
    redis.call('HINCRBY', b.k, 'rt', int(t))
    redis.call('HINCRBY', b.k, 'ru', int(u))
    if b.ttl > 0 then redis.call('PEXPIRE', b.k, b.ttl) end
  end
  if s.c then
    redis.call('INCR', s.c.k)
    extend(s.c.k, plan.keep)
  end
  if s.m then
    local left = math.max(0, s.m.max - redis.call('INCRBY', s.m.k, int(t)))
    redis.call('PEXPIRE', s.m.k, plan.window)
    if tight == nil or left < tight[3] then tight = {i, s.m.max, left} end
  end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[2], plan.e, ARGV[3])
extend(KEYS[1], plan.keep)
extend(KEYS[2], plan.keep)
if tight then return {1, tight[1], tight[2], tight[3]} end
return {1}
`;

/**
 * Settle (ARGV[6] = '1': replace the estimate by the actual usage ARGV[4] tokens, ARGV[5]
 * micro-USD) or release (ARGV[6] = '0': refund all) reservation ARGV[3]. The record is deleted,
 * so a repeat finds nothing and changes nothing. A minute window that has gone needs no fixing.
 * Returns 0 unknown, 1 live, 2 expired.
 */
const FINISH_QUOTA = `${QUOTA_PRELUDE}
local raw = redis.call('HGET', KEYS[1], ARGV[3])
if not raw then return 0 end
local r = cjson.decode(raw)
local live = redis.call('ZSCORE', KEYS[2], ARGV[3])
if live then unreserve(r) end
local at, au = 0, 0
if ARGV[6] == '1' then at, au = tonumber(ARGV[4]), tonumber(ARGV[5]) end
for _, b in ipairs(r.b) do
  redis.call('HINCRBY', b[1], 'st', int(at))
  redis.call('HINCRBY', b[1], 'su', int(au))
  if b[2] > 0 then redis.call('PEXPIRE', b[1], b[2]) end
end
for _, k in ipairs(r.m) do
  if redis.call('EXISTS', k) == 1 and redis.call('INCRBY', k, int(at - r.t)) < 0 then
    redis.call('SET', k, 0, 'KEEPTTL')
  end
end
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if live then return 1 end
return 2
`;

/**
 * Reads counters after reaping (hence a script, not plain reads). ARGV[3]: per scope
 * {m = window key, c = slots key, b = budget keys}. Returns per scope: window tokens, slots in
 * use, then settled tokens, settled USD, reserved tokens, reserved USD per budget.
 */
const QUOTA_STATUS = `${QUOTA_PRELUDE}
local out = {}
for _, s in ipairs(cjson.decode(ARGV[3])) do
  table.insert(out, num(redis.call('GET', s.m)))
  table.insert(out, num(redis.call('GET', s.c)))
  for _, k in ipairs(s.b) do
    local v = redis.call('HMGET', k, 'st', 'su', 'rt', 'ru')
    for f = 1, 4 do table.insert(out, num(v[f])) end
  end
end
return out
`;

const REFUSAL_RANKS: QuotaLimitKind[] = ['budget_tokens', 'budget_usd', 'concurrency', 'tokens_per_minute'];
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const SCRIPT_SHAS = new Map(
  [RESERVE_QUOTA, FINISH_QUOTA, QUOTA_STATUS].map((script) => [script, sha1(script)]),
);

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

/** Shared state in Redis, so several gateway instances behave as one. */
export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly client: Redis | Cluster;
  readonly cache: RedisCacheStore;
  private everReady = false;
  private firstConnection: Promise<void> | undefined;
  private closed = false;

  constructor(options: RedisStoreOptions) {
    this.client = createRedisClient(options.target);
    this.client.on('ready', () => {
      this.everReady = true;
    });
    this.cache = new RedisCacheStore(this.client, () => this.connected());
    failClosedOnOutage(this, this.client);
  }

  /**
   * Fails fast while Redis is down, so an outage costs callers no waiting: once the connection
   * has been up, a command is only sent while it is up. Only the very first connection (at boot)
   * is waited for, briefly, and all callers share that one wait.
   */
  private connected(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailableError(new Error('store is closed')));
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
    // The cache gives up the claims it holds first, which takes the connection.
    await this.cache.close();
    this.closed = true;
    // QUIT is answered only after every command sent before it, so settles and usage writes
    // still in flight land instead of being cut off (a cut settle would leave its reservation
    // until its ttl). A Redis that does not answer is not waited for long.
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.client.quit().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, QUIT_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
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

  /**
   * Usage sums live in one hash per day (its own hash tag, so a day's HINCRBYs are one MULTI on
   * one Cluster slot); the request log is a capped Stream. A batch is summed here first, so it
   * costs one MULTI per day plus one pipeline of XADDs, never awaited by any response (the
   * recorder batches records after their responses ended).
   */
  async recordUsage(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.connected();
    const days = new Map<string, Map<string, number>>();
    for (const record of records) {
      const day = utcDay(record.at);
      let sums = days.get(day);
      if (!sums) {
        sums = new Map();
        days.set(day, sums);
      }
      const add = metricsOf(record);
      for (const metric of USAGE_METRICS) {
        if (add[metric] === 0) continue;
        const field = JSON.stringify([record.teamId, record.keyId, record.model, metric]);
        sums.set(field, (sums.get(field) ?? 0) + add[metric]);
      }
    }
    const writes: Array<Promise<Array<[Error | null, unknown]> | null>> = [];
    for (const [day, sums] of days) {
      const key = `tg:{usage:${day}}:sums`;
      const transaction = this.client.multi();
      for (const [field, value] of sums) transaction.hincrby(key, field, value);
      transaction.expire(key, USAGE_DAY_TTL_SECONDS);
      writes.push(transaction.exec());
    }
    const log = this.client.pipeline();
    for (const record of records)
      log.xadd(REQUEST_LOG, 'MAXLEN', '~', String(REQUEST_LOG_CAP), '*', 'r', JSON.stringify(record));
    writes.push(log.exec());
    for (const results of await Promise.all(writes)) {
      const failed = results?.find(([error]) => error !== null);
      if (failed?.[0]) throw failed[0];
    }
  }

  async usageRows(query: UsageQuery): Promise<UsageRow[]> {
    await this.connected();
    const rows = new Map<string, UsageRow>();
    for (const day of daysBetween(query.from, query.to)) {
      const fields = await this.client.hgetall(`tg:{usage:${day}}:sums`);
      for (const [field, value] of Object.entries(fields)) {
        const [teamId, keyId, model, metric] = JSON.parse(field) as [string, string, string, UsageMetric];
        if (query.teamId && teamId !== query.teamId) continue;
        if (query.keyId && keyId !== query.keyId) continue;
        if (query.model && model !== query.model) continue;
        const id = JSON.stringify([day, teamId, keyId, model]);
        let row = rows.get(id);
        if (!row) {
          row = {
            day,
            teamId,
            keyId,
            model,
            sums: emptySums(),
          };
          rows.set(id, row);
        }
        row.sums[metric] = Number(value);
      }
    }
    return [...rows.values()];
  }

  async listRequests(query: { limit: number; before?: string | undefined }) {
    await this.connected();
    const end = query.before === undefined ? '+' : `(${query.before}`;
    const entries = await this.client.xrevrange(REQUEST_LOG, end, '-', 'COUNT', query.limit + 1);
    const items = entries.slice(0, query.limit).map(([id, fields]) => ({
      ...(JSON.parse(fields[1] ?? '{}') as UsageRecord),
      id,
    }));
    return { items, hasMore: entries.length > query.limit };
  }

  async setSettingIfAbsent(name: string, value: string): Promise<string> {
    await this.connected();
    await this.client.hsetnx(K.settings, name, value);
    return (await this.client.hget(K.settings, name)) ?? value;
  }

  /**
   * EVALSHA, falling back to EVAL once per node when the script is not cached there yet (a
   * restart, a new Cluster node): the hot path then sends a hash, not the script text.
   */
  private async runScript(script: string, keys: string[], args: Array<string | number>): Promise<unknown> {
    await this.connected();
    const sha = SCRIPT_SHAS.get(script) ?? sha1(script);
    try {
      return await this.client.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.client.eval(script, keys.length, ...keys, ...args);
    }
  }

  private static quotaKeys(p: string): string[] {
    return [Q.records(p), Q.live(p), Q.expired(p)];
  }

  async reserveQuota(request: QuotaReservationRequest): Promise<QuotaReservationResult> {
    validateReservation(request);
    const { nowMs, tokens, usdMicros, ttlMs } = request;
    const p = quotaPrefix(request.teamId);
    const keys = RedisStore.quotaKeys(p);
    const record = {
      e: nowMs + ttlMs,
      t: tokens,
      u: usdMicros,
      c: [] as string[],
      m: [] as string[],
      b: [] as Array<[string, number]>,
    };
    const scopes = request.scopes.map((scope) => {
      const budgets = (scope.budgets ?? []).map((budget) => {
        const k = Q.budget(p, scope.id, budget.period, budget.periodKey);
        const ttl = BUDGET_TTL_MS[budget.period];
        record.b.push([k, ttl]);
        keys.push(k);
        return { k, mt: budget.maxTokens, mu: budget.maxUsdMicros, ttl };
      });
      let c: { k: string; max: number } | undefined;
      if (scope.maxConcurrent !== undefined) {
        c = { k: Q.slots(p, scope.id), max: scope.maxConcurrent };
        record.c.push(c.k);
        keys.push(c.k);
      }
      let m: { k: string; max: number } | undefined;
      if (scope.tokensPerMinute !== undefined) {
        m = { k: Q.window(p, scope.id, nowMs), max: scope.tokensPerMinute };
        record.m.push(m.k);
        keys.push(m.k);
      }
      return { b: budgets, c, m };
    });
    const plan = {
      t: tokens,
      u: usdMicros,
      e: nowMs + ttlMs,
      // Slot counters and the reservation index outlive every reservation in them.
      keep: ttlMs + MINUTE_MS,
      window: TPM_WINDOW_TTL_MS,
      retry: nextWindowInMs(nowMs),
      s: scopes,
    };
    const answer = (await this.runScript(RESERVE_QUOTA, keys, [
      nowMs,
      EXPIRED_RESERVATION_GRACE_MS,
      request.reservationId,
      JSON.stringify(plan),
      JSON.stringify(record),
    ])) as number[];
    if (answer[0] === 1) {
      const [, index, limit, remaining] = answer;
      const tight = index === undefined ? undefined : request.scopes[index - 1];
      return tight && limit !== undefined && remaining !== undefined
        ? {
            granted: true,
            tokensPerMinute: { scope: tight.id, limit, remaining, resetMs: plan.retry },
          }
        : { granted: true };
    }
    const [, scopeIndex = 1, rank = 1, limitValue = 0, remaining = 0, retry = -1, budgetIndex = 0] = answer;
    const scope = request.scopes[scopeIndex - 1] as QuotaScope;
    const limit = REFUSAL_RANKS[rank - 1] as QuotaLimitKind;
    const budget = budgetIndex > 0 ? scope.budgets?.[budgetIndex - 1] : undefined;
    return {
      granted: false,
      scope: scope.id,
      limit,
      limitValue,
      remaining,
      ...(retry >= 0 ? { retryAfterMs: retry } : {}),
      ...(budget ? { period: budget.period, periodKey: budget.periodKey } : {}),
    };
  }

  private async finishQuota(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage | undefined,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    validateTeamId(teamId);
    if (actual) validateUsage(actual);
    const answer = await this.runScript(FINISH_QUOTA, RedisStore.quotaKeys(quotaPrefix(teamId)), [
      nowMs,
      EXPIRED_RESERVATION_GRACE_MS,
      reservationId,
      actual?.tokens ?? 0,
      actual?.usdMicros ?? 0,
      actual ? '1' : '0',
    ]);
    if (answer === 1) return actual ? 'settled' : 'released';
    return answer === 2 ? 'expired' : 'unknown';
  }

  settleQuota(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return this.finishQuota(teamId, reservationId, actual, nowMs);
  }

  releaseQuota(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome> {
    return this.finishQuota(teamId, reservationId, undefined, nowMs);
  }

  async quotaStatus(teamId: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]> {
    validateTeamId(teamId);
    validateScopes(scopes);
    const p = quotaPrefix(teamId);
    const keys = RedisStore.quotaKeys(p);
    const plan = scopes.map((scope) => {
      const m = Q.window(p, scope.id, nowMs);
      const c = Q.slots(p, scope.id);
      const b = (scope.budgets ?? []).map((budget) => Q.budget(p, scope.id, budget.period, budget.periodKey));
      keys.push(m, c, ...b);
      return { m, c, b };
    });
    const values = (await this.runScript(QUOTA_STATUS, keys, [
      nowMs,
      EXPIRED_RESERVATION_GRACE_MS,
      JSON.stringify(plan),
    ])) as number[];
    let at = 0;
    const next = () => values[at++] ?? 0;
    return scopes.map((scope) => {
      const window = next();
      const slots = next();
      const budgets = (scope.budgets ?? []).map(
        () => [next(), next(), next(), next()] as [number, number, number, number],
      );
      return scopeStatus(scope, nowMs, { window, slots, budgets });
    });
  }
}
