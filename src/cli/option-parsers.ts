import { InvalidArgumentError } from 'commander';
import type { Metadata } from './admin-types.js';
import { formatDuration, parseDuration, parseTimestamp } from './durations.js';

/**
 * Commander calls these with each option's text; an `InvalidArgumentError` becomes a usage
 * error (exit 2) that names the option, before anything is sent to the gateway.
 */

export const DEFAULT_URL = 'http://127.0.0.1:8080';

function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

export function parseUrl(value: string): string {
  // An exported-but-empty TOLLGATE_URL means "not set", not "no URL".
  if (value.trim() === '') return DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('not a URL (e.g. http://127.0.0.1:8080)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError('the URL must start with http:// or https://');
  }
  if (url.username || url.password) {
    throw new InvalidArgumentError('put credentials in --admin-key, not in the URL');
  }
  return url.href;
}

/** `gpt-4o,gpt-4o-mini`, or `*` for every model. */
export function parseModels(value: string): string[] {
  const models = value
    .split(',')
    .map((model) => model.trim())
    .filter((model) => model !== '');
  if (models.length === 0)
    throw new InvalidArgumentError("give one or more comma-separated model names, or '*'");
  if (models.includes('*') && models.length > 1) {
    throw new InvalidArgumentError("'*' already means every model; give it alone");
  }
  return [...new Set(models)];
}

/** Repeatable `--metadata key=value`; a later value for the same key wins. */
export function collectMetadata(value: string, previous: Metadata | undefined): Metadata {
  const at = value.indexOf('=');
  const key = value.slice(0, Math.max(at, 0)).trim();
  if (at < 0 || key === '') throw new InvalidArgumentError('use key=value');
  return { ...previous, [key]: value.slice(at + 1) };
}

export function parseLimit(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || Number(value) > 100) {
    throw new InvalidArgumentError('a whole number from 1 to 100');
  }
  return Number(value);
}

/** A lifetime: must be positive. */
export function parseLifetime(value: string): number {
  return usage(() => parseDuration(value));
}

/** A grace period: zero means "the old secret stops working now". */
export function parseGrace(value: string): number {
  return usage(() => parseDuration(value, { allowZero: true }));
}

export function parseWhen(value: string): number {
  return usage(() => parseTimestamp(value));
}

/**
 * Node's timers hold at most 2^31-1 ms (about 24.8 days); past that one fires at once, with a
 * warning, so the bound is a round number of days below it.
 */
export const MAX_TIMEOUT_SECONDS = 24 * 86_400;

export function parseTimeoutMs(value: string): number {
  const seconds = usage(() => parseDuration(value));
  if (seconds > MAX_TIMEOUT_SECONDS) {
    throw new InvalidArgumentError(`a timeout can be at most ${formatDuration(MAX_TIMEOUT_SECONDS)}`);
  }
  return seconds * 1000;
}
