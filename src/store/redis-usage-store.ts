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
import { usageRecordJson } from '../usage/usage-record-json.js';
import { loadLua } from './lua-script.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage } from './store-unavailable.js';
import type { RequestLogPage, UsageStore } from './usage-store.js';

const REQUEST_LOG = 'tg:{usage-log}:requests';
const REQUEST_LOG_CAP = 100_000;
const USAGE_DAY_TTL_SECONDS = 400 * 86_400;
const daySums = (day: string) => `tg:{usage:${day}}:sums`;
const USAGE_LOG = loadLua('usage-log');
/** Records per script call: a call runs alone on Redis, so a big batch is a few short calls. */
const LOG_CHUNK = 100;
const FIELD_NAME_SETS = 10_000;

const MAX_STREAM_ID_PART = 2n ** 64n - 1n;

/** `ms-seq` as Redis gives out stream ids: two decimal integers below 2^64, no leading zeros. */
function isStreamId(id: string): boolean {
  const parts = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/.exec(id);
  return parts?.slice(1).every((part) => BigInt(part) <= MAX_STREAM_ID_PART) ?? false;
}

/**
 * Usage sums live in one hash per day (its own hash tag, so a day's HINCRBYs are one MULTI on
 * one Cluster slot); the request log is a capped Stream.
 */
export class RedisUsageStore implements UsageStore {
  /**
   * The day-sum field names of a team, key and model, one per metric, written once rather than
   * once per record and metric (five JSON.stringify calls a record). Bounded: forgotten whole
   * when it holds `fieldNameSetLimit` sets.
   */
  private readonly fieldNames = new Map<string, Map<string, Map<string, readonly string[]>>>();
  private fieldNameSets = 0;

  /** `fieldNameSetLimit`: how many name sets are kept (tests ask for fewer, to see them forgotten). */
  constructor(
    private readonly connection: RedisConnection,
    private readonly fieldNameSetLimit = FIELD_NAME_SETS,
  ) {
    failClosedOnOutage(this, connection.client);
  }

  private fieldsOf({ teamId, keyId, model }: UsageRecord): readonly string[] {
    const known = this.fieldNames.get(teamId)?.get(keyId)?.get(model);
    if (known) return known;
    if (this.fieldNameSets >= this.fieldNameSetLimit) {
      this.fieldNames.clear();
      this.fieldNameSets = 0;
    }
    let keys = this.fieldNames.get(teamId);
    if (!keys) {
      keys = new Map();
      this.fieldNames.set(teamId, keys);
    }
    let models = keys.get(keyId);
    if (!models) {
      models = new Map();
      keys.set(keyId, models);
    }
    const fields = USAGE_METRICS.map((metric) => JSON.stringify([teamId, keyId, model, metric]));
    models.set(model, fields);
    this.fieldNameSets++;
    return fields;
  }

  /**
   * A batch is summed here first, so it costs one MULTI per day plus one script call per 100
   * records (their XADDs), never awaited by any response (the recorder batches records after
   * their responses ended).
   */
  async record(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.connection.ready();
    const client = this.connection.client;
    const days = new Map<string, Map<string, number>>();
    for (const record of records) {
      const day = utcDay(record.at);
      let sums = days.get(day);
      if (!sums) {
        sums = new Map();
        days.set(day, sums);
      }
      const add = metricsOf(record);
      const fields = this.fieldsOf(record);
      for (const [i, metric] of USAGE_METRICS.entries()) {
        if (add[metric] === 0) continue;
        const field = fields[i] as string;
        sums.set(field, (sums.get(field) ?? 0) + add[metric]);
      }
    }
    const writes: Array<Promise<Array<[Error | null, unknown]> | null>> = [];
    for (const [day, sums] of days) {
      const key = daySums(day);
      const transaction = client.multi();
      for (const [field, value] of sums) transaction.hincrby(key, field, value);
      transaction.expire(key, USAGE_DAY_TTL_SECONDS);
      writes.push(transaction.exec());
    }
    const logged: Array<Promise<unknown>> = [];
    for (let at = 0; at < records.length; at += LOG_CHUNK) {
      const chunk = records.slice(at, at + LOG_CHUNK).map(usageRecordJson);
      logged.push(this.connection.run(USAGE_LOG, [REQUEST_LOG], [String(REQUEST_LOG_CAP), ...chunk]));
    }
    const [sums] = await Promise.all([Promise.all(writes), Promise.all(logged)]);
    for (const results of sums) {
      const failed = results?.find(([error]) => error !== null);
      if (failed?.[0]) throw failed[0];
    }
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
    const { before } = query;
    // Checked here: Redis refuses a malformed id (or `(0-0`, which has nothing before it) with an
    // error that would be a 500, where the client sent a bad cursor.
    if (before !== undefined && !isStreamId(before)) throw new InvalidCursorError('before', before);
    if (before === '0-0') return { items: [], hasMore: false };
    await this.connection.ready();
    const end = before === undefined ? '+' : `(${before}`;
    const entries = await this.connection.client.xrevrange(REQUEST_LOG, end, '-', 'COUNT', query.limit + 1);
    const items = entries.slice(0, query.limit).map(([id, fields]) => ({
      ...(JSON.parse(fields[1] ?? '{}') as UsageRecord),
      id,
    }));
    return { items, hasMore: entries.length > query.limit };
  }
}
