/**
 * The reservation engine's vocabulary, shared by MemoryStore and RedisStore so both keep the
 * same semantics (test/quota-contract.test.ts holds them to it).
 *
 * Semantics in short:
 * - reserve: checks every limit of every scope against the state before the request and, only
 *   if all pass, adds the estimate everywhere (all-or-nothing: a rejected request changes no
 *   counter). A reservation lives until `nowMs + ttlMs`; a process that dies without settling
 *   loses it then (its concurrency slot and its outstanding budget amounts are freed).
 * - tokens per minute use a FIXED one-minute window, `floor(nowMs / 60_000)`: simple, one
 *   counter per scope and window, and exact across instances; the price is that a burst may
 *   straddle a window edge (up to twice the limit within any sliding 60 s). A denied request
 *   is told to retry at the next window start.
 * - budgets count settled usage plus outstanding (unexpired) reservations, per `periodKey`
 *   (the caller computes it in the configured time zone), so a new day starts from zero.
 * - counters exist only for limits a scope has: a scope without `tokensPerMinute` keeps no
 *   minute window, one without `maxConcurrent` no slot count.
 */

import { derivedOnce } from './sealed-scopes.js';

export type QuotaPeriod = 'day' | 'month' | 'lifetime';

export interface QuotaBudget {
  period: QuotaPeriod;
  /** e.g. '2026-11-22' for a day, '2026-11' for a month, 'all' for lifetime. */
  periodKey: string;
  maxTokens?: number | undefined;
  maxUsdMicros?: number | undefined;
}

export interface QuotaScope {
  /**
   * 'key:<keyId>', 'team:<teamId>', 'model:<entry>' (a team's model_limits entry: a name or a
   * pattern, see model-limit-entries.ts); unique within a request.
   */
  id: string;
  tokensPerMinute?: number | undefined;
  maxConcurrent?: number | undefined;
  budgets?: readonly QuotaBudget[] | undefined;
}

export interface QuotaReservationRequest {
  reservationId: string;
  /** Every scope of one request belongs to this team: it is the Redis hash tag. */
  teamId: string;
  scopes: readonly QuotaScope[];
  /** The estimate: prompt tokens counted + max output tokens. */
  tokens: number;
  usdMicros: number;
  nowMs: number;
  /** A lost process's reservation stops counting after this long. */
  ttlMs: number;
}

export type QuotaLimitKind = 'tokens_per_minute' | 'concurrency' | 'budget_tokens' | 'budget_usd';

/**
 * Requests per minute and per day of one scope. Windows start at the scope's first request and
 * last a minute or a day (fixed windows, exact across instances); a refused request is not
 * counted. Counted in the same step as the reservation (`QuotaStore.admit`), so a request costs
 * one store round trip before the upstream.
 */
export interface RequestRateScope {
  /** The same ids as reservation scopes: 'key:<id>', 'team:<id>', 'model:<entry>'. */
  id: string;
  perMinute?: number | undefined;
  perDay?: number | undefined;
}

export type RequestRateKind = 'requests_per_minute' | 'requests_per_day';

/** One request window after a request was counted (or refused): for x-ratelimit-*-requests. */
export interface RequestRateWindow {
  scope: string;
  kind: RequestRateKind;
  limit: number;
  remaining: number;
  /** Until the window ends. */
  resetMs: number;
}

export type RequestCountResult =
  | {
      allowed: true /** The window with the fewest requests left, when one applies. */;
      tightest?: RequestRateWindow | undefined;
    }
  | { allowed: false; refused: RequestRateWindow };

/** Count a request and, unless a request rate refuses it, reserve for it: all in one step. */
export interface AdmitRequest {
  teamId: string;
  nowMs: number;
  requests: readonly RequestRateScope[];
  /** Absent: only count the request (a cache hit is a request that reserves nothing). */
  reservation?: Omit<QuotaReservationRequest, 'teamId' | 'nowMs'> | undefined;
}

export interface AdmitResult {
  requests: RequestCountResult;
  /** Absent when nothing was asked, or when a request rate refused before it was tried. */
  reservation?: QuotaReservationResult | undefined;
}

/** The tokens-per-minute window with the fewest tokens left after a grant (rate-limit headers). */
export interface QuotaTokenWindow {
  scope: string;
  limit: number;
  remaining: number;
  /** Until the window ends. */
  resetMs: number;
}

export type QuotaReservationResult =
  | { granted: true; tokensPerMinute?: QuotaTokenWindow | undefined }
  | {
      granted: false;
      /** The id of the scope that refused. */
      scope: string;
      limit: QuotaLimitKind;
      limitValue: number;
      /** Tokens (tpm, budget_tokens), micro-USD (budget_usd) or slots (concurrency) left. */
      remaining: number;
      /** tpm only: until the next window starts. Budgets and concurrency: undefined. */
      retryAfterMs?: number | undefined;
      /** Budget refusals only. */
      period?: QuotaPeriod | undefined;
      periodKey?: string | undefined;
    };

export interface QuotaUsage {
  tokens: number;
  usdMicros: number;
}

/**
 * 'settled' / 'released': the live reservation was replaced or refunded. 'expired': its ttl had
 * passed (slot and outstanding amounts already freed); settle still records the actual usage,
 * so spend reported late is never lost. 'unknown': never reserved, already settled or released
 * (so repeats are no-ops), or expired longer ago than the grace period: nothing changes.
 */
export type QuotaSettleOutcome = 'settled' | 'released' | 'expired' | 'unknown';

export interface QuotaBudgetStatus {
  period: QuotaPeriod;
  periodKey: string;
  maxTokens?: number | undefined;
  maxUsdMicros?: number | undefined;
  /** Settled usage. */
  spentTokens: number;
  spentUsdMicros: number;
  /** Outstanding (live) reservations. */
  reservedTokens: number;
  reservedUsdMicros: number;
  /** max - spent - reserved, never below 0; undefined without that maximum. */
  remainingTokens?: number | undefined;
  remainingUsdMicros?: number | undefined;
}

export interface QuotaScopeStatus {
  scope: string;
  tokensPerMinute?: { limit: number; used: number; remaining: number; resetMs: number } | undefined;
  concurrency?: { limit: number; inUse: number; remaining: number } | undefined;
  budgets: QuotaBudgetStatus[];
}

export const MINUTE_MS = 60_000;
/** A minute window's counter outlives its minute a little: settles adjust it afterwards. */
export const TPM_WINDOW_TTL_MS = 2 * MINUTE_MS;
const DAY_MS = 86_400_000;
/** Budget counters outlive their period so current spend can still be shown, then vanish. */
export const BUDGET_TTL_MS: Record<QuotaPeriod, number> = {
  day: 35 * DAY_MS,
  month: 400 * DAY_MS,
  lifetime: 0,
};
/** How long an expired reservation is remembered so a late settle still records its spend. */
export const EXPIRED_RESERVATION_GRACE_MS = DAY_MS;

export const tpmWindow = (nowMs: number): number => Math.floor(nowMs / MINUTE_MS);
export const nextWindowInMs = (nowMs: number): number => (tpmWindow(nowMs) + 1) * MINUTE_MS - nowMs;

const isCount = (value: number) => Number.isSafeInteger(value) && value >= 0;

/** Refuses malformed input early: a bad number in a Lua script would corrupt shared counters. */
export function validateReservation(request: QuotaReservationRequest): void {
  validateTeamId(request.teamId);
  if (!request.reservationId) throw new Error('quota: reservationId is required');
  if (!isCount(request.tokens) || !isCount(request.usdMicros))
    throw new Error('quota: tokens and usdMicros must be non-negative integers');
  if (!isCount(request.nowMs) || !Number.isSafeInteger(request.ttlMs) || request.ttlMs <= 0)
    throw new Error('quota: nowMs and ttlMs must be positive integers');
  validateScopes(request.scopes);
}

/**
 * Sealed lists (sealed-scopes.ts) already checked, as request-rate scopes and as limit scopes
 * (two maps: the checks differ, and a list passing one says nothing of the other).
 */
const checkedRates = new WeakMap<readonly RequestRateScope[], true>();
const checkedScopes = new WeakMap<readonly QuotaScope[], true>();

function checkRateScopes(scopes: readonly RequestRateScope[]): true {
  const seen = new Set<string>();
  for (const scope of scopes) {
    if (!scope.id || seen.has(scope.id)) throw new Error(`quota: scope ids must be unique: ${scope.id}`);
    seen.add(scope.id);
    for (const limit of [scope.perMinute, scope.perDay])
      if (limit !== undefined && !isCount(limit))
        throw new Error('quota: limits must be non-negative integers');
  }
  return true;
}

export function validateAdmit(request: AdmitRequest): void {
  validateTeamId(request.teamId);
  if (!isCount(request.nowMs)) throw new Error('quota: nowMs must be a positive integer');
  derivedOnce(checkedRates, request.requests, checkRateScopes);
  if (request.reservation)
    validateReservation({ ...request.reservation, teamId: request.teamId, nowMs: request.nowMs });
}

export function validateUsage(usage: QuotaUsage): void {
  if (!isCount(usage.tokens) || !isCount(usage.usdMicros))
    throw new Error('quota: actual tokens and usdMicros must be non-negative integers');
}

export function validateTeamId(teamId: string): void {
  // The team id becomes the Redis hash tag; braces would change which part is hashed.
  if (!teamId || /[{}]/.test(teamId)) throw new Error('quota: teamId must be non-empty without braces');
}

function checkScopes(scopes: readonly QuotaScope[]): true {
  const seen = new Set<string>();
  for (const scope of scopes) {
    if (!scope.id || seen.has(scope.id)) throw new Error(`quota: scope ids must be unique: ${scope.id}`);
    seen.add(scope.id);
    for (const limit of [scope.tokensPerMinute, scope.maxConcurrent])
      if (limit !== undefined && !isCount(limit))
        throw new Error('quota: limits must be non-negative integers');
    for (const budget of scope.budgets ?? [])
      for (const limit of [budget.maxTokens, budget.maxUsdMicros])
        if (limit !== undefined && !isCount(limit))
          throw new Error('quota: limits must be non-negative integers');
  }
  return true;
}

export function validateScopes(scopes: readonly QuotaScope[]): void {
  derivedOnce(checkedScopes, scopes, checkScopes);
}

/** Shapes raw counters into a status; the same for both stores. */
export function scopeStatus(
  scope: QuotaScope,
  nowMs: number,
  raw: { window: number; slots: number; budgets: Array<[number, number, number, number]> },
): QuotaScopeStatus {
  const status: QuotaScopeStatus = { scope: scope.id, budgets: [] };
  if (scope.tokensPerMinute !== undefined)
    status.tokensPerMinute = {
      limit: scope.tokensPerMinute,
      used: raw.window,
      remaining: Math.max(0, scope.tokensPerMinute - raw.window),
      resetMs: nextWindowInMs(nowMs),
    };
  if (scope.maxConcurrent !== undefined)
    status.concurrency = {
      limit: scope.maxConcurrent,
      inUse: raw.slots,
      remaining: Math.max(0, scope.maxConcurrent - raw.slots),
    };
  (scope.budgets ?? []).forEach((budget, i) => {
    const [spentTokens, spentUsdMicros, reservedTokens, reservedUsdMicros] = raw.budgets[i] ?? [0, 0, 0, 0];
    status.budgets.push({
      period: budget.period,
      periodKey: budget.periodKey,
      maxTokens: budget.maxTokens,
      maxUsdMicros: budget.maxUsdMicros,
      spentTokens,
      spentUsdMicros,
      reservedTokens,
      reservedUsdMicros,
      remainingTokens:
        budget.maxTokens === undefined
          ? undefined
          : Math.max(0, budget.maxTokens - spentTokens - reservedTokens),
      remainingUsdMicros:
        budget.maxUsdMicros === undefined
          ? undefined
          : Math.max(0, budget.maxUsdMicros - spentUsdMicros - reservedUsdMicros),
    });
  });
  return status;
}
