import { GatewayError } from '../errors.js';
import { modelLimitEntries } from '../quota/model-limit-entries.js';
import type { RequestRateScope, RequestRateWindow } from '../quota/quota-types.js';
import { isModelPattern } from '../registry/model-patterns.js';
import type { Principal } from './auth.js';

/**
 * ② quota, request rates: requests per minute and per day, per key, per team and per entry of
 * the team's model_limits covering the model (its name's and each pattern's), counted by the
 * quota store in the same step as the reservation (one round trip before the upstream;
 * `QuotaStage.admit`). Windows start at a scope's first request. OpenAI's
 * x-ratelimit-*-requests headers report the tightest window.
 */
type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

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

/** The request-rate scopes a key's request counts in; [] when none limits it. */
export function requestRateScopes(principal: KeyPrincipal, model: string | undefined): RequestRateScope[] {
  const scopes: RequestRateScope[] = [];
  const add = (
    id: string,
    limits: { requests_per_minute?: number; requests_per_day?: number } | undefined,
  ) => {
    if (limits?.requests_per_minute === undefined && limits?.requests_per_day === undefined) return;
    scopes.push({ id, perMinute: limits.requests_per_minute, perDay: limits.requests_per_day });
  };
  add(`key:${principal.keyId}`, principal.keyLimits);
  add(`team:${principal.teamId}`, principal.teamLimits);
  if (model !== undefined)
    for (const [entry, own] of modelLimitEntries(principal.teamModelLimits, model))
      add(`model:${entry}`, own.limits);
  return scopes;
}

const SCOPE_OWNERS: Record<string, string> = { key: "This API key's", team: "Your team's" };

/**
 * Whose limit a scope id is, in words: `model:<entry>` is the team's limit on one model, or on
 * every model a pattern entry covers together.
 */
export function whoseLimit(scopeId: string): string {
  const [kind, ...rest] = scopeId.split(':');
  if (kind === 'model') {
    const entry = rest.join(':');
    return isModelPattern(entry)
      ? `Your team's (models matching '${entry}')`
      : `Your team's (model '${entry}')`;
  }
  return SCOPE_OWNERS[kind ?? ''] ?? "This request's";
}

/** OpenAI's x-ratelimit-*-requests headers for the window with the fewest requests left. */
export function requestRateHeaders(window: RequestRateWindow): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(window.limit),
    'x-ratelimit-remaining-requests': String(window.remaining),
    'x-ratelimit-reset-requests': formatDuration(window.resetMs),
  };
}

/**
 * The longest `retry-after` the OpenAI SDK waits for: past it the SDK ignores the header and
 * retries at once after its own short backoff, to be refused again; the Anthropic SDK would
 * instead sleep through all of it (up to a day) before its retry.
 */
const LONGEST_SDK_WAIT_MS = 60_000;

/**
 * A request over a request rate: 429 with when to retry; past a minute away (a per-day window),
 * `x-should-retry: false` as well, so the SDKs hand the refusal to their caller at once.
 */
export function requestRateRefusal(window: RequestRateWindow): GatewayError {
  const who = whoseLimit(window.scope);
  const per = window.kind === 'requests_per_minute' ? 'minute' : 'day';
  const waitMs = Math.max(0, Math.round(window.resetMs));
  return new GatewayError(
    429,
    'rate_limit_error',
    'rate_limit_exceeded',
    `${who} limit of ${window.limit} requests per ${per} is reached; retry in ${formatDuration(window.resetMs)}.`,
    {
      headers: {
        'retry-after': String(Math.max(1, Math.ceil(window.resetMs / 1_000))),
        'retry-after-ms': String(waitMs),
        ...(waitMs > LONGEST_SDK_WAIT_MS ? { 'x-should-retry': 'false' } : {}),
        ...requestRateHeaders(window),
      },
    },
  );
}
