import type { AuditEvent, KeyRecord, Page, PageQuery, TeamRecord } from '../registry/records.js';

/**
 * Teams, keys, the audit log and settings: the gateway's small, durable state (`Store.registry`).
 * A memory and a Redis implementation side by side (memory-registry-store.ts,
 * redis-registry-store.ts) and one contract suite (test/store-contract.test.ts).
 */
export interface RegistryStore {
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
}
