import type { FastifyBaseLogger } from 'fastify';
import type { JsonEndpoint } from '../backends/backend.js';
import { GatewayError } from '../errors.js';
import { type DayFormatter, dayFormatter } from '../quota/budget-day.js';
import { modelLimitEntries } from '../quota/model-limit-entries.js';
import type {
  AdmitResult,
  QuotaBudget,
  QuotaReservationResult,
  QuotaScope,
  QuotaTokenWindow,
  RequestRateScope,
  RequestRateWindow,
} from '../quota/quota-types.js';
import { seal } from '../quota/sealed-scopes.js';
import type { Budget, Limits } from '../registry/records.js';
import { randomHex } from '../runtime/random-hex.js';
import { KeptForRetryError } from '../store/kept-for-retry.js';
import type { Store } from '../store/store.js';
import { costOf } from '../usage/cost.js';
import type { ModelPrice } from '../usage/price-table.js';
import { TokenCountCache } from '../usage/token-count-cache.js';
import { TokenCounter } from '../usage/token-counter.js';
import { estimatePromptTokens, requestedOutputTokens } from '../usage/token-estimate.js';
import type { Principal } from './auth.js';
import { formatDuration, requestRateRefusal, requestRateScopes, whoseLimit } from './request-limits.js';
import { logKeptEnd, Reservation } from './reservation.js';
import type { TokenUsage } from './usage.js';

/**
 * ② quota: before the upstream is called, one atomic reservation of tokens, a concurrency slot
 * and budget over the key's and the team's scopes (all granted or none); when the answer ends,
 * the estimate is replaced by the real usage (⑦), or refunded if the upstream failed.
 */
export interface QuotaOptions {
  /** Calendar days and months of budgets are counted in this time zone. */
  timeZone: string;
  /** Output tokens reserved when the request sets no max_tokens. */
  defaultMaxOutputTokens: number;
  /** A reservation a lost process never settles stops counting after this long. */
  reservationTtlMs: number;
  prices: Readonly<Record<string, ModelPrice>>;
  /** Settles and releases wait this long for the team's next admit (the Redis store; 0: never). */
  settleHoldMs: number;
}

/** What ② quota let through: the request's hold, and its tightest request window for headers. */
export interface Admission {
  reservation: Reservation;
  requests: RequestRateWindow | undefined;
}

/** One request's ask of ② quota. */
export interface ReserveRequest {
  principal: Principal | undefined;
  endpoint: JsonEndpoint;
  body: Record<string, unknown>;
  upstreamModel: string;
  /** The public model name: a team's limits for it apply too. */
  model?: string | undefined;
  /** Where a reservation that cannot be settled or released is reported (the request's log). */
  log?: FastifyBaseLogger | undefined;
}

interface QuotaTicket {
  teamId: string;
  reservationId: string;
  upstreamModel: string;
  estimate: { tokens: number; usdMicros: number };
  /** Counted before the request went: what an answer without usage is charged for its prompt. */
  promptTokens: number;
  /** The tightest tokens-per-minute window after this reservation, when one applies. */
  tokensPerMinute?: QuotaTokenWindow | undefined;
}

/** OpenAI's x-ratelimit-*-tokens headers for a tokens-per-minute window. */
export function tokenRateHeaders(window: {
  limit: number;
  remaining: number;
  resetMs: number;
}): Record<string, string> {
  return {
    'x-ratelimit-limit-tokens': String(window.limit),
    'x-ratelimit-remaining-tokens': String(window.remaining),
    'x-ratelimit-reset-tokens': formatDuration(window.resetMs),
  };
}

export class QuotaExceededError extends GatewayError {}

const lower = (words: string) => words.charAt(0).toLowerCase() + words.slice(1);

/** Micro-dollars as dollars, with enough digits that a small figure does not read as 0. */
function dollars(micros: number): string {
  const usd = micros / 1_000_000;
  if (usd >= 1) return `$${usd.toFixed(2)}`;
  // A budget of a few cents, or an estimate under one: every micro-dollar shows rather than $0.0000.
  return `$${usd >= 0.01 || usd === 0 ? usd.toFixed(4) : usd.toFixed(6)}`;
}

function periodWords(period: string | undefined, periodKey: string | undefined): string {
  return period === 'lifetime' || period === undefined ? 'lifetime' : `${period} (${periodKey})`;
}

/** The most a sum of tokens or micro-dollars may reach: the store counts in exact integers. */
const MAX_COUNT = Number.MAX_SAFE_INTEGER;
const safeCount = (value: number): number =>
  Number.isFinite(value) && value > 0 ? Math.min(Math.round(value), MAX_COUNT) : 0;

function budgetsOf(budgets: readonly Budget[], day: string, month: string): QuotaBudget[] {
  return budgets.map((budget) => ({
    period: budget.period,
    periodKey: budget.period === 'day' ? day : budget.period === 'month' ? month : 'all',
    maxTokens: budget.max_tokens,
    // Capped: a team saved before max_usd was bounded could hold more micro-dollars than the
    // store counts exactly, which would refuse every request of the team as a 500.
    maxUsdMicros:
      budget.max_usd === undefined ? undefined : Math.min(Math.round(budget.max_usd * 1_000_000), MAX_COUNT),
  }));
}

function scope(
  id: string,
  limits: Limits,
  budgets: readonly Budget[],
  day: string,
  month: string,
): QuotaScope {
  return {
    id,
    tokensPerMinute: limits.tokens_per_minute,
    maxConcurrent: limits.max_concurrent,
    budgets: budgetsOf(budgets, day, month),
  };
}

function limited(s: QuotaScope): boolean {
  return s.tokensPerMinute !== undefined || s.maxConcurrent !== undefined || (s.budgets?.length ?? 0) > 0;
}

function choices(body: Record<string, unknown>): number {
  return typeof body.n === 'number' && Number.isInteger(body.n) && body.n > 1 ? body.n : 1;
}

const MUST_REDUCE = 'The input or output tokens must be reduced in order to run successfully.';

/**
 * A request whose own estimate is bigger than a limit's whole size can never be served, however
 * long it waits: OpenAI's "Request too large" answer, not retried (no retry-after).
 */
function tooLarge(
  scopes: readonly QuotaScope[],
  model: string,
  estimate: { tokens: number; usdMicros: number },
): GatewayError | undefined {
  // The scope is named only when refusing: this runs for every request with limits.
  const refuse = (
    type: 'tokens' | 'insufficient_quota',
    code: string,
    scope: QuotaScope,
    limit: string,
    figures: string,
  ) =>
    new QuotaExceededError(
      429,
      type,
      code,
      `Request too large for ${model} on ${lower(whoseLimit(scope.id))} ${limit}: ${figures}. ${MUST_REDUCE}`,
      { headers: { 'x-should-retry': 'false' } },
    );
  for (const s of scopes) {
    for (const budget of s.budgets ?? []) {
      if (budget.maxTokens !== undefined && estimate.tokens > budget.maxTokens)
        return refuse(
          'insufficient_quota',
          'insufficient_quota',
          s,
          `${budget.period} token budget`,
          `Limit ${budget.maxTokens}, Requested ${estimate.tokens}`,
        );
      if (budget.maxUsdMicros !== undefined && estimate.usdMicros > budget.maxUsdMicros)
        return refuse(
          'insufficient_quota',
          'insufficient_quota',
          s,
          `${budget.period} USD budget`,
          `Limit ${dollars(budget.maxUsdMicros)}, Requested an estimated ${dollars(estimate.usdMicros)}`,
        );
    }
    if (s.tokensPerMinute !== undefined && estimate.tokens > s.tokensPerMinute)
      return refuse(
        'tokens',
        'rate_limit_exceeded',
        s,
        'tokens per min (TPM)',
        `Limit ${s.tokensPerMinute}, Requested ${estimate.tokens}`,
      );
  }
  return undefined;
}

function refusal(
  denied: Exclude<QuotaReservationResult, { granted: true }>,
  estimate: { tokens: number; usdMicros: number },
): GatewayError {
  const who = whoseLimit(denied.scope);
  switch (denied.limit) {
    case 'budget_tokens':
    case 'budget_usd': {
      const usd = denied.limit === 'budget_usd';
      const what = usd ? `USD budget (${dollars(denied.limitValue)})` : `token budget (${denied.limitValue})`;
      const period = periodWords(denied.period, denied.periodKey);
      // Said as what was asked against what is left: "exhausted" would be wrong while some is.
      const left = usd ? `${dollars(denied.remaining)} left` : `${denied.remaining} tokens left`;
      const asked = usd
        ? `an estimated ${dollars(estimate.usdMicros)}`
        : `an estimated ${estimate.tokens} tokens`;
      // insufficient_quota + x-should-retry: false, so the official SDKs do not retry it.
      return new QuotaExceededError(
        429,
        'insufficient_quota',
        'insufficient_quota',
        denied.remaining > 0
          ? `${who} ${what} for this ${period} has ${left}; this request needs ${asked}.`
          : `${who} ${what} for this ${period} is exhausted; this request needs ${asked}.`,
        { headers: { 'x-should-retry': 'false' } },
      );
    }
    case 'tokens_per_minute': {
      const ms = Math.max(0, Math.ceil(denied.retryAfterMs ?? 1_000));
      return new QuotaExceededError(
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
        `${who} limit of ${denied.limitValue} tokens per minute is reached: this request needs an estimated ${estimate.tokens} tokens and ${denied.remaining} are left this minute.`,
        {
          headers: {
            'retry-after': String(Math.max(1, Math.ceil(ms / 1000))),
            'retry-after-ms': String(ms),
            ...tokenRateHeaders({ limit: denied.limitValue, remaining: denied.remaining, resetMs: ms }),
          },
        },
      );
    }
    default:
      return new QuotaExceededError(
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
        `${who} limit of ${denied.limitValue} concurrent requests is reached.`,
        { headers: { 'retry-after': '1', 'retry-after-ms': '1000' } },
      );
  }
}

type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

/** What a key's requests for one model count against, on one budget day. */
interface KeyPolicy {
  day: string;
  requests: readonly RequestRateScope[];
  /** Only scopes with a limit or budget. */
  scopes: readonly QuotaScope[];
}

const NO_REQUESTS: readonly RequestRateScope[] = seal([]);
const POLICIES_PER_KEY = 64;

export class QuotaStage {
  private readonly dayFormat: DayFormatter;
  /** The last day formatted, for the minute it was formatted in. */
  private lastDay = { minute: Number.NaN, day: '' };
  /** Counts of texts each team sent before: a conversation's history is counted once. */
  private readonly counted = new TokenCountCache();
  private readonly policies = new WeakMap<KeyPrincipal, Map<string | undefined, KeyPolicy>>();

  constructor(
    private readonly store: Store,
    private readonly options: QuotaOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.dayFormat = dayFormatter(options.timeZone);
  }

  /**
   * The budget day (YYYY-MM-DD in the configured time zone). Formatting a date is ~2 % of a
   * request's CPU, so it is done once a minute: every time zone's offset is whole minutes, so a
   * day never changes inside a minute.
   */
  private dayOf(now: number): string {
    const minute = Math.floor(now / 60_000);
    if (minute !== this.lastDay.minute) this.lastDay = { minute, day: this.dayFormat(now) };
    return this.lastDay.day;
  }

  /**
   * Where a team's or key's limits and budgets stand now (spent, reserved, remaining), in the
   * admin API's shape. Only scopes with limits are asked about.
   */
  async standing(
    teamId: string,
    scopeId: string,
    limits: Limits,
    budgets: readonly Budget[],
  ): Promise<Record<string, unknown>> {
    const now = this.now();
    const day = this.dayOf(now);
    const s = scope(scopeId, limits, budgets, day, day.slice(0, 7));
    if (!limited(s)) return { budgets: [] };
    const [status] = await this.store.quota.status(teamId, [s], now);
    const usd = (micros: number | undefined) => (micros === undefined ? undefined : micros / 1_000_000);
    return {
      ...(status?.tokensPerMinute ? { tokens_per_minute: status.tokensPerMinute } : {}),
      ...(status?.concurrency ? { concurrency: status.concurrency } : {}),
      budgets: (status?.budgets ?? []).map((b) => ({
        period: b.period,
        period_key: b.periodKey,
        max_tokens: b.maxTokens,
        max_usd: usd(b.maxUsdMicros),
        spent_tokens: b.spentTokens,
        spent_usd: b.spentUsdMicros / 1_000_000,
        reserved_tokens: b.reservedTokens,
        // Held for requests in flight; settled into spent or refunded. Shown so that
        // spent + reserved + remaining = max: nothing counts as spent until it is.
        reserved_usd: b.reservedUsdMicros / 1_000_000,
        remaining_tokens: b.remainingTokens,
        remaining_usd: usd(b.remainingUsdMicros),
      })),
    };
  }

  /**
   * Counts a request against the request rates of its key, team and model, alone: for requests
   * the cache may answer (a hit is a request that reserves nothing). Throws 429 when one is over.
   */
  async countRequest(
    principal: Principal | undefined,
    model: string | undefined,
  ): Promise<RequestRateWindow | undefined> {
    if (principal?.kind !== 'key') return undefined;
    const now = this.now();
    const { requests } = this.policyOf(principal, model, this.dayOf(now));
    if (requests.length === 0) return undefined;
    const result = await this.store.quota.admit({ teamId: principal.teamId, nowMs: now, requests });
    if (!result.requests.allowed) throw requestRateRefusal(result.requests.refused);
    return result.requests.tightest;
  }

  /**
   * Counts the request against its request rates and reserves for it in one step (one store
   * round trip before the upstream). The handle returned is how it ends (settle or release).
   */
  async admit(ask: ReserveRequest): Promise<Admission> {
    return this.reserveWith(ask, true);
  }

  /**
   * Reserves for one request; the handle returned is how it ends (settle or release). Nothing
   * to reserve (no key, no limits): `Reservation.none`, and no store round trip.
   */
  async reserve(ask: ReserveRequest): Promise<Reservation> {
    return (await this.reserveWith(ask, false)).reservation;
  }

  /**
   * A key's scopes for one model on one budget day, sealed (sealed-scopes.ts): built once a day
   * per key and model rather than per request, so the store can keep their validation and
   * script JSON too. A principal is replaced when ① auth refreshes it (its limits may have
   * changed), which drops its entry.
   */
  private policyOf(principal: KeyPrincipal, model: string | undefined, day: string): KeyPolicy {
    let byModel = this.policies.get(principal);
    if (!byModel) {
      byModel = new Map();
      this.policies.set(principal, byModel);
    }
    const known = byModel.get(model);
    if (known?.day === day) return known;
    // Model names come from clients: a key asking for many keeps only the latest few.
    if (byModel.size >= POLICIES_PER_KEY) byModel.clear();
    const month = day.slice(0, 7);
    const scopes = [
      scope(`key:${principal.keyId}`, principal.keyLimits, principal.keyBudgets, day, month),
      scope(`team:${principal.teamId}`, principal.teamLimits, principal.teamBudgets, day, month),
    ];
    if (model !== undefined)
      for (const [entry, own] of modelLimitEntries(principal.teamModelLimits, model))
        scopes.push(scope(`model:${entry}`, own.limits ?? {}, own.budgets ?? [], day, month));
    const policy: KeyPolicy = {
      day,
      requests: seal(requestRateScopes(principal, model)),
      scopes: seal(scopes.filter(limited)),
    };
    byModel.set(model, policy);
    return policy;
  }

  private async reserveWith(ask: ReserveRequest, countRequest: boolean): Promise<Admission> {
    const { principal, endpoint, body, upstreamModel, model } = ask;
    if (principal?.kind !== 'key') return { reservation: Reservation.none, requests: undefined };
    const now = this.now();
    const policy = this.policyOf(principal, model, this.dayOf(now));
    const requests = countRequest ? policy.requests : NO_REQUESTS;
    const limitedScopes = policy.scopes;
    if (limitedScopes.length === 0) {
      if (requests.length === 0) return { reservation: Reservation.none, requests: undefined };
      return { reservation: Reservation.none, requests: await this.countRequest(principal, model) };
    }
    const prompt = estimatePromptTokens(
      endpoint,
      body,
      new TokenCounter({ cache: this.counted, scope: principal.teamId }),
    );
    // Bounded by the schemas and requestedOutputTokens; clamped anyway, so no body can make the
    // arithmetic leave the integers the store counts in.
    const output =
      endpoint === 'embeddings'
        ? 0
        : safeCount(
            (requestedOutputTokens(body, endpoint) ?? this.options.defaultMaxOutputTokens) * choices(body),
          );
    const usdMicros = costOf(
      upstreamModel,
      { prompt_tokens: prompt, completion_tokens: output },
      this.options.prices,
    ).usdMicros;
    const ticket: QuotaTicket = {
      teamId: principal.teamId,
      reservationId: randomHex(16),
      upstreamModel,
      estimate: { tokens: safeCount(prompt + output), usdMicros },
      promptTokens: prompt,
    };
    const impossible = tooLarge(limitedScopes, model ?? upstreamModel, ticket.estimate);
    if (impossible) {
      // Still a request: it counts against the request rates (and may be refused by them first).
      if (requests.length > 0) await this.countRequest(principal, model);
      throw impossible;
    }
    let admitted: AdmitResult;
    try {
      admitted = await this.store.quota.admit({
        teamId: ticket.teamId,
        nowMs: now,
        requests,
        reservation: {
          reservationId: ticket.reservationId,
          scopes: limitedScopes,
          tokens: ticket.estimate.tokens,
          usdMicros,
          ttlMs: this.options.reservationTtlMs,
        },
      });
    } catch (error) {
      // Unanswered, the admit may have reserved all the same: the store releases it later.
      if (error instanceof KeptForRetryError) logKeptEnd(ask.log, error, 'release');
      throw error;
    }
    if (!admitted.requests.allowed) throw requestRateRefusal(admitted.requests.refused);
    const result = admitted.reservation as QuotaReservationResult;
    if (!result.granted) throw refusal(result, ticket.estimate);
    ticket.tokensPerMinute = result.tokensPerMinute;
    const reservation = new Reservation(
      {
        settle: (usage, pricedAs) => this.settle(ticket, usage, pricedAs),
        release: () => this.release(ticket),
      },
      ask.log,
      ticket,
      this.options.settleHoldMs === 0,
    );
    return { reservation, requests: admitted.requests.tightest };
  }

  /**
   * The answer ended: charge its real usage. Without usage from the upstream (a client that left
   * before the usage chunk), the estimate is charged: never less than what may have been used.
   */
  private async settle(ticket: QuotaTicket, usage: TokenUsage | undefined, pricedAs?: string): Promise<void> {
    // An upstream's usage is not trusted to be sane numbers: the store accepts only safe integers.
    const actual = usage
      ? {
          tokens: safeCount(
            Number(usage.total_tokens) ||
              Number(usage.prompt_tokens ?? usage.input_tokens ?? 0) +
                Number(usage.completion_tokens ?? usage.output_tokens ?? 0),
          ),
          usdMicros: costOf(pricedAs ?? ticket.upstreamModel, usage, this.options.prices).usdMicros,
        }
      : ticket.estimate;
    await this.store.quota.settle(ticket.teamId, ticket.reservationId, actual, this.now());
  }

  /** The upstream failed: nothing was served, nothing is charged. */
  private async release(ticket: QuotaTicket): Promise<void> {
    await this.store.quota.release(ticket.teamId, ticket.reservationId, this.now());
  }
}
