import { InvalidCursorError } from '../errors.js';
import { randomHex } from '../runtime/random-hex.js';
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
import { KeptForRetry, KeptForRetryError } from './kept-for-retry.js';
import { type LuaScript, loadLua, runLua } from './lua-script.js';
import { pendingOutcome } from './pending-outcome.js';
import type { RedisConnection } from './redis-connection.js';
import { failClosedOnOutage, isStoreOutage } from './store-unavailable.js';
import type { RequestLogPage, UsageStore } from './usage-store.js';

const REQUEST_LOG = 'tg:{usage-log}:requests';
const REQUEST_LOG_CAP = 100_000;
const USAGE_DAY_TTL_SECONDS = 400 * 86_400;
const daySums = (day: string) => `tg:{usage:${day}}:sums`;
/** Markers of the batches written (see UsageBatch), each beside the key it guards (its hash tag). */
const dayMarker = (day: string, batchId: string) => `tg:{usage:${day}}:batch:${batchId}`;
const logMarker = (batchId: string, call: number) => `tg:{usage-log}:batch:${batchId}:${call}`;
const DAY_SUMS = loadLua('usage-day-sums');
const USAGE_LOG = loadLua('usage-log');
/** Records per script call: a call runs alone on Redis, so a big batch is a few short calls. */
const LOG_CHUNK = 100;
const FIELD_NAME_SETS = 10_000;
/**
 * How long a batch's markers last: a few keys per batch (one a day it has records of, one per
 * log call), so an hour of them is a few MB at the busiest a gateway gets.
 */
const MARKER_TTL_SECONDS = 3_600;
/**
 * How long after its first attempt a batch may be sent again: well within its markers' life, so
 * one that did reach Redis then is always recognised.
 */
const KEEP_BATCH_MS = 30 * 60_000;
/** Records kept for a retry at most (~0.5 kB each): the oldest batches go first past it. */
const KEPT_RECORDS = 50_000;

/** One script call of a batch. */
interface BatchWrite {
  script: LuaScript;
  keys: [string, string];
  args: string[];
}

/**
 * A batch of records on its way to Redis. It has an id, and each of its script calls first sets
 * a marker naming it (SET NX), so a call sent again after its answer was lost (a dropped
 * connection, a deadline) adds nothing the second time: a batch that failed for an outage is
 * kept and sent again once Redis is usable, and counts once whether or not the first attempt
 * landed.
 */
interface UsageBatch {
  /** The calls not known to have run. */
  writes: BatchWrite[];
  records: number;
  /** performance.now() past which it is not sent again (KEEP_BATCH_MS after its first attempt). */
  until: number;
  done: () => void;
  lost: (error: Error) => void;
}

export interface RedisUsageStoreOptions {
  /** How many records are kept for a retry during an outage (tests ask for few). */
  keptRecordLimit?: number;
}

const MAX_STREAM_ID_PART = 2n ** 64n - 1n;

/** `ms-seq` as Redis gives out stream ids: two decimal integers below 2^64, no leading zeros. */
function isStreamId(id: string): boolean {
  const parts = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/.exec(id);
  return parts?.slice(1).every((part) => BigInt(part) <= MAX_STREAM_ID_PART) ?? false;
}

/**
 * Usage sums live in one hash per day (its own hash tag, so a day's HINCRBYs are one script call
 * on one Cluster slot); the request log is a capped Stream. A batch that cannot be written for an
 * outage is kept and written once Redis is usable again (see UsageBatch), and record() rejects
 * with KeptForRetryError, whose `retried` says how that ends.
 */
export class RedisUsageStore implements UsageStore {
  /**
   * The day-sum field names of a team, key and model, one per metric, written once rather than
   * once per record and metric (five JSON.stringify calls a record). Bounded: forgotten whole
   * when it holds `fieldNameSetLimit` sets.
   */
  private readonly fieldNames = new Map<string, Map<string, Map<string, readonly string[]>>>();
  private fieldNameSets = 0;

  /** Batches kept for a retry, oldest first, bounded by the records they hold. */
  private readonly kept: KeptForRetry<UsageBatch>;
  private readonly retrying = new Set<Promise<void>>();

  /** `fieldNameSetLimit`: how many name sets are kept (tests ask for fewer, to see them forgotten). */
  constructor(
    private readonly connection: RedisConnection,
    private readonly fieldNameSetLimit = FIELD_NAME_SETS,
    options: RedisUsageStoreOptions = {},
  ) {
    const keptRecordLimit = options.keptRecordLimit ?? KEPT_RECORDS;
    this.kept = new KeptForRetry<UsageBatch>(connection, {
      limit: keptRecordLimit,
      weightOf: (batch) => batch.records,
      overLimit: `more than ${keptRecordLimit} usage records were waiting for Redis`,
      expired: 'Redis did not answer again for too long',
      resend: (batch) => this.resend(batch),
    });
    connection.onClose(() => this.lastAttempt());
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
   * A batch is summed here first, so it costs one script call per day plus one per 100 records
   * (their XADDs), never awaited by any response (the recorder batches records after their
   * responses ended).
   */
  async record(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const batch = this.batchOf(records);
    const failed = await this.send(batch);
    if (!failed) return;
    if (!isStoreOutage(failed.error, this.connection.client)) throw failed.error;
    const outcome = pendingOutcome<void>();
    batch.done = () => outcome.resolve();
    batch.lost = outcome.reject;
    if (this.connection.shuttingDown) batch.lost(new Error('the gateway was stopping'));
    else this.kept.keep(batch);
    throw new KeptForRetryError(failed.error, outcome.promise);
  }

  private batchOf(records: readonly UsageRecord[]): UsageBatch {
    const id = randomHex(12);
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
    const writes: BatchWrite[] = [];
    for (const [day, sums] of days) {
      const args = [String(USAGE_DAY_TTL_SECONDS), String(MARKER_TTL_SECONDS)];
      for (const [field, value] of sums) args.push(field, String(value));
      writes.push({ script: DAY_SUMS, keys: [daySums(day), dayMarker(day, id)], args });
    }
    for (let at = 0; at < records.length; at += LOG_CHUNK) {
      const args = [String(REQUEST_LOG_CAP), String(MARKER_TTL_SECONDS)];
      for (const record of records.slice(at, at + LOG_CHUNK)) args.push(usageRecordJson(record));
      writes.push({ script: USAGE_LOG, keys: [REQUEST_LOG, logMarker(id, at / LOG_CHUNK)], args });
    }
    const until = performance.now() + KEEP_BATCH_MS;
    return { writes, records: records.length, until, done: () => {}, lost: () => {} };
  }

  /**
   * Sends the batch's calls not known to have run, all at once; keeps those that failed. Never
   * rejects: what failed (the first failure) is its answer.
   */
  private async send(batch: UsageBatch): Promise<{ error: unknown } | undefined> {
    try {
      await this.connection.ready();
    } catch (error) {
      return { error };
    }
    const client = this.connection.client;
    const results = await Promise.allSettled(
      batch.writes.map(({ script, keys, args }) => runLua(client, script, keys, args)),
    );
    let failed: { error: unknown } | undefined;
    batch.writes = batch.writes.filter((_, i) => {
      const result = results[i];
      if (result?.status !== 'rejected') return false;
      failed ??= { error: result.reason };
      return true;
    });
    return failed;
  }

  /** A kept batch, sent again (the calls of it not known to have run). */
  private resend(batch: UsageBatch): void {
    const retry = this.send(batch).then((failed) => {
      this.retrying.delete(retry);
      if (!failed) batch.done();
      else if (isStoreOutage(failed.error, this.connection.client)) this.kept.keep(batch);
      else batch.lost(failed.error instanceof Error ? failed.error : new Error(String(failed.error)));
    });
    this.retrying.add(retry);
  }

  /** Closing: one last try at the kept batches, then what is still kept is lost. */
  private async lastAttempt(): Promise<void> {
    this.kept.retry();
    await Promise.all(this.retrying);
    this.kept.giveUp();
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
