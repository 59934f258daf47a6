import type { AdmitRequest, RequestRateScope } from '../quota/quota-types.js';

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

/** `plan` of quota-turn.lua: request-rate scopes, the estimate, its expiry and limit scopes. */
export function planJson(
  requests: readonly RequestRateScope[],
  reservation: AdmitRequest['reservation'],
  times: ScriptPlanTimes,
): string {
  let q = '';
  for (const s of requests)
    q += `${q ? ',' : ''}{"s":${str(s.id)}${opt('pm', s.perMinute)}${opt('pd', s.perDay)}}`;
  let scopes = '';
  for (const scope of reservation?.scopes ?? []) {
    let budgets = '';
    for (const b of scope.budgets ?? [])
      budgets += `${budgets ? ',' : ''}{"p":${str(b.period)},"k":${str(b.periodKey)}${opt('mt', b.maxTokens)}${opt('mu', b.maxUsdMicros)}}`;
    scopes += `${scopes ? ',' : ''}{"id":${str(scope.id)}${opt('c', scope.maxConcurrent)}${opt('m', scope.tokensPerMinute)},"b":[${budgets}]}`;
  }
  const expires = times.nowMs + (reservation?.ttlMs ?? 0);
  return `{"q":[${q}],"t":${reservation?.tokens ?? 0},"u":${reservation?.usdMicros ?? 0},"e":${expires},"w":${times.window},"retry":${times.retryMs},"s":[${scopes}]}`;
}

/**
 * `record` of quota-turn.lua: the reservation's expiry, estimate, and the fields it counts in
 * (concurrency scopes, tokens-per-minute windows, budget periods).
 */
export function recordJson(
  reservation: NonNullable<AdmitRequest['reservation']>,
  times: ScriptPlanTimes,
): string {
  let c = '';
  let m = '';
  let b = '';
  for (const s of reservation.scopes) {
    const id = str(s.id);
    if (s.maxConcurrent !== undefined) c += `${c ? ',' : ''}${id}`;
    if (s.tokensPerMinute !== undefined) m += `${m ? ',' : ''}[${id},${times.window}]`;
    for (const budget of s.budgets ?? [])
      b += `${b ? ',' : ''}[${id},${str(budget.period)},${str(budget.periodKey)}]`;
  }
  const expires = times.nowMs + reservation.ttlMs;
  return `{"e":${expires},"t":${reservation.tokens},"u":${reservation.usdMicros},"c":[${c}],"m":[${m}],"b":[${b}]}`;
}
