import type { UsageQuery, UsageRecord, UsageRow } from '../usage/usage-record.js';

/** One page of the request log, newest first. */
export interface RequestLogPage {
  items: Array<UsageRecord & { id: string }>;
  hasMore: boolean;
}

/**
 * Usage sums and the request log, `Store.usage`. A memory and a Redis implementation side by
 * side (memory-usage-store.ts, redis-usage-store.ts) and one contract suite
 * (test/usage-store-contract.test.ts).
 */
export interface UsageStore {
  /** Adds requests' usage to their days' sums and to the capped request log (a batch, in order). */
  record(records: readonly UsageRecord[]): Promise<void>;
  /** The day x team x key x model sums within the query's days, filtered. */
  rows(query: UsageQuery): Promise<UsageRow[]>;
  /** The request log, newest first; `before` is the previous page's last `id`. */
  listRequests(query: { limit: number; before?: string | undefined }): Promise<RequestLogPage>;
}
