import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../src/errors.js';
import type { Store } from '../src/store/store.js';
import type { UsageStore } from '../src/store/usage-store.js';
import { emptySums, type UsageMetric, type UsageRecord, type UsageRow } from '../src/usage/usage-record.js';
import { storeSubjects } from './support/store-subjects.js';
import { usageRecord } from './support/usage-record-fixture.js';

/** The usage sub-store (`store.usage`): day sums and the request log, one contract for every store. */
const stores = storeSubjects({ clearBeforeEach: true, sentinel: true });
const subjects = stores.subjects;

beforeAll(stores.start);
afterAll(stores.stop);

const DAY1 = Date.UTC(2026, 10, 22, 23, 59, 0);
const DAY2 = Date.UTC(2026, 10, 23, 0, 1, 0);

const usage = (overrides: Partial<UsageRecord> = {}): UsageRecord => usageRecord({ at: DAY1, ...overrides });

const sums = (values: Partial<Record<UsageMetric, number>>) => ({ ...emptySums(), ...values });
const rowOrder = (a: UsageRow, b: UsageRow) => {
  const x = `${a.day} ${a.teamId} ${a.keyId} ${a.model}`;
  const y = `${b.day} ${b.teamId} ${b.keyId} ${b.model}`;
  return x < y ? -1 : x > y ? 1 : 0;
};

describe.each(subjects)('Usage store contract: $name', (subject) => {
  let store: Store | undefined;
  const extra: Store[] = [];

  beforeEach(async (context) => {
    store = await subject.open();
    if (!store) context.skip(`${subject.name}: not available here (see the notice above)`);
  });

  afterEach(async () => {
    await Promise.all([store?.close(), ...extra.splice(0).map((s) => s.close())]);
    store = undefined;
  });

  const u = (): UsageStore => {
    if (!store) throw new Error('no store');
    return store.usage;
  };
  const rows = async (query: Parameters<UsageStore['rows']>[0]) => (await u().rows(query)).sort(rowOrder);

  it('sums a batch per day, team, key and model, one metric per outcome', async () => {
    await u().record([]);
    await u().record([
      usage(),
      usage({ cache: 'HIT', promptTokens: 0, completionTokens: 0, totalTokens: 0, usdMicros: 0 }),
      usage({ cache: 'REFRESH' }),
      usage({
        outcome: 'rejected',
        status: 429,
        promptTokens: 0,
        completionTokens: 0,
        totalTokens: 0,
        usdMicros: 0,
      }),
      usage({ outcome: 'failed', status: 502, cache: 'MISS' }),
      usage({ outcome: 'invalid', status: 400, model: 'gpt-4o-mini', promptTokens: 0, totalTokens: 0 }),
      usage({ at: DAY2, keyId: 'key_2', completionTokens: 7, totalTokens: 17 }),
      usage({ at: DAY2, teamId: 'team_b' }),
    ]);
    expect(await rows({ from: '2026-11-22', to: '2026-11-23' })).toEqual([
      {
        day: '2026-11-22',
        teamId: 'team_a',
        keyId: 'key_1',
        model: 'gpt-4o',
        sums: sums({
          requests: 3,
          rejected: 1,
          failed: 1,
          prompt_tokens: 30,
          completion_tokens: 15,
          total_tokens: 45,
          usd_micros: 900,
          cache_hits: 1,
          cache_misses: 2,
        }),
      },
      {
        day: '2026-11-22',
        teamId: 'team_a',
        keyId: 'key_1',
        model: 'gpt-4o-mini',
        sums: sums({ invalid: 1, completion_tokens: 5, usd_micros: 300 }),
      },
      {
        day: '2026-11-23',
        teamId: 'team_a',
        keyId: 'key_2',
        model: 'gpt-4o',
        sums: sums({
          requests: 1,
          prompt_tokens: 10,
          completion_tokens: 7,
          total_tokens: 17,
          usd_micros: 300,
        }),
      },
      {
        day: '2026-11-23',
        teamId: 'team_b',
        keyId: 'key_1',
        model: 'gpt-4o',
        sums: sums({
          requests: 1,
          prompt_tokens: 10,
          completion_tokens: 5,
          total_tokens: 15,
          usd_micros: 300,
        }),
      },
    ]);
  });

  it('filters rows by days, team, key and model', async () => {
    await u().record([
      usage(),
      usage({ model: 'gpt-4o-mini' }),
      usage({ at: DAY2, keyId: 'key_2' }),
      usage({ at: DAY2, teamId: 'team_b' }),
    ]);
    const keys = (found: UsageRow[]) =>
      found.map((row) => `${row.day} ${row.teamId} ${row.keyId} ${row.model}`);
    expect(keys(await rows({ from: '2026-11-22', to: '2026-11-22' }))).toEqual([
      '2026-11-22 team_a key_1 gpt-4o',
      '2026-11-22 team_a key_1 gpt-4o-mini',
    ]);
    expect(keys(await rows({ from: '2026-11-23', to: '2026-11-30', teamId: 'team_a' }))).toEqual([
      '2026-11-23 team_a key_2 gpt-4o',
    ]);
    expect(keys(await rows({ from: '2026-11-01', to: '2026-11-30', keyId: 'key_1' }))).toEqual([
      '2026-11-22 team_a key_1 gpt-4o',
      '2026-11-22 team_a key_1 gpt-4o-mini',
      '2026-11-23 team_b key_1 gpt-4o',
    ]);
    expect(keys(await rows({ from: '2026-11-01', to: '2026-11-30', model: 'gpt-4o-mini' }))).toEqual([
      '2026-11-22 team_a key_1 gpt-4o-mini',
    ]);
    expect(await rows({ from: '2026-11-24', to: '2026-11-30' })).toEqual([]);
  });

  it('lists requests newest first, page by page, each record whole', async () => {
    const records = Array.from({ length: 5 }, (_, i) =>
      usage({
        at: DAY1 + i,
        tags: [`n${i}`],
        cache: i % 2 ? 'HIT' : undefined,
        ttftMs: i,
        // A request that failed over keeps every attempt, skipped deployments included.
        attempts:
          i % 2
            ? undefined
            : [
                { deployment: 'a', status: 'circuit-open', duration_ms: 0 },
                { deployment: 'b', status: 502, duration_ms: 12.34 },
                { deployment: 'c', status: 200, duration_ms: 56.78 },
              ],
      }),
    );
    // Two batches: order is kept across them too.
    await u().record(records.slice(0, 2));
    await u().record(records.slice(2));
    const newestFirst = [...records].reverse();

    const all = await u().listRequests({ limit: 10 });
    expect(all.hasMore).toBe(false);
    expect(all.items.map(({ id: _id, ...record }) => record)).toEqual(newestFirst);
    expect(all.items.at(-1)?.attempts?.map((attempt) => attempt.status)).toEqual(['circuit-open', 502, 200]);
    expect(new Set(all.items.map((item) => item.id)).size).toBe(5);

    const first = await u().listRequests({ limit: 2 });
    expect(first.items.map((item) => item.requestId)).toEqual(
      newestFirst.slice(0, 2).map((r) => r.requestId),
    );
    expect(first.hasMore).toBe(true);
    const second = await u().listRequests({ limit: 2, before: first.items.at(-1)?.id });
    expect(second.items.map((item) => item.requestId)).toEqual(
      newestFirst.slice(2, 4).map((r) => r.requestId),
    );
    expect(second.hasMore).toBe(true);
    const last = await u().listRequests({ limit: 2, before: second.items.at(-1)?.id });
    expect(last.items.map((item) => item.requestId)).toEqual([records[0]?.requestId]);
    expect(last.hasMore).toBe(false);
    // A page that ends exactly at the last record has nothing more.
    expect((await u().listRequests({ limit: 5 })).hasMore).toBe(false);
    expect(await u().listRequests({ limit: 2, before: last.items.at(-1)?.id })).toEqual({
      items: [],
      hasMore: false,
    });
  });

  it('refuses a cursor it never gave out as a bad `before`, and has nothing before its lowest id', async () => {
    await u().record([usage(), usage()]);
    const issued = (await u().listRequests({ limit: 10 })).items.map((item) => item.id);
    // Neither store's form (and Redis's stream ids past 2^64 - 1): the client's mistake, a 400.
    for (const before of ['abc', '1796676238640-4x', '99999999999999999999999-0', '1-', '-1', ' 1', '1.5']) {
      await expect(u().listRequests({ limit: 10, before }), before).rejects.toThrow(InvalidRequestError);
      await expect(u().listRequests({ limit: 10, before }), before).rejects.toMatchObject({
        status: 400,
        param: 'before',
      });
    }
    // The lowest id in the store's own form (which it never gives out) is a page with nothing.
    const lowest = issued[0]?.includes('-') ? '0-0' : '0'.repeat(issued[0]?.length ?? 0);
    expect(await u().listRequests({ limit: 10, before: lowest })).toEqual({ items: [], hasMore: false });
    // One past the newest still pages from the newest.
    const page = await u().listRequests({
      limit: 1,
      before: issued[0]?.includes('-') ? '99999999999999-0' : '9'.repeat(12),
    });
    expect(page.items.map((item) => item.id)).toEqual([issued[0]]);
    expect(page.hasMore).toBe(true);
  });

  it('a batch of hundreds of records is logged whole and in order', async () => {
    // The Redis store logs a batch a hundred records per script call: 250 spans three.
    const records = Array.from({ length: 250 }, (_, i) => usage({ at: DAY1 + i, requestId: `req_${i}` }));
    await u().record(records);
    const page = await u().listRequests({ limit: 300 });
    expect(page.items.map((item) => item.requestId)).toEqual(records.map((r) => r.requestId).reverse());
    expect(page.hasMore).toBe(false);
    expect(await rows({ from: '2026-11-22', to: '2026-11-22' })).toEqual([
      expect.objectContaining({ sums: expect.objectContaining({ requests: 250 }) }),
    ]);
  });

  it('adds up what several instances record on one shared state', async () => {
    const other = await subject.sibling(store as Store);
    if (other !== store) extra.push(other);
    await Promise.all([
      u().record([usage(), usage()]),
      other.usage.record([usage({ usdMicros: 1 })]),
      u().record([usage({ outcome: 'failed' })]),
    ]);
    const [row] = await rows({ from: '2026-11-22', to: '2026-11-22' });
    expect(row?.sums).toEqual(
      sums({
        requests: 3,
        failed: 1,
        prompt_tokens: 40,
        completion_tokens: 20,
        total_tokens: 60,
        usd_micros: 901,
      }),
    );
    expect((await u().listRequests({ limit: 10 })).items).toHaveLength(4);
    expect((await other.usage.listRequests({ limit: 10 })).items).toHaveLength(4);
  });
});
