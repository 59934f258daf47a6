/**
 * Teams and keys as the Store keeps them. Timestamps are Unix milliseconds here and Unix
 * seconds on the wire (see public-objects.ts). Secrets never appear: a key is its SHA-256.
 */
/** Rate and concurrency limits of a team or a key (absent: no such limit). Wire names. */
export interface Limits {
  requests_per_minute?: number;
  requests_per_day?: number;
  tokens_per_minute?: number;
  max_concurrent?: number;
}

export const LIMIT_NAMES = [
  'requests_per_minute',
  'requests_per_day',
  'tokens_per_minute',
  'max_concurrent',
] as const;

/** A spending cap per calendar period (in the configured time zone) or over the whole lifetime. */
export interface Budget {
  period: 'day' | 'month' | 'lifetime';
  max_tokens?: number;
  max_usd?: number;
}

/** Limits and budgets a team puts on one model, shared by all its keys (`model_limits`). */
export interface ModelLimits {
  limits?: Limits;
  budgets?: Budget[];
}

/** ③ cache policy of a team or key (wire names); a field left out falls back to the model's, then config. */
export interface CachePolicy {
  enabled?: boolean;
  /** Seconds. */
  ttl?: number;
  max_temperature?: number;
  scope?: 'team' | 'key' | 'global';
}

export interface KeyPolicy {
  /** Models new keys get when their creator names none. */
  models?: string[];
  /** Lifetime of new keys when their creator sets no expiry. */
  expires_in_seconds?: number;
  /** Limits and budgets new keys get when their creator sets none. */
  limits?: Limits;
  budgets?: Budget[];
}

export interface TeamRecord {
  id: string;
  name: string;
  /** Model names or patterns (`*`, `prefix/*`) this team may use. */
  models: string[];
  defaultKeyPolicy: KeyPolicy | null;
  /** Absent on records written before limits existed: read as none. */
  limits?: Limits;
  budgets?: Budget[];
  /** Per public model name; absent on records written before it existed. */
  modelLimits?: Record<string, ModelLimits>;
  cache?: CachePolicy | null;
  metadata: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
}

/** A secret replaced by rotation that still works until `until`. */
export interface RetiredHash {
  hash: string;
  until: number;
}

export interface KeyRecord {
  /** The public id: the `<id>` in `tg-<id>-<secret>`; what lists and logs show. */
  id: string;
  teamId: string;
  name: string | null;
  owner: string | null;
  /** null: whatever the team allows. */
  models: string[] | null;
  expiresAt: number | null;
  /** Only ever tighter than the team's; the team's apply too, to all its keys together. */
  limits?: Limits;
  budgets?: Budget[];
  cache?: CachePolicy | null;
  disabled: boolean;
  revokedAt: number | null;
  metadata: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
  /** SHA-256 (hex) of the whole current key. */
  hash: string;
  retiredHashes: RetiredHash[];
}

export interface AuditEvent {
  id: string;
  createdAt: number;
  actor: string;
  action:
    | 'team.create'
    | 'team.update'
    | 'team.delete'
    | 'key.create'
    | 'key.update'
    | 'key.rotate'
    | 'key.revoke';
  targetType: 'team' | 'api_key';
  targetId: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

export interface PageQuery {
  limit: number;
  /** Exclusive: the last id of the previous page. */
  after?: string | undefined;
}

export interface Page<T> {
  items: T[];
  hasMore: boolean;
}
