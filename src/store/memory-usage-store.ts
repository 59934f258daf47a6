import { InvalidCursorError } from '../errors.js';
import {
  daysBetween,
  emptySums,
  metricsOf,
  USAGE_METRICS,
  type UsageMetric,
  type UsageQuery,
  type UsageRecord,
  type UsageRow,
  utcDay,
} from '../usage/usage-record.js';
import type { RequestLogPage, UsageStore } from './usage-store.js';

const REQUEST_LOG_CAP = 10_000;

/**
 * A record's own copy, so neither the caller nor a reader can change what the log holds. By
 * hand: its only nested values are the tags and the attempts (structuredClone cost ~2 % of a
 * request's CPU).
 */
function copyOf(record: UsageRecord, id: string): UsageRecord & { id: string } {
  const copy = { ...record, tags: [...record.tags], id };
  if (record.attempts) copy.attempts = record.attempts.map((attempt) => ({ ...attempt }));
  return copy;
}

/** Usage sums and the request log in this process (not persisted, like the other counters). */
export class MemoryUsageStore implements UsageStore {
  /** day -> [team, key, model] as JSON -> sums. */
  private readonly days = new Map<string, Map<string, Record<UsageMetric, number>>>();
  private requestLog: Array<UsageRecord & { id: string }> = [];
  private requestSequence = 0;

  async record(records: readonly UsageRecord[]): Promise<void> {
    for (const record of records) this.recordOne(record);
  }

  private recordOne(record: UsageRecord): void {
    const day = utcDay(record.at);
    let sums = this.days.get(day);
    if (!sums) {
      sums = new Map<string, Record<UsageMetric, number>>();
      this.days.set(day, sums);
    }
    const field = JSON.stringify([record.teamId, record.keyId, record.model]);
    const row = sums.get(field) ?? emptySums();
    const add = metricsOf(record);
    for (const metric of USAGE_METRICS) row[metric] += add[metric];
    sums.set(field, row);
    this.requestLog.push(copyOf(record, String(++this.requestSequence).padStart(12, '0')));
    // Trimmed a tenth at a time: cutting one record per request would copy the whole log each time.
    if (this.requestLog.length > REQUEST_LOG_CAP + REQUEST_LOG_CAP / 10)
      this.requestLog = this.requestLog.slice(-REQUEST_LOG_CAP);
  }

  async rows(query: UsageQuery): Promise<UsageRow[]> {
    const rows: UsageRow[] = [];
    for (const day of daysBetween(query.from, query.to)) {
      for (const [field, sums] of this.days.get(day) ?? []) {
        const [teamId, keyId, model] = JSON.parse(field) as [string, string, string];
        if (query.teamId && teamId !== query.teamId) continue;
        if (query.keyId && keyId !== query.keyId) continue;
        if (query.model && model !== query.model) continue;
        rows.push({ day, teamId, keyId, model, sums: { ...sums } });
      }
    }
    return rows;
  }

  async listRequests(query: { limit: number; before?: string | undefined }): Promise<RequestLogPage> {
    const { before } = query;
    // Ids compare as strings, so any other string would still give some page: refused as the
    // Redis store refuses a cursor it did not give out.
    if (before !== undefined && !/^\d{12}$/.test(before)) throw new InvalidCursorError('before', before);
    const newestFirst = this.requestLog.slice(-REQUEST_LOG_CAP).reverse();
    const start = before === undefined ? 0 : newestFirst.findIndex((r) => r.id < before);
    if (start === -1) return { items: [], hasMore: false };
    const items = newestFirst.slice(start, start + query.limit).map((r) => copyOf(r, r.id));
    return { items, hasMore: start + query.limit < newestFirst.length };
  }
}
