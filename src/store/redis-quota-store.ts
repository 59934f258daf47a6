import {
  BUDGET_TTL_MS,
  EXPIRED_RESERVATION_GRACE_MS,
  MINUTE_MS,
  nextWindowInMs,
  type QuotaLimitKind,
  type QuotaReservationRequest,
  type QuotaReservationResult,
  type QuotaScope,
  type QuotaScopeStatus,
  type QuotaSettleOutcome,
  type QuotaUsage,
  scopeStatus,
  TPM_WINDOW_TTL_MS,
  tpmWindow,
  validateReservation,
  validateScopes,
  validateTeamId,
  validateUsage,
} from '../quota/quota-types.js';
import { loadLua } from './lua-script.js';
import type { QuotaStore } from './quota-store.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage } from './store-unavailable.js';

/**
 * Quota state of one team: every key under the team's own hash tag, so on a Cluster a team's
 * reservation is one script on one node while teams spread over all of them.
 */
const quotaPrefix = (teamId: string) => `tg:{q:${teamId}}:`;
const Q = {
  /** Hash: reservation id -> its record (JSON written by TypeScript, only decoded in Lua). */
  records: (p: string) => `${p}res`,
  /** Sorted set: live reservation ids by expiry time. */
  live: (p: string) => `${p}live`,
  /** Sorted set: expired reservation ids by when their record is forgotten. */
  expired: (p: string) => `${p}expired`,
  slots: (p: string, scope: string) => `${p}conc:${scope}`,
  window: (p: string, scope: string, nowMs: number) => `${p}tpm:${scope}:${tpmWindow(nowMs)}`,
  budget: (p: string, scope: string, period: string, periodKey: string) =>
    `${p}bud:${scope}:${period}:${periodKey}`,
};

const RESERVE = loadLua('quota-prelude', 'quota-reserve');
const FINISH = loadLua('quota-prelude', 'quota-finish');
const STATUS = loadLua('quota-prelude', 'quota-status');

const REFUSAL_RANKS: QuotaLimitKind[] = ['budget_tokens', 'budget_usd', 'concurrency', 'tokens_per_minute'];

/**
 * The reservation engine in Redis: each operation is one script on the team's slot, so every
 * gateway instance on the same Redis counts against the same limits, exactly.
 */
export class RedisQuotaStore implements QuotaStore {
  constructor(private readonly connection: RedisConnection) {
    failClosedOnOutage(this, connection.client);
  }

  private static quotaKeys(p: string): string[] {
    return [Q.records(p), Q.live(p), Q.expired(p)];
  }

  async reserve(request: QuotaReservationRequest): Promise<QuotaReservationResult> {
    validateReservation(request);
    const { nowMs, tokens, usdMicros, ttlMs } = request;
    const p = quotaPrefix(request.teamId);
    const keys = RedisQuotaStore.quotaKeys(p);
    const record = {
      e: nowMs + ttlMs,
      t: tokens,
      u: usdMicros,
      c: [] as string[],
      m: [] as string[],
      b: [] as Array<[string, number]>,
    };
    const scopes = request.scopes.map((scope) => {
      const budgets = (scope.budgets ?? []).map((budget) => {
        const k = Q.budget(p, scope.id, budget.period, budget.periodKey);
        const ttl = BUDGET_TTL_MS[budget.period];
        record.b.push([k, ttl]);
        keys.push(k);
        return { k, mt: budget.maxTokens, mu: budget.maxUsdMicros, ttl };
      });
      let c: { k: string; max: number } | undefined;
      if (scope.maxConcurrent !== undefined) {
        c = { k: Q.slots(p, scope.id), max: scope.maxConcurrent };
        record.c.push(c.k);
        keys.push(c.k);
      }
      let m: { k: string; max: number } | undefined;
      if (scope.tokensPerMinute !== undefined) {
        m = { k: Q.window(p, scope.id, nowMs), max: scope.tokensPerMinute };
        record.m.push(m.k);
        keys.push(m.k);
      }
      return { b: budgets, c, m };
    });
    const plan = {
      t: tokens,
      u: usdMicros,
      e: nowMs + ttlMs,
      // Slot counters and the reservation index outlive every reservation in them.
      keep: ttlMs + MINUTE_MS,
      window: TPM_WINDOW_TTL_MS,
      retry: nextWindowInMs(nowMs),
      s: scopes,
    };
    const answer = (await this.connection.run(RESERVE, keys, [
      nowMs,
      EXPIRED_RESERVATION_GRACE_MS,
      request.reservationId,
      JSON.stringify(plan),
      JSON.stringify(record),
    ])) as number[];
    if (answer[0] === 1) {
      const [, index, limit, remaining] = answer;
      const tight = index === undefined ? undefined : request.scopes[index - 1];
      return tight && limit !== undefined && remaining !== undefined
        ? {
            granted: true,
            tokensPerMinute: { scope: tight.id, limit, remaining, resetMs: plan.retry },
          }
        : { granted: true };
    }
    const [, scopeIndex = 1, rank = 1, limitValue = 0, remaining = 0, retry = -1, budgetIndex = 0] = answer;
    const scope = request.scopes[scopeIndex - 1] as QuotaScope;
    const limit = REFUSAL_RANKS[rank - 1] as QuotaLimitKind;
    const budget = budgetIndex > 0 ? scope.budgets?.[budgetIndex - 1] : undefined;
    return {
      granted: false,
      scope: scope.id,
      limit,
      limitValue,
      remaining,
      ...(retry >= 0 ? { retryAfterMs: retry } : {}),
      ...(budget ? { period: budget.period, periodKey: budget.periodKey } : {}),
    };
  }

  private async finish(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage | undefined,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    validateTeamId(teamId);
    if (actual) validateUsage(actual);
    const answer = await this.connection.run(FINISH, RedisQuotaStore.quotaKeys(quotaPrefix(teamId)), [
      nowMs,
      EXPIRED_RESERVATION_GRACE_MS,
      reservationId,
      actual?.tokens ?? 0,
      actual?.usdMicros ?? 0,
      actual ? '1' : '0',
    ]);
    if (answer === 1) return actual ? 'settled' : 'released';
    return answer === 2 ? 'expired' : 'unknown';
  }

  settle(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return this.finish(teamId, reservationId, actual, nowMs);
  }

  release(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome> {
    return this.finish(teamId, reservationId, undefined, nowMs);
  }

  async status(teamId: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]> {
    validateTeamId(teamId);
    validateScopes(scopes);
    const p = quotaPrefix(teamId);
    const keys = RedisQuotaStore.quotaKeys(p);
    const plan = scopes.map((scope) => {
      const m = Q.window(p, scope.id, nowMs);
      const c = Q.slots(p, scope.id);
      const b = (scope.budgets ?? []).map((budget) => Q.budget(p, scope.id, budget.period, budget.periodKey));
      keys.push(m, c, ...b);
      return { m, c, b };
    });
    const values = (await this.connection.run(STATUS, keys, [
      nowMs,
      EXPIRED_RESERVATION_GRACE_MS,
      JSON.stringify(plan),
    ])) as number[];
    let at = 0;
    const next = () => values[at++] ?? 0;
    return scopes.map((scope) => {
      const window = next();
      const slots = next();
      const budgets = (scope.budgets ?? []).map(
        () => [next(), next(), next(), next()] as [number, number, number, number],
      );
      return scopeStatus(scope, nowMs, { window, slots, budgets });
    });
  }
}
