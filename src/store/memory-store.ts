import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BUDGET_TTL_MS,
  EXPIRED_RESERVATION_GRACE_MS,
  MINUTE_MS,
  nextWindowInMs,
  type QuotaBudget,
  type QuotaLimitKind,
  type QuotaReservationRequest,
  type QuotaReservationResult,
  type QuotaScope,
  type QuotaScopeStatus,
  type QuotaSettleOutcome,
  type QuotaTokenWindow,
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
import { type AtomicWriteHooks, writeFileAtomic } from './atomic-file.js';
import { MemoryCacheStore } from './memory-cache-store.js';
import type { Store } from './store.js';

const FILE_NAME = 'tollgate-state.json';
const AUDIT_CAP = 10_000;
const REQUEST_LOG_CAP = 10_000;

interface PersistedState {
  version: 1;
  teams: TeamRecord[];
  keys: KeyRecord[];
  audit: AuditEvent[];
  settings: Record<string, string>;
  lastUsed: Record<string, number>;
}

export interface MemoryStoreOptions {
  /** Where teams and keys persist; none keeps everything in memory only (tests). */
  dataDir?: string | undefined;
  writeHooks?: AtomicWriteHooks;
  /** The response cache's byte cap (default 64 MiB). */
  cacheMaxBytes?: number | undefined;
}

function page<T extends { id: string }>(sorted: T[], query: PageQuery): Page<T> {
  const start = query.after === undefined ? 0 : sorted.findIndex((item) => item.id > (query.after as string));
  if (start === -1) return { items: [], hasMore: false };
  const items = sorted.slice(start, start + query.limit);
  return { items, hasMore: start + query.limit < sorted.length };
}

const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

interface Counter {
  fields: Map<string, number>;
  /** In the callers' clock (nowMs), like the reservations; 0 = never. */
  expiresAt: number;
}

interface QuotaRecord {
  expiresAt: number;
  tokens: number;
  usdMicros: number;
  /** Counter names this reservation added to. */
  slots: string[];
  windows: string[];
  budgets: Array<{ name: string; ttlMs: number }>;
  /** Set once expired: kept until then so a late settle still records the spend. */
  purgeAt?: number;
}

const counterName = {
  slots: (scope: string) => `conc:${scope}`,
  window: (scope: string, nowMs: number) => `tpm:${scope}:${tpmWindow(nowMs)}`,
  budget: (scope: string, budget: QuotaBudget) => `bud:${scope}:${budget.period}:${budget.periodKey}`,
};

/**
 * The reservation engine in process, mirroring the Redis scripts step by step (same counter
 * names, same order of checks) so both stores answer the contract alike. Each method runs
 * synchronously to completion, which is what makes it atomic here.
 */
class MemoryQuotas {
  private readonly counters = new Map<string, Counter>();
  private readonly reservations = new Map<string, Map<string, QuotaRecord>>();
  private nextSweep = 0;

  private get(team: string, name: string, field: string, nowMs: number): number {
    const counter = this.counters.get(`${team}\n${name}`);
    if (!counter || (counter.expiresAt !== 0 && counter.expiresAt <= nowMs)) return 0;
    return counter.fields.get(field) ?? 0;
  }

  /** Adds delta (never going below 0); ttlMs > 0 restarts the counter's lifetime, like PEXPIRE. */
  private add(team: string, name: string, field: string, delta: number, nowMs: number, ttlMs = -1): void {
    const id = `${team}\n${name}`;
    let counter = this.counters.get(id);
    if (!counter || (counter.expiresAt !== 0 && counter.expiresAt <= nowMs)) {
      counter = { fields: new Map(), expiresAt: 0 };
      this.counters.set(id, counter);
    }
    counter.fields.set(field, Math.max(0, (counter.fields.get(field) ?? 0) + delta));
    if (ttlMs > 0) counter.expiresAt = nowMs + ttlMs;
  }

  private exists(team: string, name: string, nowMs: number): boolean {
    const counter = this.counters.get(`${team}\n${name}`);
    return counter !== undefined && (counter.expiresAt === 0 || counter.expiresAt > nowMs);
  }

  /** Frees what a live reservation holds besides its minute window (which keeps what it used). */
  private unreserve(team: string, record: QuotaRecord, nowMs: number): void {
    for (const name of record.slots) this.add(team, name, 'n', -1, nowMs);
    for (const budget of record.budgets) {
      this.add(team, budget.name, 'rt', -record.tokens, nowMs);
      this.add(team, budget.name, 'ru', -record.usdMicros, nowMs);
    }
  }

  private reap(team: string, nowMs: number): Map<string, QuotaRecord> {
    if (nowMs >= this.nextSweep) {
      // Old minute windows and past periods go away, so nothing grows forever.
      for (const [id, counter] of this.counters)
        if (counter.expiresAt !== 0 && counter.expiresAt <= nowMs) this.counters.delete(id);
      this.nextSweep = nowMs + MINUTE_MS;
    }
    let records = this.reservations.get(team);
    if (!records) {
      records = new Map();
      this.reservations.set(team, records);
    }
    for (const [id, record] of records) {
      if (record.purgeAt !== undefined) {
        if (record.purgeAt <= nowMs) records.delete(id);
      } else if (record.expiresAt <= nowMs) {
        this.unreserve(team, record, nowMs);
        record.purgeAt = nowMs + EXPIRED_RESERVATION_GRACE_MS;
      }
    }
    return records;
  }

  reserve(request: QuotaReservationRequest): QuotaReservationResult {
    validateReservation(request);
    const { teamId: team, nowMs, tokens, usdMicros } = request;
    const records = this.reap(team, nowMs);
    // A repeated reservation id is the same reservation (a retried call), never a second one.
    if (records.has(request.reservationId)) return { granted: true };

    let refusal: { rank: number; result: QuotaReservationResult } | undefined;
    const refuse = (rank: number, result: QuotaReservationResult) => {
      if (!refusal || rank < refusal.rank) refusal = { rank, result };
    };
    const denial = (scope: QuotaScope, limit: QuotaLimitKind, limitValue: number, used: number) => ({
      granted: false as const,
      scope: scope.id,
      limit,
      limitValue,
      remaining: Math.max(0, limitValue - used),
    });
    // Budgets first, then concurrency, then tpm: a budget refusal must not be retried, so it is
    // the one to report when several limits refuse.
    for (const scope of request.scopes) {
      for (const budget of scope.budgets ?? []) {
        const name = counterName.budget(scope.id, budget);
        const usedTokens = this.get(team, name, 'st', nowMs) + this.get(team, name, 'rt', nowMs);
        const usedUsd = this.get(team, name, 'su', nowMs) + this.get(team, name, 'ru', nowMs);
        const period = { period: budget.period, periodKey: budget.periodKey };
        if (budget.maxTokens !== undefined && usedTokens + tokens > budget.maxTokens)
          refuse(1, { ...denial(scope, 'budget_tokens', budget.maxTokens, usedTokens), ...period });
        if (budget.maxUsdMicros !== undefined && usedUsd + usdMicros > budget.maxUsdMicros)
          refuse(2, { ...denial(scope, 'budget_usd', budget.maxUsdMicros, usedUsd), ...period });
      }
      if (scope.maxConcurrent !== undefined) {
        const inUse = this.get(team, counterName.slots(scope.id), 'n', nowMs);
        if (inUse + 1 > scope.maxConcurrent)
          refuse(3, denial(scope, 'concurrency', scope.maxConcurrent, inUse));
      }
      if (scope.tokensPerMinute !== undefined) {
        const used = this.get(team, counterName.window(scope.id, nowMs), 't', nowMs);
        if (used + tokens > scope.tokensPerMinute)
          refuse(4, {
            ...denial(scope, 'tokens_per_minute', scope.tokensPerMinute, used),
            retryAfterMs: nextWindowInMs(nowMs),
          });
      }
    }
    if (refusal) return refusal.result;

    const record: QuotaRecord = {
      expiresAt: nowMs + request.ttlMs,
      tokens,
      usdMicros,
      slots: [],
      windows: [],
      budgets: [],
    };
    let tightest: QuotaTokenWindow | undefined;
    for (const scope of request.scopes) {
      for (const budget of scope.budgets ?? []) {
        const name = counterName.budget(scope.id, budget);
        const ttlMs = BUDGET_TTL_MS[budget.period];
        this.add(team, name, 'rt', tokens, nowMs, ttlMs);
        this.add(team, name, 'ru', usdMicros, nowMs, ttlMs);
        record.budgets.push({ name, ttlMs });
      }
      if (scope.maxConcurrent !== undefined) {
        const name = counterName.slots(scope.id);
        this.add(team, name, 'n', 1, nowMs);
        record.slots.push(name);
      }
      if (scope.tokensPerMinute !== undefined) {
        const name = counterName.window(scope.id, nowMs);
        this.add(team, name, 't', tokens, nowMs, TPM_WINDOW_TTL_MS);
        record.windows.push(name);
        const remaining = Math.max(0, scope.tokensPerMinute - this.get(team, name, 't', nowMs));
        if (!tightest || remaining < tightest.remaining)
          tightest = {
            scope: scope.id,
            limit: scope.tokensPerMinute,
            remaining,
            resetMs: nextWindowInMs(nowMs),
          };
      }
    }
    records.set(request.reservationId, record);
    return tightest ? { granted: true, tokensPerMinute: tightest } : { granted: true };
  }

  finish(team: string, id: string, actual: QuotaUsage | undefined, nowMs: number): QuotaSettleOutcome {
    validateTeamId(team);
    if (actual) validateUsage(actual);
    const records = this.reap(team, nowMs);
    const record = records.get(id);
    if (!record) return 'unknown';
    records.delete(id);
    const live = record.purgeAt === undefined;
    if (live) this.unreserve(team, record, nowMs);
    const used = actual ?? { tokens: 0, usdMicros: 0 };
    for (const budget of record.budgets) {
      this.add(team, budget.name, 'st', used.tokens, nowMs, budget.ttlMs);
      this.add(team, budget.name, 'su', used.usdMicros, nowMs, budget.ttlMs);
    }
    // A window that has already gone needs no correction.
    for (const name of record.windows)
      if (this.exists(team, name, nowMs)) this.add(team, name, 't', used.tokens - record.tokens, nowMs);
    if (!live) return 'expired';
    return actual ? 'settled' : 'released';
  }

  status(team: string, scopes: QuotaScope[], nowMs: number): QuotaScopeStatus[] {
    validateTeamId(team);
    validateScopes(scopes);
    this.reap(team, nowMs);
    return scopes.map((scope) =>
      scopeStatus(scope, nowMs, {
        window: this.get(team, counterName.window(scope.id, nowMs), 't', nowMs),
        slots: this.get(team, counterName.slots(scope.id), 'n', nowMs),
        budgets: (scope.budgets ?? []).map((budget) => {
          const name = counterName.budget(scope.id, budget);
          return ['st', 'su', 'rt', 'ru'].map((field) => this.get(team, name, field, nowMs)) as [
            number,
            number,
            number,
            number,
          ];
        }),
      }),
    );
  }
}

/**
 * The embedded default: state in this process. Teams, keys, the audit log and settings are
 * written to one file in the data directory after every change (atomically), and read back
 * on start; counters and cache entries live in memory only.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  private closed = false;
  private readonly teams = new Map<string, TeamRecord>();
  private readonly keys = new Map<string, KeyRecord>();
  private readonly hashes = new Map<string, string>();
  private audit: AuditEvent[] = [];
  private readonly settings = new Map<string, string>();
  private readonly used = new Map<string, number>();
  /** day -> [team, key, model] as JSON -> sums. In memory only, like the other counters. */
  private readonly usage = new Map<string, Map<string, Record<UsageMetric, number>>>();
  private requestLog: Array<UsageRecord & { id: string }> = [];
  private requestSequence = 0;
  private writing: Promise<void> = Promise.resolve();
  private readonly quotas = new MemoryQuotas();
  readonly cache: MemoryCacheStore;

  private constructor(private readonly options: MemoryStoreOptions) {
    this.cache = new MemoryCacheStore({ maxBytes: options.cacheMaxBytes });
  }

  /** Opens the store, loading the data directory's file if there is one. */
  static async open(options: MemoryStoreOptions = {}): Promise<MemoryStore> {
    const store = new MemoryStore(options);
    if (options.dataDir) await store.load(options.dataDir);
    return store;
  }

  private get file(): string | undefined {
    return this.options.dataDir ? join(this.options.dataDir, FILE_NAME) : undefined;
  }

  private async load(dataDir: string): Promise<void> {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    let text: string;
    try {
      text = await readFile(join(dataDir, FILE_NAME), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    // Writes are atomic, so a file that does not parse was damaged outside the gateway:
    // refuse to start rather than silently begin again with no teams or keys.
    const state = JSON.parse(text) as PersistedState;
    for (const team of state.teams) this.teams.set(team.id, team);
    for (const key of state.keys) this.indexKey(key);
    // Paging follows ids (as in Redis), so keep the log in id order whatever the file's order.
    this.audit = [...state.audit].sort(byId);
    for (const [name, value] of Object.entries(state.settings)) this.settings.set(name, value);
    for (const [id, at] of Object.entries(state.lastUsed ?? {})) this.used.set(id, at);
  }

  private persist(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const state: PersistedState = {
      version: 1,
      teams: [...this.teams.values()],
      keys: [...this.keys.values()],
      audit: this.audit,
      settings: Object.fromEntries(this.settings),
      lastUsed: Object.fromEntries(this.used),
    };
    const data = JSON.stringify(state);
    // One write at a time, in order: the last one to land is the newest state.
    this.writing = this.writing
      .catch(() => {})
      .then(() => writeFileAtomic(file, data, this.options.writeHooks));
    return this.writing;
  }

  private indexKey(key: KeyRecord): void {
    const previous = this.keys.get(key.id);
    if (previous) {
      this.hashes.delete(previous.hash);
      for (const retired of previous.retiredHashes) this.hashes.delete(retired.hash);
    }
    this.keys.set(key.id, key);
    this.hashes.set(key.hash, key.id);
    for (const retired of key.retiredHashes) this.hashes.set(retired.hash, key.id);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store is closed');
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.cache.close();
    await this.writing.catch(() => {});
  }

  async insertTeam(team: TeamRecord): Promise<void> {
    this.teams.set(team.id, structuredClone(team));
    await this.persist();
  }

  async getTeam(id: string): Promise<TeamRecord | undefined> {
    const team = this.teams.get(id);
    return team && structuredClone(team);
  }

  async listTeams(query: PageQuery): Promise<Page<TeamRecord>> {
    const result = page([...this.teams.values()].sort(byId), query);
    return { items: result.items.map((team) => structuredClone(team)), hasMore: result.hasMore };
  }

  async updateTeam(team: TeamRecord): Promise<void> {
    this.teams.set(team.id, structuredClone(team));
    await this.persist();
  }

  async deleteTeam(id: string): Promise<void> {
    this.teams.delete(id);
    await this.persist();
  }

  async insertKey(key: KeyRecord): Promise<void> {
    this.indexKey(structuredClone(key));
    await this.persist();
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    const key = this.keys.get(id);
    return key && structuredClone(key);
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    const id = this.hashes.get(hash);
    const key = id === undefined ? undefined : this.keys.get(id);
    if (!key) return undefined;
    if (key.hash !== hash && !key.retiredHashes.some((r) => r.hash === hash && r.until > Date.now()))
      return undefined;
    return structuredClone(key);
  }

  async listKeys(query: PageQuery & { teamId?: string | undefined }): Promise<Page<KeyRecord>> {
    const all = [...this.keys.values()].filter(
      (key) => query.teamId === undefined || key.teamId === query.teamId,
    );
    const result = page(all.sort(byId), query);
    return { items: result.items.map((key) => structuredClone(key)), hasMore: result.hasMore };
  }

  async updateKey(next: KeyRecord, previous: KeyRecord): Promise<boolean> {
    if (JSON.stringify(this.keys.get(next.id)) !== JSON.stringify(previous)) return false;
    this.indexKey(structuredClone(next));
    await this.persist();
    return true;
  }

  async touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    for (const [id, at] of lastUsed) if ((this.used.get(id) ?? 0) < at) this.used.set(id, at);
    await this.persist();
  }

  async lastUsed(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const id of ids) {
      const at = this.used.get(id);
      if (at !== undefined) out.set(id, at);
    }
    return out;
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    // Events of one millisecond get ids in random order, and `after` cursors compare ids: insert
    // in id order (almost always at the end) so a page never skips or repeats an event.
    let at = this.audit.length;
    while (at > 0 && this.audit[at - 1]!.id > event.id) at--;
    this.audit.splice(at, 0, structuredClone(event));
    if (this.audit.length > AUDIT_CAP) this.audit = this.audit.slice(-AUDIT_CAP);
    await this.persist();
  }

  async listAudit(query: PageQuery): Promise<Page<AuditEvent>> {
    const result = page(this.audit, query);
    return { items: result.items.map((event) => structuredClone(event)), hasMore: result.hasMore };
  }

  async recordUsage(records: readonly UsageRecord[]): Promise<void> {
    for (const record of records) this.recordOne(record);
  }

  private recordOne(record: UsageRecord): void {
    const day = utcDay(record.at);
    const sums = this.usage.get(day) ?? new Map<string, Record<UsageMetric, number>>();
    this.usage.set(day, sums);
    const field = JSON.stringify([record.teamId, record.keyId, record.model]);
    const row = sums.get(field) ?? emptySums();
    const add = metricsOf(record);
    for (const metric of USAGE_METRICS) row[metric] += add[metric];
    sums.set(field, row);
    this.requestLog.push({
      ...structuredClone(record),
      id: String(++this.requestSequence).padStart(12, '0'),
    });
    if (this.requestLog.length > REQUEST_LOG_CAP) this.requestLog = this.requestLog.slice(-REQUEST_LOG_CAP);
  }

  async usageRows(query: UsageQuery): Promise<UsageRow[]> {
    const rows: UsageRow[] = [];
    for (const day of daysBetween(query.from, query.to)) {
      for (const [field, sums] of this.usage.get(day) ?? []) {
        const [teamId, keyId, model] = JSON.parse(field) as [string, string, string];
        if (query.teamId && teamId !== query.teamId) continue;
        if (query.keyId && keyId !== query.keyId) continue;
        if (query.model && model !== query.model) continue;
        rows.push({ day, teamId, keyId, model, sums: { ...sums } });
      }
    }
    return rows;
  }

  async listRequests(query: { limit: number; before?: string | undefined }) {
    const newestFirst = [...this.requestLog].reverse();
    const start =
      query.before === undefined ? 0 : newestFirst.findIndex((r) => r.id < (query.before as string));
    if (start === -1) return { items: [], hasMore: false };
    const items = newestFirst.slice(start, start + query.limit).map((r) => structuredClone(r));
    return { items, hasMore: start + query.limit < newestFirst.length };
  }

  async setSettingIfAbsent(name: string, value: string): Promise<string> {
    const existing = this.settings.get(name);
    if (existing !== undefined) return existing;
    this.settings.set(name, value);
    await this.persist();
    return value;
  }

  async reserveQuota(request: QuotaReservationRequest): Promise<QuotaReservationResult> {
    return this.quotas.reserve(request);
  }

  async settleQuota(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return this.quotas.finish(teamId, reservationId, actual, nowMs);
  }

  async releaseQuota(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome> {
    return this.quotas.finish(teamId, reservationId, undefined, nowMs);
  }

  async quotaStatus(teamId: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]> {
    return this.quotas.status(teamId, scopes, nowMs);
  }
}
