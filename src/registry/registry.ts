import { InvalidRequestError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { UsageQuery, UsageRow } from '../usage/usage-record.js';
import { newKey, sortableId } from './key-material.js';
import {
  applyLimitsPatch,
  checkPolicyWithinTeam,
  checkWithinTeam,
  type LimitsPatch,
  policyWithinTeam,
} from './limits.js';
import { isWellFormedModelEntry, patternsOverlap, patternsWithin } from './model-patterns.js';
import { keyStatus, publicKey, publicTeam } from './public-objects.js';
import type {
  AuditEvent,
  Budget,
  CachePolicy,
  KeyPolicy,
  KeyRecord,
  ModelLimits,
  Page,
  PageQuery,
  TeamRecord,
} from './records.js';
import {
  KeyModelsNotAllowedError,
  KeyNotFoundError,
  KeyRevokedError,
  ModelLimitsNotAllowedError,
  TeamHasActiveKeysError,
  TeamNotFoundError,
} from './registry-errors.js';

export interface TeamInput {
  name: string;
  models?: string[] | undefined;
  default_key_policy?: KeyPolicy | null | undefined;
  limits?: LimitsPatch | null | undefined;
  budgets?: Budget[] | null | undefined;
  model_limits?: Record<string, ModelLimits> | null | undefined;
  cache?: CachePolicy | null | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface KeyInput {
  team_id: string;
  name?: string | null | undefined;
  owner?: string | null | undefined;
  models?: string[] | null | undefined;
  /** Unix seconds. */
  expires_at?: number | null | undefined;
  limits?: LimitsPatch | null | undefined;
  budgets?: Budget[] | null | undefined;
  cache?: CachePolicy | null | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface KeyPatch {
  name?: string | null | undefined;
  owner?: string | null | undefined;
  models?: string[] | null | undefined;
  expires_at?: number | null | undefined;
  limits?: LimitsPatch | null | undefined;
  budgets?: Budget[] | null | undefined;
  cache?: CachePolicy | null | undefined;
  disabled?: boolean | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface IssuedKey {
  record: KeyRecord;
  /** The plaintext key: returned once, never stored. */
  key: string;
}

const UPDATE_RETRIES = 5;

/**
 * Teams and keys: the rules (allowlists within the team's, defaults from the team's policy,
 * rotation with grace, revocation) and the audit trail of every change. Routes and the CLI
 * go through here; the Store only keeps records.
 */
export class Registry {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  private async audit(
    actor: string,
    action: AuditEvent['action'],
    target: { type: AuditEvent['targetType']; id: string },
    before: Record<string, unknown> | null,
    after: Record<string, unknown> | null,
  ): Promise<void> {
    await this.store.registry.appendAudit({
      id: sortableId('aud_'),
      createdAt: this.now(),
      actor,
      action,
      targetType: target.type,
      targetId: target.id,
      before,
      after,
    });
  }

  async getTeam(id: string): Promise<TeamRecord> {
    const team = await this.store.registry.getTeam(id);
    if (!team) throw new TeamNotFoundError(id);
    return team;
  }

  listTeams(query: PageQuery): Promise<Page<TeamRecord>> {
    return this.store.registry.listTeams(query);
  }

  /** A team's default key models must be within its own, or every default key would be refused. */
  private checkPolicy(models: string[], policy: KeyPolicy | null | undefined): void {
    const outside = (policy?.models ?? []).filter((model) => !patternsWithin([model], models));
    if (outside.length > 0) throw new KeyModelsNotAllowedError(outside, 'default_key_policy.models');
  }

  /**
   * Limits on a model the team may not use would bind nothing and read as if they did. Entries
   * are names or patterns, as in `models`: a pattern must cover some model the team may use.
   */
  private checkModelLimits(models: string[], modelLimits: Record<string, ModelLimits>): void {
    const names = Object.keys(modelLimits);
    const malformed = names.find((name) => !isWellFormedModelEntry(name));
    if (malformed !== undefined)
      throw new InvalidRequestError(
        `Invalid key '${malformed}' in 'model_limits': expected a model name, '*' or 'prefix/*' ('*' works only there).`,
        'model_limits',
      );
    const outside = names.filter((name) => !patternsOverlap(name, models));
    if (outside.length > 0) throw new ModelLimitsNotAllowedError(outside);
  }

  async createTeam(input: TeamInput, actor: string): Promise<TeamRecord> {
    this.checkPolicy(input.models ?? ['*'], input.default_key_policy);
    this.checkModelLimits(input.models ?? ['*'], input.model_limits ?? {});
    const now = this.now();
    const team: TeamRecord = {
      id: sortableId('team_'),
      name: input.name,
      models: input.models ?? ['*'],
      defaultKeyPolicy: input.default_key_policy ?? null,
      limits: applyLimitsPatch({}, input.limits),
      budgets: input.budgets ?? [],
      modelLimits: input.model_limits ?? {},
      cache: input.cache ?? null,
      metadata: input.metadata ?? {},
      createdAt: now,
      updatedAt: now,
    };
    checkPolicyWithinTeam(team.defaultKeyPolicy, team);
    await this.store.registry.insertTeam(team);
    await this.audit(actor, 'team.create', { type: 'team', id: team.id }, null, publicTeam(team));
    return team;
  }

  async updateTeam(id: string, patch: Partial<TeamInput>, actor: string): Promise<TeamRecord> {
    const before = await this.getTeam(id);
    this.checkPolicy(
      patch.models ?? before.models,
      patch.default_key_policy !== undefined ? patch.default_key_policy : before.defaultKeyPolicy,
    );
    this.checkModelLimits(
      patch.models ?? before.models,
      patch.model_limits !== undefined ? (patch.model_limits ?? {}) : (before.modelLimits ?? {}),
    );
    const team: TeamRecord = {
      ...before,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.models !== undefined ? { models: patch.models } : {}),
      ...(patch.default_key_policy !== undefined ? { defaultKeyPolicy: patch.default_key_policy } : {}),
      ...(patch.limits !== undefined ? { limits: applyLimitsPatch(before.limits, patch.limits) } : {}),
      ...(patch.budgets !== undefined ? { budgets: patch.budgets ?? [] } : {}),
      ...(patch.model_limits !== undefined ? { modelLimits: patch.model_limits ?? {} } : {}),
      ...(patch.cache !== undefined ? { cache: patch.cache } : {}),
      ...(patch.metadata !== undefined ? { metadata: patch.metadata } : {}),
      updatedAt: this.now(),
    };
    // A policy set looser than the team is refused; the team's own limits may be lowered under
    // it at any time (keys made from the policy then take the team's: policyWithinTeam), and a
    // client that sends the policy back unchanged with its other fields is not refused for that.
    const policyChanged =
      patch.default_key_policy !== undefined &&
      JSON.stringify(patch.default_key_policy) !== JSON.stringify(before.defaultKeyPolicy);
    if (policyChanged) checkPolicyWithinTeam(team.defaultKeyPolicy, team);
    await this.store.registry.updateTeam(team);
    await this.audit(actor, 'team.update', { type: 'team', id }, publicTeam(before), publicTeam(team));
    return team;
  }

  async activeKeys(teamId: string): Promise<KeyRecord[]> {
    const active: KeyRecord[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.store.registry.listKeys({ teamId, limit: 100, after });
      // Expired keys no longer work, so they do not hold a team back; disabled ones can return.
      active.push(...page.items.filter((key) => ['active', 'disabled'].includes(keyStatus(key, this.now()))));
      if (!page.hasMore || page.items.length === 0) return active;
      after = page.items.at(-1)?.id;
    }
  }

  async deleteTeam(id: string, force: boolean, actor: string): Promise<void> {
    const team = await this.getTeam(id);
    const active = await this.activeKeys(id);
    if (active.length > 0 && !force) throw new TeamHasActiveKeysError(id, active.length);
    for (const key of active) await this.revokeKey(key.id, actor);
    await this.store.registry.deleteTeam(id);
    await this.audit(actor, 'team.delete', { type: 'team', id }, publicTeam(team), null);
  }

  async getKey(id: string): Promise<KeyRecord> {
    const key = await this.store.registry.getKey(id);
    if (!key) throw new KeyNotFoundError(id);
    return key;
  }

  listKeys(query: PageQuery & { teamId?: string | undefined }): Promise<Page<KeyRecord>> {
    return this.store.registry.listKeys(query);
  }

  private checkModels(models: string[] | null | undefined, team: TeamRecord): void {
    if (!models) return;
    const outside = models.filter((model) => !patternsWithin([model], team.models));
    if (outside.length > 0) throw new KeyModelsNotAllowedError(outside);
  }

  async createKey(input: KeyInput, actor: string): Promise<IssuedKey> {
    const team = await this.getTeam(input.team_id);
    const policy = team.defaultKeyPolicy;
    const models = input.models !== undefined ? input.models : (policy?.models ?? null);
    this.checkModels(models, team);
    const now = this.now();
    const expiresAt =
      input.expires_at !== undefined
        ? input.expires_at === null
          ? null
          : input.expires_at * 1000
        : policy?.expires_in_seconds
          ? now + policy.expires_in_seconds * 1000
          : null;
    // What the request leaves out comes from the policy, within the team's current limits.
    const fromPolicy = policyWithinTeam(
      { limits: applyLimitsPatch({}, policy?.limits), budgets: policy?.budgets ?? [] },
      team,
    );
    const limits = input.limits !== undefined ? applyLimitsPatch({}, input.limits) : fromPolicy.limits;
    const budgets = input.budgets !== undefined ? (input.budgets ?? []) : fromPolicy.budgets;
    checkWithinTeam({ limits, budgets }, team);
    const id = sortableId('', 6);
    const { key, hash } = newKey(id);
    const record: KeyRecord = {
      id,
      teamId: team.id,
      name: input.name ?? null,
      owner: input.owner ?? null,
      models,
      expiresAt,
      limits,
      budgets,
      cache: input.cache ?? null,
      disabled: false,
      revokedAt: null,
      metadata: input.metadata ?? {},
      createdAt: now,
      updatedAt: now,
      hash,
      retiredHashes: [],
    };
    await this.store.registry.insertKey(record);
    await this.audit(actor, 'key.create', { type: 'api_key', id }, null, publicKey(record));
    return { record, key };
  }

  /** Read, change, compare-and-set; retried when another instance changed the key meanwhile. */
  private async changeKey(
    id: string,
    change: (key: KeyRecord) => KeyRecord | Promise<KeyRecord>,
  ): Promise<{ before: KeyRecord; after: KeyRecord }> {
    for (let attempt = 0; attempt < UPDATE_RETRIES; attempt++) {
      const before = await this.getKey(id);
      if (before.revokedAt !== null) throw new KeyRevokedError(id);
      const after = await change(structuredClone(before));
      if (await this.store.registry.updateKey(after, before)) return { before, after };
    }
    throw new Error(`API key ${id} kept changing under concurrent updates`);
  }

  async updateKey(id: string, patch: KeyPatch, actor: string): Promise<KeyRecord> {
    const { before, after } = await this.changeKey(id, async (key) => {
      const team = await this.getTeam(key.teamId);
      if (patch.models !== undefined) this.checkModels(patch.models, team);
      const limits =
        patch.limits !== undefined ? applyLimitsPatch(key.limits, patch.limits) : (key.limits ?? {});
      const budgets = patch.budgets !== undefined ? (patch.budgets ?? []) : (key.budgets ?? []);
      if (patch.limits !== undefined || patch.budgets !== undefined)
        checkWithinTeam({ limits, budgets }, team);
      return {
        ...key,
        ...(patch.limits !== undefined ? { limits } : {}),
        ...(patch.budgets !== undefined ? { budgets } : {}),
        ...(patch.cache !== undefined ? { cache: patch.cache } : {}),
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.owner !== undefined ? { owner: patch.owner } : {}),
        ...(patch.models !== undefined ? { models: patch.models } : {}),
        ...(patch.expires_at !== undefined
          ? { expiresAt: patch.expires_at === null ? null : patch.expires_at * 1000 }
          : {}),
        ...(patch.disabled !== undefined ? { disabled: patch.disabled } : {}),
        ...(patch.metadata !== undefined ? { metadata: patch.metadata } : {}),
        updatedAt: this.now(),
      };
    });
    await this.audit(actor, 'key.update', { type: 'api_key', id }, publicKey(before), publicKey(after));
    return after;
  }

  /** A new secret for the same key; the old one keeps working for `graceSeconds`. */
  async rotateKey(id: string, graceSeconds: number, actor: string): Promise<IssuedKey> {
    let plaintext = '';
    const { before, after } = await this.changeKey(id, (key) => {
      const now = this.now();
      const issued = newKey(key.id);
      plaintext = issued.key;
      const retired = key.retiredHashes.filter((r) => r.until > now);
      if (graceSeconds > 0) retired.push({ hash: key.hash, until: now + graceSeconds * 1000 });
      return { ...key, hash: issued.hash, retiredHashes: retired, updatedAt: now };
    });
    await this.audit(actor, 'key.rotate', { type: 'api_key', id }, publicKey(before), publicKey(after));
    return { record: after, key: plaintext };
  }

  async revokeKey(id: string, actor: string): Promise<KeyRecord> {
    const current = await this.getKey(id);
    if (current.revokedAt !== null) return current; // revoking twice changes nothing
    const { before, after } = await this.changeKey(id, (key) => {
      const now = this.now();
      // Secrets still in their rotation grace stay known until it ends, so they too are told
      // "revoked" (for good) rather than "incorrect".
      const retiredHashes = key.retiredHashes.filter((r) => r.until > now);
      return { ...key, revokedAt: key.revokedAt ?? now, retiredHashes, updatedAt: now };
    });
    await this.audit(actor, 'key.revoke', { type: 'api_key', id }, publicKey(before), publicKey(after));
    return after;
  }

  lastUsed(ids: readonly string[]): Promise<Map<string, number>> {
    return this.store.registry.lastUsed(ids);
  }

  usageRows(query: UsageQuery): Promise<UsageRow[]> {
    return this.store.usage.rows(query);
  }

  listRequests(query: { limit: number; before?: string | undefined }) {
    return this.store.usage.listRequests(query);
  }

  listAudit(query: PageQuery): Promise<Page<AuditEvent>> {
    return this.store.registry.listAudit(query);
  }
}
