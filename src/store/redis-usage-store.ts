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
import { loadLua } from './lua-script.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage } from './store-unavailable.js';
import type { RequestLogPage, UsageStore } from './usage-store.js';

const REQUEST_LOG = 'tg:{usage-log}:requests';
const REQUEST_LOG_CAP = 100_000;
const USAGE_DAY_TTL_SECONDS = 400 * 86_400;
const daySums = (day: string) => `tg:{usage:${day}}:sums`;

/** A day's sums added, and records appended to the request log: one script call each. */
const ADD_SUMS = loadLua('usage-add-sums');
const APPEND_LOG = loadLua('usage-log-append');

/**
 * Usage sums live in one hash per day (its own hash tag, so a day's additions are one script
 * call on one Cluster slot); the request log is a capped Stream.
 */
export class RedisUsageStore implements UsageStore {
  constructor(private readonly connection: RedisConnection) {
    failClosedOnOutage(this, connection.client);
  }

  /**
   * A batch is summed here first, so it costs one script call per day plus one for the log,
   * never awaited by any response (the recorder batches records after their responses ended).
   * As a MULTI of HINCRBYs and a pipeline of XADDs, each command was encoded, and its reply
   * decoded, by the gateway: ~13 per batch at low rates, the largest part of the gateway's
   * Redis work per request after the quota script (bench/instructions.mjs profile, BENCHMARKS.md).
   */
  async record(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const days = new Map<string, Map<string, number>>();
    for (const record of records) {
      const day = utcDay(record.at);
      let sums = days.get(day);
      if (!sums) {
        sums = new Map();
        days.set(day, sums);
      }
      const add = metricsOf(record);
      for (const metric of USAGE_METRICS) {
        if (add[metric] === 0) continue;
        const field = JSON.stringify([record.teamId, record.keyId, record.model, metric]);
        sums.set(field, (sums.get(field) ?? 0) + add[metric]);
      }
    }
    const writes: Array<Promise<unknown>> = [];
    for (const [day, sums] of days) {
      const args: Array<string | number> = [USAGE_DAY_TTL_SECONDS];
      for (const [field, value] of sums) args.push(field, value);
      writes.push(this.connection.run(ADD_SUMS, [daySums(day)], args));
    }
    writes.push(
      this.connection.run(
        APPEND_LOG,
        [REQUEST_LOG],
        [REQUEST_LOG_CAP, ...records.map((record) => JSON.stringify(record))],
      ),
    );
    await Promise.all(writes);
  }

  async rows(query: UsageQuery): Promise<UsageRow[]> {
    await this.connection.ready();
    const rows = new Map<string, UsageRow>();
    for (const day of daysBetween(query.from, query.to)) {
      const fields = await this.connection.client.hgetall(daySums(day));
      for (const [field, value] of Object.entries(fields)) {
        const [teamId, keyId, model, metric] = JSON.parse(field) as [string, string, string, UsageMetric];
        if (query.teamId && teamId !== query.teamId) continue;
        if (query.keyId && keyId !== query.keyId) continue;
        if (query.model && model !== query.model) continue;
        const id = JSON.stringify([day, teamId, keyId, model]);
        let row = rows.get(id);
        if (!row) {
          row = {
            day,
            teamId,
            keyId,
            model,
            sums: emptySums(),
          };
          rows.set(id, row);
        }
        row.sums[metric] = Number(value);
      }
    }
    return [...rows.values()];
  }

  async listRequests(query: { limit: number; before?: string | undefined }): Promise<RequestLogPage> {
    await this.connection.ready();
    const end = query.before === undefined ? '+' : `(${query.before}`;
    const entries = await this.connection.client.xrevrange(REQUEST_LOG, end, '-', 'COUNT', query.limit + 1);
    const items = entries.slice(0, query.limit).map(([id, fields]) => ({
      ...(JSON.parse(fields[1] ?? '{}') as UsageRecord),
      id,
    }));
    return { items, hasMore: entries.length > query.limit };
  }
}
