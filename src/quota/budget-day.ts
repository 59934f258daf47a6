/**
 * The calendar day budgets count in, as YYYY-MM-DD in the configured time zone.
 *
 * UTC, the default, is computed without Intl: the first Intl.DateTimeFormat of a process maps
 * ~6 MB of ICU data (time zones, calendars) into memory for the rest of its life.
 */
export type DayFormatter = (ms: number) => string;

const UTC_NAMES = new Set(['utc', 'etc/utc']);

function isUtc(zone: string): boolean {
  return UTC_NAMES.has(zone.toLowerCase());
}

/** A formatter of epoch milliseconds to the day in `zone`; throws for a zone Node does not know. */
export function dayFormatter(zone: string): DayFormatter {
  if (isUtc(zone)) return (ms) => new Date(ms).toISOString().slice(0, 10);
  // en-CA formats dates as YYYY-MM-DD.
  const format = new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  });
  return (ms) => format.format(ms);
}

/** Whether `zone` names a time zone this Node knows (an IANA name such as Europe/Paris). */
export function isKnownTimeZone(zone: string): boolean {
  try {
    dayFormatter(zone);
    return true;
  } catch {
    return false;
  }
}
