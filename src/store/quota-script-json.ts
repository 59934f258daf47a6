import type { AdmitRequest, QuotaScope, RequestRateScope } from '../quota/quota-types.js';
import { derivedOnce } from '../quota/sealed-scopes.js';

/**
 * The JSON an admit hands quota-turn.lua: its plan (what to count and check) and the record the
 * script keeps for a reservation (which fields it counted in, for the settle). Written out by
 * hand: building the objects and JSON.stringify-ing them cost the admit ~12k instructions more
 * per request (51k against 39k, with section 6's key of `npm run bench`: callgrind profiles of
 * bench/instructions.mjs with BENCH_INSTR_STORE=redis). The output is what JSON.stringify gives
 * for the objects described in quota-turn.lua (keys in that order, absent limits left out); a
 * test holds the two to it.
 */

/** A value as JSON.stringify writes it, for strings and the integers of limits and counters. */
const str = (value: string) => JSON.stringify(value);
/** `,"key":n` when the limit is set; nothing when it is not (JSON.stringify leaves undefined out). */
const opt = (key: string, value: number | undefined) => (value === undefined ? '' : `,"${key}":${value}`);

export interface ScriptPlanTimes {
  nowMs: number;
  /** The tokens-per-minute window of nowMs (tpmWindow). */
  window: number;
  /** Until that window ends (nextWindowInMs). */
  retryMs: number;
}

/** What a list of request-rate scopes writes into the plan: its `q`. */
function requestsJson(requests: readonly RequestRateScope[]): string {
  let q = '';
  for (const s of requests)
    q += `${q ? ',' : ''}{"s":${str(s.id)}${opt('pm', s.perMinute)}${opt('pd', s.perDay)}}`;
  return q;
}

/** The parts of the plan and record a list of limit scopes gives, whatever the time. */
interface ScopeParts {
  /** The plan's `s`. */
  scopes: string;
  /** The record's `c` and `b`. */
  c: string;
  b: string;
  /** JSON ids of the scopes with a tokens-per-minute limit (the record's `m`, with a window). */
  minuteIds: readonly string[];
}

function scopeParts(scopes: readonly QuotaScope[]): ScopeParts {
  let all = '';
  let c = '';
  let b = '';
  const minuteIds: string[] = [];
  for (const scope of scopes) {
    const id = str(scope.id);
    let budgets = '';
    for (const budget of scope.budgets ?? []) {
      const period = str(budget.period);
      const key = str(budget.periodKey);
      budgets += `${budgets ? ',' : ''}{"p":${period},"k":${key}${opt('mt', budget.maxTokens)}${opt('mu', budget.maxUsdMicros)}}`;
      b += `${b ? ',' : ''}[${id},${period},${key}]`;
    }
    all += `${all ? ',' : ''}{"id":${id}${opt('c', scope.maxConcurrent)}${opt('m', scope.tokensPerMinute)},"b":[${budgets}]}`;
    if (scope.maxConcurrent !== undefined) c += `${c ? ',' : ''}${id}`;
    if (scope.tokensPerMinute !== undefined) minuteIds.push(id);
  }
  return { scopes: all, c, b, minuteIds };
}

/**
 * Written out once per sealed list (sealed-scopes.ts: QuotaStage's, one per key and model a
 * day), not per request: the ids and period keys cost a JSON.stringify each, ~18k instructions
 * a request with section 6's key.
 */
const requestsMemo = new WeakMap<readonly RequestRateScope[], string>();
const scopesMemo = new WeakMap<readonly QuotaScope[], ScopeParts>();

const NO_SCOPES: readonly QuotaScope[] = [];

/**
 * `plan` and `record` of quota-turn.lua. The plan: request-rate scopes, the estimate, its expiry
 * and the limit scopes. The record (only with a reservation): its expiry, estimate and the fields
 * it counts in (concurrency scopes, tokens-per-minute windows, budget periods).
 */
export function scriptJson(
  requests: readonly RequestRateScope[],
  reservation: AdmitRequest['reservation'],
  times: ScriptPlanTimes,
): { plan: string; record: string } {
  const q = derivedOnce(requestsMemo, requests, requestsJson);
  const parts = derivedOnce(scopesMemo, reservation?.scopes ?? NO_SCOPES, scopeParts);
  let m = '';
  for (const id of parts.minuteIds) m += `${m ? ',' : ''}[${id},${times.window}]`;
  const t = reservation?.tokens ?? 0;
  const u = reservation?.usdMicros ?? 0;
  const e = times.nowMs + (reservation?.ttlMs ?? 0);
  return {
    plan: `{"q":[${q}],"t":${t},"u":${u},"e":${e},"w":${times.window},"retry":${times.retryMs},"s":[${parts.scopes}]}`,
    record: reservation ? `{"e":${e},"t":${t},"u":${u},"c":[${parts.c}],"m":[${m}],"b":[${parts.b}]}` : '',
  };
}
