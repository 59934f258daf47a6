import type { CacheStatus } from '../http/request-context.js';

/**
 * How a recorded request ended; each is counted in exactly one usage metric, so the four counts
 * add up to every request recorded.
 * - served: a 2xx answer, from the upstream or the response cache (a stream the client left
 *   partway through included: it was answered, and is charged for what it got);
 * - rejected: refused by the gateway's own limits or budgets (its 429s);
 * - invalid: refused by the gateway for the request itself (a parameter it cannot account for,
 *   an endpoint the model's backend lacks, an upload too large);
 * - failed: no complete answer: the upstream answered with an error, could not be reached or
 *   timed out, broke off a stream after its 200, the gateway failed (its store unavailable), or
 *   the client left before any answer.
 */
export const USAGE_OUTCOMES = ['served', 'rejected', 'invalid', 'failed'] as const;
export type UsageOutcome = (typeof USAGE_OUTCOMES)[number];

/**
 * ⑦ usage: what one request used and cost, recorded after its response ended (never on the
 * path the client waits on), then summed per day, team, key and model.
 */
export interface UsageRecord {
  /** Unix ms when the response ended. */
  at: number;
  requestId: string;
  teamId: string;
  keyId: string;
  /** The public model name the client asked for. */
  model: string;
  deployment: string;
  status: number;
  /** Absent on records written before outcomes were kept. */
  outcome?: UsageOutcome | undefined;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
  usdMicros: number;
  /** No price was known for the model (it cost 0 here). */
  unpriced: boolean;
  /** The upstream reported no usage: the figures are the gateway's own estimate. */
  estimated: boolean;
  latencyMs: number;
  /** Streams: ms from the request's arrival to the first event relayed. */
  ttftMs?: number | undefined;
  /** ③ cache: HIT, MISS, BYPASS or REFRESH; absent when the response cache had no say. */
  cache?: CacheStatus | undefined;
  stream: boolean;
  tags: string[];
  /**
   * ⑤ each attempt over the model's deployments, in order, skipped candidates included (as in
   * the request log line); absent when none was made (a cache hit, a refusal before routing).
   */
  attempts?: UsageAttempt[] | undefined;
}

/** One attempt as src/pipeline/attempts.ts logs it: the upstream's status, or why it was skipped. */
export interface UsageAttempt {
  deployment: string;
  status: number | string;
  duration_ms: number;
}

/**
 * The sums kept per day x team x key x model. `requests` counts the served ones only; with
 * `rejected`, `invalid` and `failed` it adds up to every request recorded.
 */
export const USAGE_METRICS = [
  'requests',
  'rejected',
  'invalid',
  'failed',
  'prompt_tokens',
  'completion_tokens',
  'total_tokens',
  'usd_micros',
  'cache_hits',
  'cache_misses',
] as const;
export type UsageMetric = (typeof USAGE_METRICS)[number];

export interface UsageQuery {
  /** Inclusive UTC days, 'YYYY-MM-DD'. */
  from: string;
  to: string;
  teamId?: string | undefined;
  keyId?: string | undefined;
  model?: string | undefined;
}

/** One aggregate row: a day, team, key and model with its sums. */
export interface UsageRow {
  day: string;
  teamId: string;
  keyId: string;
  model: string;
  sums: Record<UsageMetric, number>;
}

const DAY_MS = 86_400_000;
/**
 * The last day asked for and the ms it spans: every usage record asks for its day, and
 * `toISOString` cost ~7k instructions a record (bench/instructions.mjs, Redis store).
 */
let lastDay = { name: '', from: 0, to: 0 };

/** `YYYY-MM-DD` of `ms` in UTC. */
export function utcDay(ms: number): string {
  if (ms >= lastDay.from && ms < lastDay.to) return lastDay.name;
  const name = new Date(ms).toISOString().slice(0, 10);
  const from = Math.floor(ms / DAY_MS) * DAY_MS;
  lastDay = { name, from, to: from + DAY_MS };
  return name;
}

/** Every UTC day from `from` to `to`, inclusive, at most `limit` of them. */
export function daysBetween(from: string, to: string, limit = 400): string[] {
  const days: string[] = [];
  for (let at = Date.parse(`${from}T00:00:00Z`); days.length < limit; at += 86_400_000) {
    const day = utcDay(at);
    if (day > to) break;
    days.push(day);
  }
  return days;
}

/** Every metric at zero: the start of a sum. */
export function emptySums(): Record<UsageMetric, number> {
  return {
    requests: 0,
    rejected: 0,
    invalid: 0,
    failed: 0,
    prompt_tokens: 0,
    completion_tokens: 0,
    total_tokens: 0,
    usd_micros: 0,
    cache_hits: 0,
    cache_misses: 0,
  };
}

export function metricsOf(record: UsageRecord): Record<UsageMetric, number> {
  // Records from before outcomes were kept counted every request as one of `requests`.
  const outcome = record.outcome ?? 'served';
  return {
    requests: outcome === 'served' ? 1 : 0,
    rejected: outcome === 'rejected' ? 1 : 0,
    invalid: outcome === 'invalid' ? 1 : 0,
    failed: outcome === 'failed' ? 1 : 0,
    prompt_tokens: record.promptTokens,
    completion_tokens: record.completionTokens,
    total_tokens: record.totalTokens,
    usd_micros: record.usdMicros,
    cache_hits: record.cache === 'HIT' ? 1 : 0,
    // A refresh went upstream like a miss.
    cache_misses: record.cache === 'MISS' || record.cache === 'REFRESH' ? 1 : 0,
  };
}
