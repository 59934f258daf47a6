import type { UsageStore } from '../../src/store/usage-store.js';
import { Tally } from './tally.js';

/**
 * The usage records one instance wrote, as a count a test waits on: records are written in
 * batches just after each response ends, so a test that knows how many requests it made waits
 * for that many instead of polling the admin API until the numbers look right.
 */
export interface UsageWatch {
  /** Records in the store (each counted once the write of its batch is done). */
  recorded: Tally;
}

/** Counts, from now on, the records written to `usage`; the store stays the real one. */
export function watchUsage(usage: UsageStore): UsageWatch {
  const watch: UsageWatch = { recorded: new Tally() };
  const record = usage.record.bind(usage);
  usage.record = async (records) => {
    await record(records);
    for (const _record of records) watch.recorded.add();
  };
  return watch;
}
