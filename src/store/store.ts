import type {
  QuotaReservationRequest,
  QuotaReservationResult,
  QuotaScope,
  QuotaScopeStatus,
  QuotaSettleOutcome,
  QuotaUsage,
} from '../quota/quota-types.js';
import type { AuditEvent, KeyRecord, Page, PageQuery, TeamRecord } from '../registry/records.js';
import type { UsageQuery, UsageRecord, UsageRow } from '../usage/usage-record.js';
import type { CacheStore } from './cache-store.js';

/**
 * The one seam for shared state, in gateway terms. Two implementations side by side
 * (memory-store.ts, redis-store.ts) and one contract suite (test/store-contract.test.ts).
 * Counters, usage and cache entries join it with the features that need them.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  /** The response cache's entries and in-flight coalescing (closed with the store). */
  readonly cache: CacheStore;
  /** Resolves when the store can serve requests; rejects with the reason otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;

  insertTeam(team: TeamRecord): Promise<void>;
  getTeam(id: string): Promise<TeamRecord | undefined>;
  listTeams(query: PageQuery): Promise<Page<TeamRecord>>;
  updateTeam(team: TeamRecord): Promise<void>;
  /** Removes the team; its keys must have been revoked first (callers check). */
  deleteTeam(id: string): Promise<void>;

  /** Record, hash index and team index, atomically. */
  insertKey(key: KeyRecord): Promise<void>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  /** The key whose current secret, or a retired one still in its grace period, has this hash. */
  findKeyByHash(hash: string): Promise<KeyRecord | undefined>;
  listKeys(query: PageQuery & { teamId?: string | undefined }): Promise<Page<KeyRecord>>;
  /**
   * Replaces `previous` with `next` if the stored record is still `previous` (else false: the
   * caller re-reads and retries). Hash changes (rotation) reach the index in the same atomic
   * step: the new hash resolves, retired hashes keep resolving until their `until`.
   */
  updateKey(next: KeyRecord, previous: KeyRecord): Promise<boolean>;
  /** Last-used times, batched by the caller so a request never waits on this write. */
  touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void>;
  lastUsed(ids: readonly string[]): Promise<Map<string, number>>;

  appendAudit(event: AuditEvent): Promise<void>;
  listAudit(query: PageQuery): Promise<Page<AuditEvent>>;

  /** Small named values (the admin key's hash). Set only if absent; returns what is stored. */
  setSettingIfAbsent(name: string, value: string): Promise<string>;

  /**
   * Quotas (see src/quota/quota-types.ts for the semantics): one atomic, all-or-nothing
   * reservation of tokens, a concurrency slot and budget over every scope of one team.
   */
  reserveQuota(request: QuotaReservationRequest): Promise<QuotaReservationResult>;
  /** Replaces the estimate by the actual usage everywhere and frees the slot; repeats are no-ops. */
  settleQuota(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome>;
  /** Refunds the whole reservation (the upstream failed); repeats are no-ops. */
  releaseQuota(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome>;
  /** What each scope has left now, for response headers and the admin API. */
  quotaStatus(teamId: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]>;

  /** Adds requests' usage to their days' sums and to the capped request log (a batch, in order). */
  recordUsage(records: readonly UsageRecord[]): Promise<void>;
  /** The day x team x key x model sums within the query's days, filtered. */
  usageRows(query: UsageQuery): Promise<UsageRow[]>;
  /** The request log, newest first; `before` is the previous page's last `id`. */
  listRequests(query: {
    limit: number;
    before?: string | undefined;
  }): Promise<{ items: Array<UsageRecord & { id: string }>; hasMore: boolean }>;
}
