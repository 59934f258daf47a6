import {
  type AdmitRequest,
  type AdmitResult,
  EXPIRED_RESERVATION_GRACE_MS,
  nextWindowInMs,
  type QuotaLimitKind,
  type QuotaReservationRequest,
  type QuotaReservationResult,
  type QuotaScope,
  type QuotaScopeStatus,
  type QuotaSettleOutcome,
  type QuotaUsage,
  type RequestRateKind,
  type RequestRateWindow,
  scopeStatus,
  tpmWindow,
  validateAdmit,
  validateScopes,
  validateTeamId,
  validateUsage,
} from '../quota/quota-types.js';
import { loadLua } from './lua-script.js';
import type { QuotaStore } from './quota-store.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage } from './store-unavailable.js';
import { TurnBatches } from './turn-batches.js';

/**
 * Quota state of one team is ONE hash, `tg:{q:<team>}:h` (the braces are the Cluster hash tag,
 * so a team is one node while teams spread over all of them). Its fields, per scope id `S`:
 *
 *   q:S        requests this minute: 'start ms,count'     d:S   the same per day
 *   m:S        tokens this minute: 'window,tokens' (window = floor(ms / 60 s))
 *   c:S        concurrency slots in use
 *   b:S:P      budget of period P: 'key,spent T,spent U,reserved T,reserved U' for the current
 *              period key, then the same five for the previous one
 *   r:<id>     a live reservation: its record (which fields it counted in), JSON
 *   next       when the earliest reservation expires (lost processes are reaped then)
 *
 * Each script reads what it needs with one HMGET and writes back with one HSET, instead of a
 * key per counter with its own expiry: a request with key and team limits and two budgets costs
 * Redis about nine commands in all (admit 3, settle 5, usage 1), against ~60 before, and fewer
 * under load, when the admits and settles of one event-loop turn share a script call. Counters
 * that carry their window or period in their value need no expiry; nothing grows: records are
 * deleted when they end, expired ones after the grace period.
 */
const hashOf = (teamId: string) => `tg:{q:${teamId}}:h`;

const ADMIT = loadLua('quota-lib', 'quota-admit');
const FINISH = loadLua('quota-lib', 'quota-finish');
const STATUS = loadLua('quota-lib', 'quota-status');

/** Refusal ranks as the admit script numbers them (0: a request rate). */
const REFUSAL_RANKS: QuotaLimitKind[] = ['budget_tokens', 'budget_usd', 'concurrency', 'tokens_per_minute'];
const RATE_KINDS: RequestRateKind[] = ['requests_per_minute', 'requests_per_day'];

/** One settle or release waiting for its team's batch. */
interface FinishItem {
  reservationId: string;
  actual: QuotaUsage | undefined;
  nowMs: number;
  resolve: (outcome: QuotaSettleOutcome) => void;
  reject: (error: unknown) => void;
}

/** One admit waiting for its team's batch: the script's four arguments for it. */
interface AdmitItem {
  args: [nowMs: number, reservationId: string, plan: string, record: string];
  resolve: (answer: number[]) => void;
  reject: (error: unknown) => void;
}

/** Reservations finished by one script call at most (Lua's unpack has a limit on arguments). */
const FINISH_BATCH = 200;
/** Requests admitted by one script call at most (the batch's field names go to one HMGET). */
const ADMIT_BATCH = 100;

export class RedisQuotaStore implements QuotaStore {
  /** Admits asked for in this turn of the event loop, per team. */
  private readonly admitting = new TurnBatches<AdmitItem>(ADMIT_BATCH, (teamId, items) => {
    void this.admitBatch(teamId, items);
  });
  /** Settles and releases asked for in this turn of the event loop, per team. */
  private readonly finishing = new TurnBatches<FinishItem>(FINISH_BATCH, (teamId, items) => {
    void this.finishBatch(teamId, items);
  });

  constructor(private readonly connection: RedisConnection) {
    failClosedOnOutage(this, connection.client);
  }

  async admit(request: AdmitRequest): Promise<AdmitResult> {
    validateAdmit(request);
    const { nowMs, reservation } = request;
    const requests = request.requests.filter((s) => s.perMinute !== undefined || s.perDay !== undefined);
    const plan = {
      q: requests.map((s) => ({ s: s.id, pm: s.perMinute, pd: s.perDay })),
      t: reservation?.tokens ?? 0,
      u: reservation?.usdMicros ?? 0,
      e: nowMs + (reservation?.ttlMs ?? 0),
      w: tpmWindow(nowMs),
      retry: nextWindowInMs(nowMs),
      s: (reservation?.scopes ?? []).map((scope) => ({
        id: scope.id,
        c: scope.maxConcurrent,
        m: scope.tokensPerMinute,
        b: (scope.budgets ?? []).map((b) => ({
          p: b.period,
          k: b.periodKey,
          mt: b.maxTokens,
          mu: b.maxUsdMicros,
        })),
      })),
    };
    const record = reservation && {
      e: plan.e,
      t: plan.t,
      u: plan.u,
      c: reservation.scopes.filter((s) => s.maxConcurrent !== undefined).map((s) => s.id),
      m: reservation.scopes.filter((s) => s.tokensPerMinute !== undefined).map((s) => [s.id, plan.w]),
      b: reservation.scopes.flatMap((s) => (s.budgets ?? []).map((b) => [s.id, b.period, b.periodKey])),
    };
    const answer = await this.queueAdmit(request.teamId, [
      nowMs,
      reservation?.reservationId ?? '',
      JSON.stringify(plan),
      record ? JSON.stringify(record) : '',
    ]);
    const at = (i: number) => answer[i] ?? -1;
    const windowAt = (i: number): RequestRateWindow | undefined => {
      const index = at(i);
      const scope = requests[index - 1];
      if (index < 1 || !scope) return undefined;
      return {
        scope: scope.id,
        kind: RATE_KINDS[at(i + 1) - 1] ?? 'requests_per_minute',
        limit: at(i + 2),
        remaining: Math.max(0, at(i + 3)),
        resetMs: Math.max(0, at(i + 4)),
      };
    };
    if (at(0) === 1) {
      const tightest = windowAt(4);
      const counted = { allowed: true as const, ...(tightest ? { tightest } : {}) };
      if (!reservation) return { requests: counted };
      const tight = reservation.scopes[at(1) - 1];
      return {
        requests: counted,
        reservation: tight
          ? {
              granted: true,
              tokensPerMinute: { scope: tight.id, limit: at(2), remaining: at(3), resetMs: plan.retry },
            }
          : { granted: true },
      };
    }
    const rank = at(2);
    if (rank === 0) {
      const refused = windowAt(1) as RequestRateWindow;
      return { requests: { allowed: false, refused: { ...refused, remaining: 0 } } };
    }
    const tightest = windowAt(7);
    const scope = reservation?.scopes[at(1) - 1] as QuotaScope;
    const budget = at(6) > 0 ? scope.budgets?.[at(6) - 1] : undefined;
    return {
      requests: { allowed: true, ...(tightest ? { tightest } : {}) },
      reservation: {
        granted: false,
        scope: scope.id,
        limit: REFUSAL_RANKS[rank - 1] as QuotaLimitKind,
        limitValue: at(3),
        remaining: at(4),
        ...(at(5) >= 0 ? { retryAfterMs: at(5) } : {}),
        ...(budget ? { period: budget.period, periodKey: budget.periodKey } : {}),
      },
    };
  }

  /**
   * Admits go out in batches like settles: those asked for in one turn of the event loop are one
   * script call per team, run in the order they were asked for, exactly as that many calls in a
   * row (quota-admit.lua). At saturation and in bursts one turn holds several requests of a busy
   * team (~12 on average at saturation in the benchmark; few under an even 1,000 req/s), and each
   * script call costs Redis more than the requests' own work in it. The wait is the rest of the
   * turn: the calls went out at its end before too, pipelined (redis-client.ts).
   */
  private queueAdmit(teamId: string, args: AdmitItem['args']): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      this.admitting.add(teamId, { args, resolve, reject });
    });
  }

  private async admitBatch(teamId: string, items: AdmitItem[]): Promise<void> {
    const args: Array<string | number> = [items[0]?.args[0] ?? 0, EXPIRED_RESERVATION_GRACE_MS, items.length];
    for (const item of items) args.push(...item.args);
    let answers: unknown;
    try {
      answers = await this.connection.run(ADMIT, [hashOf(teamId)], args);
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    items.forEach((item, i) => {
      const answer = Array.isArray(answers) ? answers[i] : undefined;
      if (Array.isArray(answer)) item.resolve(answer as number[]);
      else item.reject(new Error(`The quota script gave no answer for request ${i + 1} of ${items.length}.`));
    });
  }

  async reserve(request: QuotaReservationRequest): Promise<QuotaReservationResult> {
    const { teamId, nowMs, ...reservation } = request;
    const result = await this.admit({ teamId, nowMs, requests: [], reservation });
    return result.reservation as QuotaReservationResult;
  }

  /**
   * Settles and releases go out in batches: those asked for in one turn of the event loop are
   * one script call per team (see quota-finish.lua), which saves Redis the per-call work (the
   * shared functions, the reads and writes of the same budget fields) and the gateway a command
   * each. A settle already happens after the client has its answer, so the wait of a turn is
   * nobody's.
   */
  private finish(
    teamId: string,
    reservationId: string,
    actual: QuotaUsage | undefined,
    nowMs: number,
  ): Promise<QuotaSettleOutcome> {
    return new Promise<QuotaSettleOutcome>((resolve, reject) => {
      // Thrown here, a bad argument rejects this call alone (as it did when each call ran alone).
      validateTeamId(teamId);
      if (actual) validateUsage(actual);
      this.finishing.add(teamId, { reservationId, actual, nowMs, resolve, reject });
    });
  }

  private async finishBatch(teamId: string, items: FinishItem[]): Promise<void> {
    const args: Array<string | number> = [
      Math.max(...items.map((item) => item.nowMs)),
      EXPIRED_RESERVATION_GRACE_MS,
      items.length,
    ];
    for (const { reservationId, actual, nowMs } of items) {
      args.push(reservationId, actual?.tokens ?? 0, actual?.usdMicros ?? 0, actual ? '1' : '0', nowMs);
    }
    let answers: number[];
    try {
      answers = (await this.connection.run(FINISH, [hashOf(teamId)], args)) as number[];
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    items.forEach((item, i) => {
      const answer = answers[i];
      if (answer === 1) item.resolve(item.actual ? 'settled' : 'released');
      else item.resolve(answer === 2 ? 'expired' : 'unknown');
    });
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
    const plan = {
      w: tpmWindow(nowMs),
      s: scopes.map((scope) => ({
        id: scope.id,
        b: (scope.budgets ?? []).map((b) => ({ p: b.period, k: b.periodKey })),
      })),
    };
    const values = (await this.connection.run(
      STATUS,
      [hashOf(teamId)],
      [nowMs, EXPIRED_RESERVATION_GRACE_MS, JSON.stringify(plan)],
    )) as number[];
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
