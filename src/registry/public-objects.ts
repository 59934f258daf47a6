import type { AuditEvent, KeyRecord, TeamRecord } from './records.js';

/** What the admin API shows: snake_case, Unix seconds, never a secret or a hash. */
const seconds = (ms: number) => Math.floor(ms / 1000);
const secondsOrNull = (ms: number | null) => (ms === null ? null : seconds(ms));

export type KeyStatus = 'active' | 'disabled' | 'expired' | 'revoked';

export function keyStatus(key: KeyRecord, now = Date.now()): KeyStatus {
  if (key.revokedAt !== null) return 'revoked';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'expired';
  if (key.disabled) return 'disabled';
  return 'active';
}

export function publicTeam(team: TeamRecord, activeKeys?: number): Record<string, unknown> {
  return {
    id: team.id,
    object: 'team',
    name: team.name,
    models: team.models,
    default_key_policy: team.defaultKeyPolicy,
    limits: team.limits ?? {},
    budgets: team.budgets ?? [],
    model_limits: team.modelLimits ?? {},
    cache: team.cache ?? null,
    metadata: team.metadata,
    ...(activeKeys === undefined ? {} : { active_keys: activeKeys }),
    created_at: seconds(team.createdAt),
    updated_at: seconds(team.updatedAt),
  };
}

export function publicKey(key: KeyRecord, lastUsedAt: number | null = null): Record<string, unknown> {
  return {
    id: key.id,
    object: 'api_key',
    name: key.name,
    owner: key.owner,
    team_id: key.teamId,
    models: key.models,
    expires_at: secondsOrNull(key.expiresAt),
    limits: key.limits ?? {},
    budgets: key.budgets ?? [],
    cache: key.cache ?? null,
    disabled: key.disabled,
    revoked_at: secondsOrNull(key.revokedAt),
    status: keyStatus(key),
    metadata: key.metadata,
    created_at: seconds(key.createdAt),
    updated_at: seconds(key.updatedAt),
    last_used_at: secondsOrNull(lastUsedAt),
    preview: `tg-${key.id}-…`,
  };
}

export function publicAuditEvent(event: AuditEvent): Record<string, unknown> {
  return {
    id: event.id,
    object: 'audit_event',
    created_at: seconds(event.createdAt),
    actor: event.actor,
    action: event.action,
    target_type: event.targetType,
    target_id: event.targetId,
    before: event.before,
    after: event.after,
  };
}
