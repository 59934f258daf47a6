import { ServiceUnavailableError, UpstreamError } from '../../errors.js';

/** One upstream API key of a pool, as configured (`apiKeys: [{ key, weight }]`). */
export interface PoolKeyConfig {
  key: string;
  weight: number;
}

/** A key picked for one request; `index` reports the upstream's answer back. */
export interface PickedKey {
  index: number;
  key: string;
}

/** A key's state as the admin API and logs may show it: never the key itself. */
export interface KeyStatus {
  /** `key-1`, `key-2`…: the key's place in the config list. */
  id: string;
  weight: number;
  state: 'active' | 'cooling' | 'disabled';
  /** Cooling (the upstream answered 429): how long until it is used again. */
  cooldownLeftMs?: number;
  /** Disabled: the status the upstream refused it with (401, 403); it stays out until restart. */
  refusedWith?: number;
}

export interface KeyPoolOptions {
  /** Uniform numbers in [0, 1): Math.random, or a seeded source in tests. */
  random?: () => number;
  now?: () => number;
  /** A 429 without retry-after cools the key this long. */
  defaultCooldownMs?: number;
  /** No retry-after holds a key out longer than this. */
  maxCooldownMs?: number;
  /** Called when a key is taken out or starts cooling (with its id, never the key). */
  onChange?: (status: KeyStatus) => void;
}

interface Entry extends PoolKeyConfig {
  index: number;
  coolingUntil: number;
  refusedWith: number | undefined;
}

/**
 * Several upstream API keys of one backend, used in proportion to their weights. A key the
 * upstream refuses (401, 403) is taken out for good, since it will not start working on its own;
 * a key that hits the upstream's rate limit (429) rests for the upstream's retry-after, and
 * traffic carries on over the others. Per instance: each instance learns from its own answers.
 */
export class KeyPool {
  private readonly entries: Entry[];
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly defaultCooldownMs: number;
  private readonly maxCooldownMs: number;
  private readonly onChange: ((status: KeyStatus) => void) | undefined;

  constructor(keys: readonly PoolKeyConfig[], options: KeyPoolOptions = {}) {
    if (keys.length === 0) throw new RangeError('a key pool needs at least one key');
    this.entries = keys.map((key, index) => ({ ...key, index, coolingUntil: 0, refusedWith: undefined }));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.defaultCooldownMs = options.defaultCooldownMs ?? 1_000;
    this.maxCooldownMs = options.maxCooldownMs ?? 60_000;
    this.onChange = options.onChange;
  }

  /** A key for the next request, at random by weight among the usable ones; undefined if none is. */
  pick(): PickedKey | undefined {
    const now = this.now();
    const usable = this.entries.filter(
      (entry) => entry.refusedWith === undefined && entry.coolingUntil <= now,
    );
    const total = usable.reduce((sum, entry) => sum + entry.weight, 0);
    let point = this.random() * total;
    // Rounding can leave the point a hair past the last weight: the last usable key then.
    const chosen =
      usable.find((entry) => {
        point -= entry.weight;
        return point < 0;
      }) ?? usable.at(-1);
    return chosen && { index: chosen.index, key: chosen.key };
  }

  /** The upstream's answer to a request sent with key `index` (retry-after in ms, if it said). */
  report(index: number, status: number, retryAfterMs?: number): void {
    const entry = this.entries[index];
    if (!entry || entry.refusedWith !== undefined) return;
    if (status === 401 || status === 403) {
      entry.refusedWith = status;
      this.onChange?.(this.statusOf(entry, this.now()));
    } else if (status === 429) {
      const wait =
        retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0
          ? retryAfterMs
          : this.defaultCooldownMs;
      const now = this.now();
      entry.coolingUntil = Math.max(entry.coolingUntil, now + Math.min(wait, this.maxCooldownMs));
      this.onChange?.(this.statusOf(entry, now));
    }
  }

  /**
   * A key for one request of backend `backend`; while none is usable, a 503 (all resting, with the
   * wait as retry-after) or a 502 (all refused): the deployment's trouble, so routing moves on.
   */
  take(backend: string): PickedKey {
    const picked = this.pick();
    if (picked) return picked;
    const waitMs = this.nextUsableInMs();
    if (waitMs === undefined)
      throw new UpstreamError(`Backend '${backend}': the upstream refused every configured API key.`);
    throw new ServiceUnavailableError(
      `Backend '${backend}': every API key is resting after the upstream's rate limit; retry shortly.`,
      Math.max(1, Math.ceil(waitMs / 1_000)),
    );
  }

  /** How long until some key is usable again (a cooling one); undefined when every key is refused. */
  nextUsableInMs(): number | undefined {
    const now = this.now();
    const waits = this.entries
      .filter((entry) => entry.refusedWith === undefined)
      .map((entry) => Math.max(0, entry.coolingUntil - now));
    return waits.length === 0 ? undefined : Math.min(...waits);
  }

  /** Every key's state, in config order. */
  status(): KeyStatus[] {
    const now = this.now();
    return this.entries.map((entry) => this.statusOf(entry, now));
  }

  private statusOf(entry: Entry, now: number): KeyStatus {
    const base = { id: `key-${entry.index + 1}`, weight: entry.weight };
    if (entry.refusedWith !== undefined)
      return { ...base, state: 'disabled', refusedWith: entry.refusedWith };
    if (entry.coolingUntil > now)
      return { ...base, state: 'cooling', cooldownLeftMs: entry.coolingUntil - now };
    return { ...base, state: 'active' };
  }
}

/**
 * The upstream's retry-after in ms: `retry-after-ms` (OpenAI's), else `retry-after` in seconds
 * or as an HTTP date; undefined when it said neither (or nonsense).
 */
export function retryAfterMs(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  nowMs = Date.now(),
): number | undefined {
  const first = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const ms = Number(first('retry-after-ms'));
  if (first('retry-after-ms') !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const after = first('retry-after');
  if (after === undefined || after.trim() === '') return undefined;
  const seconds = Number(after);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1_000 : undefined;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}
