/**
 * Durations and points in time as people type them on a command line, turned into the
 * whole seconds the admin API speaks. Parsers throw `RangeError` with a message meant for
 * the user; the CLI turns it into a usage error.
 */

const UNIT_SECONDS: Record<string, number> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

const DURATION_PART = /(\d+)\s*([smhdw])/gy;

export interface DurationOptions {
  /** Whether `0` is a meaningful answer (a grace period), or a mistake (a lifetime). */
  allowZero?: boolean;
}

/**
 * `90` (seconds), `90s`, `5m`, `12h`, `30d`, `2w`, or a sum such as `1h30m`.
 */
export function parseDuration(text: string, options: DurationOptions = {}): number {
  const input = text.trim().toLowerCase();
  let seconds: number;
  if (/^\d+$/.test(input)) {
    seconds = Number(input);
  } else {
    seconds = 0;
    DURATION_PART.lastIndex = 0;
    let consumed = 0;
    for (let match = DURATION_PART.exec(input); match; match = DURATION_PART.exec(input)) {
      seconds += Number(match[1]) * (UNIT_SECONDS[match[2] ?? ''] ?? Number.NaN);
      consumed = DURATION_PART.lastIndex;
    }
    if (input === '' || consumed !== input.length) {
      throw new RangeError(
        `invalid duration '${text}': use seconds or a number with s, m, h, d or w (e.g. 30d)`,
      );
    }
  }
  if (!Number.isSafeInteger(seconds)) throw new RangeError(`duration '${text}' is too large`);
  if (seconds === 0 && !options.allowZero) throw new RangeError(`duration '${text}' must be more than 0`);
  return seconds;
}

/** `YYYY-MM-DD` naming a day that exists (the admin API's own test for usage days). */
function isCalendarDay(day: string): boolean {
  const at = Date.parse(`${day}T00:00:00Z`);
  return !Number.isNaN(at) && new Date(at).toISOString().startsWith(day);
}

/**
 * An absolute time: an ISO 8601 date or date-time (UTC unless it names a zone), Unix
 * seconds, or `+<duration>` counted from `now`.
 */
export function parseTimestamp(text: string, now: Date = new Date()): number {
  const input = text.trim();
  if (input.startsWith('+')) {
    return Math.floor(now.getTime() / 1000) + parseDuration(input.slice(1));
  }
  if (/^\d+$/.test(input)) {
    const seconds = Number(input);
    // Milliseconds are the usual slip when pasting from JavaScript; caught here, they would
    // otherwise mean a date tens of thousands of years away.
    if (seconds > 100_000_000_000) {
      throw new RangeError(`'${text}' looks like milliseconds; the API takes Unix seconds`);
    }
    return seconds;
  }
  const iso = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(z|[+-]\d{2}:?\d{2})?)?$/i.exec(
    input,
  );
  if (iso) {
    const day = iso[1] ?? '';
    // Date.parse rolls 2027-02-30 over to March 2nd: a typo would become a real, wrong expiry.
    if (!isCalendarDay(day)) {
      const [year, month, date] = day.split('-');
      const why =
        Number(month) >= 1 && Number(month) <= 12
          ? `${year}-${month} has no day ${date}`
          : `no month ${month}`;
      throw new RangeError(`invalid time '${text}': expected a real calendar day (${why})`);
    }
    // Everything the CLI prints is UTC, so a time typed without a zone is read as UTC too
    // (JavaScript alone would take a date-time as local time but a bare date as UTC).
    const zone = (iso[3] ?? 'Z').toUpperCase().replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
    const millis = Date.parse(`${day}T${iso[2] ?? '00:00'}${zone}`);
    if (!Number.isNaN(millis)) return Math.floor(millis / 1000);
  }
  throw new RangeError(
    `invalid time '${text}': use an ISO date (2025-12-31, 2025-12-31T18:00:00Z), Unix seconds, or +30d / +12h`,
  );
}

/**
 * The ISO form of a time, or undefined when `Date` cannot hold it: a gateway may have stored one
 * before it bounded them, and printing a key must never fail on it.
 */
function isoOf(seconds: number): string | undefined {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** `2025-12-31T18:00:00Z`: exact, sortable and unambiguous about the zone; out of range, the raw seconds. */
export function formatTimestamp(seconds: number): string {
  return isoOf(seconds)?.replace(/\.\d{3}Z$/, 'Z') ?? String(seconds);
}

/** `2025-12-31` (UTC): enough to scan a table by; out of range, the raw seconds. */
export function formatDate(seconds: number): string {
  return isoOf(seconds)?.split('T')[0] ?? String(seconds);
}

/** The inverse of `parseDuration`, largest units first: `30d`, `1h30m`, `0s`. Days, not weeks, since that is how lifetimes are usually set. */
export function formatDuration(totalSeconds: number): string {
  if (totalSeconds <= 0) return '0s';
  let rest = Math.floor(totalSeconds);
  let out = '';
  for (const unit of ['d', 'h', 'm', 's']) {
    const size = UNIT_SECONDS[unit] ?? 1;
    const count = Math.floor(rest / size);
    if (count > 0) {
      out += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return out;
}
