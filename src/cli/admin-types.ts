/**
 * The admin API's objects and request bodies, as docs/admin-api.md describes them.
 * Field names stay snake_case so `--json` output and these types read the same.
 */

/** Unix seconds. */
export type UnixSeconds = number;

/** What the CLI writes: `--metadata key=value` only ever makes strings. */
export type Metadata = Record<string, string>;

/** What the API may hold and return: any JSON value, when written by other clients. */
export type StoredMetadata = Record<string, unknown>;

export interface ApiErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

export interface ListQuery {
  /** 1..100; the API defaults to 20. */
  limit?: number | undefined;
  /** The previous page's `last_id`. */
  after?: string | undefined;
}

export interface KeyPolicy {
  models?: string[];
  expires_in_seconds?: number;
}

export interface Team {
  id: string;
  object: 'team';
  name: string;
  /** `["*"]` allows every model the gateway serves. */
  models: string[];
  default_key_policy: KeyPolicy | null;
  metadata: StoredMetadata;
  /** Active or disabled keys: on the answers about one team only, never on list pages. */
  active_keys?: number;
  created_at: UnixSeconds;
  updated_at: UnixSeconds;
}

export interface DeletedTeam {
  id: string;
  object: 'team';
  deleted: true;
}

export interface CreateTeamRequest {
  name: string;
  models?: string[];
  default_key_policy?: KeyPolicy;
  metadata?: Metadata;
}

export interface UpdateTeamRequest {
  name?: string;
  models?: string[];
  /** `null` clears the policy. */
  default_key_policy?: KeyPolicy | null;
  /** Replaces the whole map. */
  metadata?: Metadata;
}

export type KeyStatus = 'active' | 'disabled' | 'expired' | 'revoked';

/** A key as the API shows it everywhere: never the secret, never its hash. */
export interface ApiKey {
  id: string;
  object: 'api_key';
  name: string | null;
  owner: string | null;
  team_id: string;
  /** `null`: whatever the team allows. */
  models: string[] | null;
  expires_at: UnixSeconds | null;
  disabled: boolean;
  revoked_at: UnixSeconds | null;
  status: KeyStatus;
  metadata: StoredMetadata;
  created_at: UnixSeconds;
  updated_at: UnixSeconds;
  last_used_at: UnixSeconds | null;
  /** `tg-<id>-…`: enough to recognise a key, useless to use it. */
  preview: string;
}

/** Returned only by create and rotate: the one time the plaintext exists outside its holder. */
export interface ApiKeyWithSecret extends ApiKey {
  key: string;
}

export interface CreateKeyRequest {
  team_id: string;
  name?: string;
  owner?: string;
  models?: string[];
  expires_at?: UnixSeconds;
  metadata?: Metadata;
}

export interface UpdateKeyRequest {
  name?: string;
  owner?: string;
  models?: string[];
  /** `null` clears the expiry. */
  expires_at?: UnixSeconds | null;
  disabled?: boolean;
  /** Replaces the whole map. */
  metadata?: Metadata;
}

export interface RotateKeyRequest {
  /** How long the old secret keeps working; the API defaults to 0. */
  grace_seconds?: number;
}

export interface KeyListQuery extends ListQuery {
  team_id?: string | undefined;
}

export type AuditAction =
  | 'team.create'
  | 'team.update'
  | 'team.delete'
  | 'key.create'
  | 'key.update'
  | 'key.rotate'
  | 'key.revoke';

export interface AuditEvent {
  id: string;
  object: 'audit_event';
  created_at: UnixSeconds;
  actor: 'admin';
  action: AuditAction;
  target_type: 'team' | 'api_key';
  target_id: string;
  before: Team | ApiKey | null;
  after: Team | ApiKey | null;
}

/** `GET /admin/usage`: sums per group. */
export interface UsageRow {
  day?: string;
  model?: string;
  key_id?: string;
  team_id?: string;
  /** Served (2xx from the upstream or the cache); with the next three, every request recorded. */
  requests: number;
  rejected: number;
  invalid: number;
  failed: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_usd: number;
}

export interface UsageReport {
  object: 'list';
  from: string;
  to: string;
  group_by: 'day' | 'model' | 'key' | 'team';
  data: UsageRow[];
}

export interface UsageQuery {
  team_id?: string | undefined;
  key_id?: string | undefined;
  model?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  group_by?: string | undefined;
}

/** `GET /admin/cache`: one row per cache scope that holds entries. */
export interface CacheScopeStats {
  /** `team:<id>`, `key:<id>` or `global`. */
  scope: string;
  team_id?: string;
  key_id?: string;
  entries: number;
  bytes: number;
}

export interface CacheStats {
  object: 'list';
  data: CacheScopeStats[];
}

/** At most one of these; none means every scope. */
export interface CacheQuery {
  team_id?: string | undefined;
  key_id?: string | undefined;
  scope?: 'global' | undefined;
}

export interface CachePurgeQuery extends CacheQuery {
  model?: string | undefined;
  /** Required (as `true`) when no scope is named. */
  all?: boolean | undefined;
}

/** `DELETE /admin/cache`. */
export interface CachePurge {
  object: 'cache.purge';
  deleted: number;
}

/** `GET /admin/deployments`: one row per deployment of every configured model. */
export interface Deployment {
  object: 'deployment';
  id: string;
  model: string;
  name: string;
  backend: string;
  upstream_model: string | null;
  weight: number;
  priority: number;
  circuit: {
    enabled: boolean;
    state: 'closed' | 'open' | 'half-open';
    consecutive_failures: number;
    window_requests: number;
    window_failures: number;
    retry_after_ms: number | null;
    probing: boolean;
  };
  /** On the instance that answered. */
  in_flight: number;
  latency_ms: number | null;
  limits: {
    requests_per_minute: number | null;
    tokens_per_minute: number | null;
    max_concurrent: number | null;
  };
}

export interface DeploymentList {
  object: 'list';
  data: Deployment[];
}
