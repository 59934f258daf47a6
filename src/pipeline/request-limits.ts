import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Limits } from '../registry/records.js';
import { mayBeOutage, StoreUnavailableError } from '../store/store-unavailable.js';
import type { Principal } from './auth.js';

/**
 * ② quota, request rates: requests per minute and per day, per key and per team, counted by
 * @fastify/rate-limit in the shared store (Redis when configured). Fixed windows that start at
 * a scope's first request. OpenAI's x-ratelimit-*-requests headers report the tightest scope.
 */
type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

type Scope = 'key' | 'team' | 'model';

interface Check {
  scope: Scope;
  field: 'requests_per_minute' | 'requests_per_day';
  run: (
    request: FastifyRequest,
  ) => Promise<
    | { isAllowed: true }
    | { isAllowed: false; max: number; remaining: number; ttl: number; isExceeded: boolean }
  >;
}

/** OpenAI's duration form for reset headers: `17ms`, `1s`, `6m0s`, `1h2m3s`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  let seconds = Math.ceil(ms / 1_000);
  const hours = Math.floor(seconds / 3_600);
  seconds -= hours * 3_600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

function limitsOf(request: FastifyRequest, principal: KeyPrincipal, scope: Scope): Limits | undefined {
  if (scope === 'key') return principal.keyLimits;
  if (scope === 'team') return principal.teamLimits;
  const model = request.gateway.model;
  return model === undefined ? undefined : principal.teamModelLimits[model]?.limits;
}

function scopeId(request: FastifyRequest, principal: KeyPrincipal, scope: Scope): string {
  if (scope === 'key') return principal.keyId;
  if (scope === 'team') return principal.teamId;
  // The team's own count for one model (JSON keeps odd characters in names unambiguous).
  return JSON.stringify([principal.teamId, request.gateway.model ?? '']);
}

function principalOf(request: FastifyRequest): KeyPrincipal | undefined {
  const principal = request.gateway.principal;
  return principal?.kind === 'key' ? principal : undefined;
}

export class RequestLimits {
  private readonly checks: Check[] = [];

  constructor(app: FastifyInstance) {
    for (const scope of ['key', 'team', 'model'] as const) {
      for (const [field, windowMs] of [
        ['requests_per_minute', 60_000],
        ['requests_per_day', 86_400_000],
      ] as const) {
        const limitOf = (request: FastifyRequest) => {
          const principal = principalOf(request);
          return principal ? limitsOf(request, principal, scope)?.[field] : undefined;
        };
        this.checks.push({
          scope,
          field,
          run: app.createRateLimit({
            timeWindow: windowMs,
            keyGenerator: (request) => {
              const principal = principalOf(request);
              return `${field}:${scope}:${principal ? scopeId(request, principal, scope) : ''}`;
            },
            // Scopes without this limit are not counted at all.
            allowList: (request) => limitOf(request) === undefined,
            max: (request) => limitOf(request) ?? 0,
          }),
        });
      }
    }
  }

  /** Counts the request in every scope that limits it; throws 429 when one is over. */
  async enforce(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const principal = principalOf(request);
    if (!principal) return;
    const model = request.gateway.model;
    if (
      !Object.keys(principal.keyLimits).length &&
      !Object.keys(principal.teamLimits).length &&
      !(model !== undefined && principal.teamModelLimits[model]?.limits)
    )
      return;
    const results = await Promise.all(
      this.checks.map(async (check) => ({ check, result: await check.run(request) })),
    ).catch((error: unknown) => {
      // The counts live in the shared store (Redis): it failing is an outage, not a bug here.
      throw mayBeOutage(error) ? new StoreUnavailableError(error) : error;
    });
    let tightest: { max: number; remaining: number; ttl: number } | undefined;
    let refused: { check: Check; max: number; ttl: number } | undefined;
    for (const { check, result } of results) {
      if (result.isAllowed) continue;
      if (result.isExceeded && (!refused || result.ttl > refused.ttl))
        refused = { check, max: result.max, ttl: result.ttl };
      if (!tightest || result.remaining < tightest.remaining) tightest = result;
    }
    if (tightest) {
      reply.header('x-ratelimit-limit-requests', String(tightest.max));
      reply.header('x-ratelimit-remaining-requests', String(tightest.remaining));
      reply.header('x-ratelimit-reset-requests', formatDuration(tightest.ttl));
    }
    if (refused) {
      const who =
        refused.check.scope === 'key'
          ? "This API key's"
          : refused.check.scope === 'team'
            ? "Your team's"
            : `Your team's (model '${model}')`;
      const per = refused.check.field === 'requests_per_minute' ? 'minute' : 'day';
      throw new GatewayError(
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
        `${who} limit of ${refused.max} requests per ${per} is reached; retry in ${formatDuration(refused.ttl)}.`,
        {
          headers: {
            'retry-after': String(Math.max(1, Math.ceil(refused.ttl / 1_000))),
            'retry-after-ms': String(Math.max(0, Math.round(refused.ttl))),
          },
        },
      );
    }
  }
}
