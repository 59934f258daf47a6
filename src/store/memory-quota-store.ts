import {
  type AdmitRequest,
  type AdmitResult,
  BUDGET_TTL_MS,
  EXPIRED_RESERVATION_GRACE_MS,
  MINUTE_MS,
  nextWindowInMs,
  type QuotaBudget,
  type QuotaLimitKind,
  type QuotaReservationRequest,
  type QuotaReservationResult,
  type QuotaScope,
  type QuotaScopeStatus,
  type QuotaSettleOutcome,
  type QuotaTokenWindow,
  type QuotaUsage,
  type RequestRateKind,
  type RequestRateWindow,
  scopeStatus,
  TPM_WINDOW_TTL_MS,
  tpmWindow,
  validateAdmit,
  validateReservation,
  validateScopes,
  validateTeamId,
  validateUsage,
} from '../quota/quota-types.js';
import type { QuotaStore } from './quota-store.js';

interface Counter {
  fields: Map<string, number>;
  /** In the callers' clock (nowMs), like the reservations; 0 = never. */
  expiresAt: number;
}

interface QuotaRecord {
  expiresAt: number;
  tokens: number;
  usdMicros: number;
  /** Counter names this reservation added to. */
  slots: string[];
  windows: string[];
  budgets: Array<{ name: string; ttlMs: number }>;
  /** Set once expired: kept until then so a late settle still records the spend. */
  purgeAt?: number;
}

const counterName = {
  slots: (scope: string) => `conc:${scope}`,
  window: (scope: string, nowMs: number) => `tpm:${scope}:${tpmWindow(nowMs)}`,
  budget: (scope: string, budget: QuotaBudget) => `bud:${scope}:${budget.period}:${budget.periodKey}`,
};

/**
 * The reservation engine in process, mirroring the Redis scripts step by step (same counter
 * names, same order of checks) so both stores answer the contract alike. Each method runs
 * synchronously to completion, which is what makes it atomic here.
 */
const REQUEST_WINDOWS: ReadonlyArray<{ kind: RequestRateKind; spanMs: number }> = [
  { kind: 'requests_per_minute', spanMs: MINUTE_MS },
  { kind: 'requests_per_day', spanMs: 1_440 * MINUTE_MS },
];

export class MemoryQuotaStore implements QuotaStore {
  private readonly counters = new Map<string, Counter>();
  /** Request windows by team, kind and scope: they start at a scope's first request. */
  private readonly requestWindows = new Map<string, { start: number; end: number; count: number }>();
  private readonly reservations = new Map<string, Map<string, QuotaRecord>>();
  private nextSweep = 0;

  private get(team: string, name: string, field: string, nowMs: number): number {
    const counter = this.counters.get(`${team}\n${name}`);
    if (!counter || (counter.expiresAt !== 0 && counter.expiresAt <= nowMs)) return 0;
    return counter.fields.get(field) ?? 0;
  }

  /** Adds delta (never going below 0); ttlMs > 0 restarts the counter's lifetime, like PEXPIRE. */
  private add(team: string, name: string, field: string, delta: number, nowMs: number, ttlMs = -1): void {
    const id = `${team}\n${name}`;
    let counter = this.counters.get(id);
    if (!counter || (counter.expiresAt !== 0 && counter.expiresAt <= nowMs)) {
      counter = { fields: new Map(), expiresAt: 0 };
      this.counters.set(id, counter);
    }
    counter.fields.set(field, Math.max(0, (counter.fields.get(field) ?? 0) + delta));
    if (ttlMs > 0) counter.expiresAt = nowMs + ttlMs;
  }

  private exists(team: string, name: string, nowMs: number): boolean {
    const counter = this.counters.get(`${team}\n${name}`);
    return counter !== undefined && (counter.expiresAt === 0 || counter.expiresAt > nowMs);
  }

  /** Frees what a live reservation holds besides its minute window (which keeps what it used). */
  private unreserve(team: string, record: QuotaRecord, nowMs: number): void {
    for (const name of record.slots) this.add(team, name, 'n', -1, nowMs);
    for (const budget of record.budgets) {
      this.add(team, budget.name, 'rt', -record.tokens, nowMs);
      this.add(team, budget.name, 'ru', -record.usdMicros, nowMs);
    }
  }

  private reap(team: string, nowMs: number): Map<string, QuotaRecord> {
    if (nowMs >= this.nextSweep) {
      // Old minute windows and past periods go away, so nothing grows forever.
      for (const [id, counter] of this.counters)
        if (counter.expiresAt !== 0 && counter.expiresAt <= nowMs) this.counters.delete(id);
      for (const [id, window] of this.requestWindows) if (window.end <= nowMs) this.requestWindows.delete(id);
      this.nextSweep = nowMs + MINUTE_MS;
    }
    let records = this.reservations.get(team);
    if (!records) {
      records = new Map();
      this.reservations.set(team, records);
    }
    for (const [id, record] of records) {
      if (record.purgeAt !== undefined) {
        if (record.purgeAt <= nowMs) records.delete(id);
      } else if (record.expiresAt <= nowMs) {
        this.unreserve(team, record, nowMs);
        record.purgeAt = nowMs + EXPIRED_RESERVATION_GRACE_MS;
      }
    }
    return records;
  }

  async admit(request: AdmitRequest): Promise<AdmitResult> {
    validateAdmit(request);
    const { teamId: team, nowMs, reservation } = request;
    // A repeated reservation id is the same request (a retried call): nothing counted again.
    if (reservation && this.reap(team, nowMs).has(reservation.reservationId))
      return { requests: { allowed: true }, reservation: { granted: true } };
    const counted: Array<[string, { start: number; end: number; count: number }]> = [];
    let tightest: RequestRateWindow | undefined;
    for (const scope of request.requests) {
      for (const { kind, spanMs } of REQUEST_WINDOWS) {
        const limit = kind === 'requests_per_minute' ? scope.perMinute : scope.perDay;
        if (limit === undefined) continue;
        const id = `${team}\n${kind}\n${scope.id}`;
        let window = this.requestWindows.get(id);
        if (!window || nowMs >= window.end) window = { start: nowMs, end: nowMs + spanMs, count: 0 };
        // A clock stepped back (NTP) must not promise a wait longer than the window.
        const resetMs = Math.min(spanMs, window.end - nowMs);
        if (window.count + 1 > limit)
          return {
            requests: { allowed: false, refused: { scope: scope.id, kind, limit, remaining: 0, resetMs } },
          };
        counted.push([id, { ...window, count: window.count + 1 }]);
        const remaining = limit - window.count - 1;
        if (!tightest || remaining < tightest.remaining)
          tightest = { scope: scope.id, kind, limit, remaining, resetMs };
      }
    }
    for (const [id, window] of counted) this.requestWindows.set(id, window);
    const requests = { allowed: true as const, ...(tightest ? { tightest } : {}) };
    if (!reservation) return { requests };
    return { requests, reservation: this.reserveNow({ ...reservation, teamId: team, nowMs }) };
  }

  async reserve(request: QuotaReservationRequest): Promise<QuotaReservationResult> {
    return this.reserveNow(request);
  }

  private reserveNow(request: QuotaReservationRequest): QuotaReservationResult {
    validateReservation(request);
    const { teamId: team, nowMs, tokens, usdMicros } = request;
    const records = this.reap(team, nowMs);
    // A repeated reservation id is the same reservation (a retried call), never a second one.
    if (records.has(request.reservationId)) return { granted: true };

    let refusal: { rank: number; result: QuotaReservationResult } | undefined;
    const refuse = (rank: number, result: QuotaReservationResult) => {
      if (!refusal || rank < refusal.rank) refusal = { rank, result };
    };
    const denial = (scope: QuotaScope, limit: QuotaLimitKind, limitValue: number, used: number) => ({
      granted: false as const,
      scope: scope.id,
      limit,
      limitValue,
      remaining: Math.max(0, limitValue - used),
    });
    // Budgets first, then concurrency, then tpm: a budget refusal must not be retried, so it is
    // the one to report when several limits refuse.
    for (const scope of request.scopes) {
      for (const budget of scope.budgets ?? []) {
        const name = counterName.budget(scope.id, budget);
        const usedTokens = this.get(team, name, 'st', nowMs) + this.get(team, name, 'rt', nowMs);
        const usedUsd = this.get(team, name, 'su', nowMs) + this.get(team, name, 'ru', nowMs);
        const period = { period: budget.period, periodKey: budget.periodKey };
        if (budget.maxTokens !== undefined && usedTokens + tokens > budget.maxTokens)
          refuse(1, { ...denial(scope, 'budget_tokens', budget.maxTokens, usedTokens), ...period });
        if (budget.maxUsdMicros !== undefined && usedUsd + usdMicros > budget.maxUsdMicros)
          refuse(2, { ...denial(scope, 'budget_usd', budget.maxUsdMicros, usedUsd), ...period });
      }
      if (scope.maxConcurrent !== undefined) {
        const inUse = this.get(team, counterName.slots(scope.id), 'n', nowMs);
        if (inUse + 1 > scope.maxConcurrent)
          refuse(3, denial(scope, 'concurrency', scope.maxConcurrent, inUse));
      }
      if (scope.tokensPerMinute !== undefined) {
        const used = this.get(team, counterName.window(scope.id, nowMs), 't', nowMs);
        if (used + tokens > scope.tokensPerMinute)
          refuse(4, {
            ...denial(scope, 'tokens_per_minute', scope.tokensPerMinute, used),
            retryAfterMs: nextWindowInMs(nowMs),
          });
      }
    }
    if (refusal) return refusal.result;

    const record: QuotaRecord = {
      expiresAt: nowMs + request.ttlMs,
      tokens,
      usdMicros,
      slots: [],
      windows: [],
      budgets: [],
    };
    let tightest: QuotaTokenWindow | undefined;
    for (const scope of request.scopes) {
      for (const budget of scope.budgets ?? []) {
        const name = counterName.budget(scope.id, budget);
        const ttlMs = BUDGET_TTL_MS[budget.period];
        this.add(team, name, 'rt', tokens, nowMs, ttlMs);
        this.add(team, name, 'ru', usdMicros, nowMs, ttlMs);
        record.budgets.push({ name, ttlMs });
      }
      if (scope.maxConcurrent !== undefined) {
        const name = counterName.slots(scope.id);
        this.add(team, name, 'n', 1, nowMs);
        record.slots.push(name);
      }
      if (scope.tokensPerMinute !== undefined) {
        const name = counterName.window(scope.id, nowMs);
        this.add(team, name, 't', tokens, nowMs, TPM_WINDOW_TTL_MS);
        record.windows.push(name);
        const remaining = Math.max(0, scope.tokensPerMinute - this.get(team, name, 't', nowMs));
        if (!tightest || remaining < tightest.remaining)
          tightest = {
            scope: scope.id,
            limit: scope.tokensPerMinute,
            remaining,
            resetMs: nextWindowInMs(nowMs),
          };
      }
    }
    records.set(request.reservationId, record);
    return tightest ? { granted: true, tokensPerMinute: tightest } : { granted: true };
  }

  private finish(
    team: string,
    id: string,
    actual: QuotaUsage | undefined,
    nowMs: number,
  ): QuotaSettleOutcome {
    validateTeamId(team);
    if (actual) validateUsage(actual);
    const records = this.reap(team, nowMs);
    const record = records.get(id);
    if (!record) return 'unknown';
    records.delete(id);
    const live = record.purgeAt === undefined;
    if (live) this.unreserve(team, record, nowMs);
    const used = actual ?? { tokens: 0, usdMicros: 0 };
    for (const budget of record.budgets) {
      this.add(team, budget.name, 'st', used.tokens, nowMs, budget.ttlMs);
      this.add(team, budget.name, 'su', used.usdMicros, nowMs, budget.ttlMs);
    }
    // A window that has already gone needs no correction.
    for (const name of record.windows)
      if (this.exists(team, name, nowMs)) this.add(team, name, 't', used.tokens - record.tokens, nowMs);
    if (!live) return 'expired';
    return actual ? 'settled' : 'released';
  }

  async settle(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return this.finish(teamId, reservationId, actual, nowMs);
  }

  async release(teamId: string, reservationId: string, nowMs: number): Promise<QuotaSettleOutcome> {
    return this.finish(teamId, reservationId, undefined, nowMs);
  }

  async status(team: string, scopes: QuotaScope[], nowMs: number): Promise<QuotaScopeStatus[]> {
    validateTeamId(team);
    validateScopes(scopes);
    this.reap(team, nowMs);
    return scopes.map((scope) =>
      scopeStatus(scope, nowMs, {
        window: this.get(team, counterName.window(scope.id, nowMs), 't', nowMs),
        slots: this.get(team, counterName.slots(scope.id), 'n', nowMs),
        budgets: (scope.budgets ?? []).map((budget) => {
          const name = counterName.budget(scope.id, budget);
          return ['st', 'su', 'rt', 'ru'].map((field) => this.get(team, name, field, nowMs)) as [
            number,
            number,
            number,
            number,
          ];
        }),
      }),
    );
  }
}
