import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { GatewayError, ModelNotFoundError, ServiceUnavailableError } from '../errors.js';
import { type ErrorSurface, errorSurfaceOf } from '../http/error-surface.js';
import { hashKey, publicIdOf } from '../registry/key-material.js';
import { modelAllowed } from '../registry/model-patterns.js';
import { keyStatus } from '../registry/public-objects.js';
import type { Budget, CachePolicy, KeyRecord, Limits, ModelLimits, TeamRecord } from '../registry/records.js';
import type { Store } from '../store/store.js';
import { StoreUnavailableError } from '../store/store-unavailable.js';
import type { FailedAuthLimiter } from './failed-auth-limiter.js';

/**
 * ① auth: who is calling. Credentials arrive as `Authorization: Bearer`, `api-key` (Azure
 * clients) or `x-api-key`; the presented key is only read, never forwarded upstream.
 */
export type Principal =
  | { kind: 'anonymous' }
  | {
      kind: 'key';
      keyId: string;
      teamId: string;
      teamName: string;
      teamModels: readonly string[];
      /** null: whatever the team allows. */
      keyModels: readonly string[] | null;
      /** For ② quota: the team's (shared by all its keys) and the key's own. */
      teamLimits: Limits;
      teamBudgets: readonly Budget[];
      keyLimits: Limits;
      keyBudgets: readonly Budget[];
      /** The team's limits per model name (shared by its keys). */
      teamModelLimits: Readonly<Record<string, ModelLimits>>;
      /** For ③ cache: the team's and the key's policies (null: none set). */
      teamCache: CachePolicy | null;
      keyCache: CachePolicy | null;
    };

export const ANONYMOUS: Principal = { kind: 'anonymous' };

export function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization?.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim() || undefined;
  const apiKey = request.headers['api-key'] ?? request.headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey ? apiKey : undefined;
}

/** A model must be allowed by the team and, when the key has its own list, by the key too. */
export function principalAllows(principal: Principal | undefined, model: string): boolean {
  // A route that runs without ① auth having run must fail closed.
  if (principal === undefined) return false;
  if (principal.kind === 'anonymous') return true;
  return (
    modelAllowed(principal.teamModels, model) &&
    (principal.keyModels === null || modelAllowed(principal.keyModels, model))
  );
}

/**
 * The one rule for a model outside the caller's allowlist: it does not exist for that caller.
 * The same 404 as for a name no route serves (OpenAI's own answer to both), so a key cannot
 * probe which models the gateway has. Checked before the router is asked.
 */
export function assertModelAllowed(principal: Principal | undefined, model: string): void {
  if (!principalAllows(principal, model)) throw new ModelNotFoundError(model);
}

/**
 * Every refused credential says so for good (`x-should-retry: false`): no retry turns a
 * missing, unknown, rotated-out, revoked, expired or disabled key into a valid one.
 */
export class InvalidApiKeyError extends GatewayError {
  constructor(message: string) {
    super(401, 'invalid_request_error', 'invalid_api_key', message, {
      headers: { 'x-should-retry': 'false' },
    });
  }
}

export interface AuthOptions {
  /** How long a validated key is trusted without asking the store (revocation lag); at most 1 s. */
  cacheTtlMs: number;
  /** While the store is unreachable, keys validated this recently keep working. */
  staleOkSeconds: number;
  /** Entries kept for that. */
  cacheSize: number;
}

/** A request's presented key, and its hash when it has a team key's shape. */
export interface Credential {
  presented: string | undefined;
  hash: string | undefined;
  /** Whose API the request speaks: a missing key is told how that API's clients send one. */
  surface?: ErrorSurface | undefined;
}

interface CachedKey {
  key: KeyRecord;
  team: TeamRecord;
  /**
   * Built once per lookup and handed to every request with this key until the next: later
   * stages keep what they derive from it (② quota's sealed scopes) for as long as it lives.
   */
  principal: Principal;
  at: number;
}

/**
 * A key whose team is gone: deleting a team with ?force=true revokes its keys, then deletes the
 * team, and such a key is still refused for what it is (revoked), as the admin API shows it.
 * Never cached: it cannot become usable.
 */
interface TeamlessKey {
  key: KeyRecord;
  principal: undefined;
}

const MISSING: Readonly<Record<ErrorSurface, string>> = {
  openai:
    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (or an 'api-key' or 'x-api-key' header).",
  // The Anthropic SDK sends `x-api-key`; Claude Code sends its ANTHROPIC_AUTH_TOKEN as a Bearer token.
  anthropic:
    "You didn't provide an API key. Send it as an 'x-api-key' header (or 'Authorization: Bearer <key>').",
};
const INCORRECT = 'Incorrect API key provided. Ask your Tollgate admin for a key.';
const ADMIN_KEY =
  'Incorrect API key provided: this is an admin key; /v1 needs a team API key (tg-...), ' +
  'create one with POST /admin/keys (or `npx tollgate keys create`).';

/** Frozen: every request with the key until the next lookup shares it. */
function principalOf(key: KeyRecord, team: TeamRecord): Principal {
  return Object.freeze({
    kind: 'key',
    keyId: key.id,
    teamId: team.id,
    teamName: team.name,
    teamModels: team.models,
    keyModels: key.models,
    teamLimits: team.limits ?? {},
    teamBudgets: team.budgets ?? [],
    keyLimits: key.limits ?? {},
    keyBudgets: key.budgets ?? [],
    teamModelLimits: team.modelLimits ?? {},
    teamCache: team.cache ?? null,
    keyCache: key.cache ?? null,
  });
}

/** Keys of teams: looked up by their SHA-256, briefly cached, last use recorded in batches. */
export class KeyAuthenticator {
  private readonly cache = new Map<string, CachedKey>();
  private readonly used = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<CachedKey | TeamlessKey | undefined>>();

  constructor(
    private readonly store: Store,
    private readonly options: AuthOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** The request's key and its SHA-256 (hashed once per request: it is a fifth of auth's work). */
  credentialOf(request: FastifyRequest): Credential {
    const presented = presentedKey(request);
    return {
      presented,
      hash: presented && publicIdOf(presented) ? hashKey(presented) : undefined,
      surface: presented ? undefined : errorSurfaceOf(request.url, request.headers),
    };
  }

  async authenticate({ presented, hash, surface }: Credential): Promise<Principal> {
    if (!presented) throw new InvalidApiKeyError(MISSING[surface ?? 'openai']);
    if (!hash) throw new InvalidApiKeyError(this.isAdminKey(presented) ? ADMIN_KEY : INCORRECT);
    const found = await this.lookup(hash);
    if (!found) throw new InvalidApiKeyError(INCORRECT);
    const { key, principal } = found;
    const now = this.now();
    switch (keyStatus(key, now)) {
      case 'revoked':
        throw new InvalidApiKeyError('This API key has been revoked.');
      case 'expired':
        throw new InvalidApiKeyError(
          `This API key expired at ${new Date(key.expiresAt ?? 0).toISOString()}.`,
        );
      case 'disabled':
        throw new InvalidApiKeyError('This API key is disabled.');
    }
    // Active, of a team that is gone: nothing to act for (a team is only deleted after its
    // active keys are revoked, so this is a key caught between the two).
    if (!principal) throw new InvalidApiKeyError(INCORRECT);
    this.used.set(key.id, now);
    return principal;
  }

  /**
   * By its shape only: comparing with the configured admin key here would answer the right
   * key differently from a wrong one, outside the admin API's own guard against guessing.
   */
  private isAdminKey(presented: string): boolean {
    return presented.startsWith('tga-');
  }

  /** True when the presented key was validated here within `staleOkSeconds` (no store round trip). */
  recentlyValidated({ hash }: Credential): boolean {
    if (!hash) return false;
    const cached = this.cache.get(hash);
    return cached !== undefined && this.now() - cached.at < this.options.staleOkSeconds * 1000;
  }

  private lookup(hash: string): Promise<CachedKey | TeamlessKey | undefined> {
    const cached = this.cache.get(hash);
    if (cached && this.now() - cached.at < this.options.cacheTtlMs) return Promise.resolve(cached);
    // One store round trip per key at a time: when an entry expires under load, concurrent
    // requests with that key share the refresh instead of each asking the store.
    let pending = this.inflight.get(hash);
    if (!pending) {
      pending = this.refresh(hash, cached).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  private async refresh(
    hash: string,
    cached: CachedKey | undefined,
  ): Promise<CachedKey | TeamlessKey | undefined> {
    const now = this.now();
    let key: KeyRecord | undefined;
    let team: TeamRecord | undefined;
    try {
      key = await this.store.registry.findKeyByHash(hash);
      team = key ? await this.store.registry.getTeam(key.teamId) : undefined;
    } catch (error) {
      // The store is down: a key we validated recently keeps working; anything else fails
      // closed, with a hint to retry shortly.
      if (cached && now - cached.at < this.options.staleOkSeconds * 1000) return cached;
      const message = 'The gateway cannot check API keys right now; retry shortly.';
      // Still the store's refusal, with the outage it is part of: during one, each refused
      // request is a warning and the outage itself is said once (plugins/store-outage-log.ts).
      if (error instanceof StoreUnavailableError) throw error.with({ message });
      throw new ServiceUnavailableError(message, 1);
    }
    if (!key || !team) {
      this.cache.delete(hash);
      return key && { key, principal: undefined };
    }
    const entry = { key, team, principal: principalOf(key, team), at: now };
    this.cache.delete(hash);
    this.cache.set(hash, entry);
    if (this.cache.size > this.options.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return entry;
  }

  /** Writes the batched last-used times; called on a timer and at shutdown. */
  async flushLastUsed(): Promise<void> {
    if (this.used.size === 0) return;
    const batch = new Map(this.used);
    this.used.clear();
    await this.store.registry.touchKeys(batch).catch(() => {
      for (const [id, at] of batch) if ((this.used.get(id) ?? 0) < at) this.used.set(id, at);
    });
  }
}

/**
 * The ① stage as an onRequest hook on /v1. With auth off every caller is anonymous. A blocked
 * address still gets through with a key this instance validated recently: one client with a
 * stale key behind a shared proxy must not lock out everyone else.
 */
export function authHook(
  authenticator: KeyAuthenticator | undefined,
  failedAuth: FailedAuthLimiter | undefined,
): onRequestHookHandler {
  return (request, _reply, done) => {
    if (!authenticator) {
      request.gateway.principal = ANONYMOUS;
      return done();
    }
    const credential = authenticator.credentialOf(request);
    if (!authenticator.recentlyValidated(credential)) {
      try {
        failedAuth?.assertNotBlocked(request);
      } catch (error) {
        return done(error as Error);
      }
    }
    authenticator.authenticate(credential).then(
      (principal) => {
        request.gateway.principal = principal;
        done();
      },
      async (error: Error) => {
        const limited =
          error instanceof InvalidApiKeyError ? await failedAuth?.recordFailure(request) : undefined;
        done(limited ?? error);
      },
    );
  };
}
