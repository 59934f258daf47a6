/**
 * Teams and keys as the Store keeps them. Timestamps are Unix milliseconds here and Unix
 * seconds on the wire (see public-objects.ts). Secrets never appear: a key is its SHA-256.
 */
export interface KeyPolicy {
  /** Models new keys get when their creator names none. */
  models?: string[];
  /** Lifetime of new keys when their creator sets no expiry. */
  expires_in_seconds?: number;
}

export interface TeamRecord {
  id: string;
  name: string;
  /** Model names or patterns (`*`, `prefix/*`) this team may use. */
  models: string[];
  defaultKeyPolicy: KeyPolicy | null;
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
