import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaScope, QuotaSettleOutcome } from '../src/quota/quota-types.js';
import { COMMAND_TIMED_OUT, CONNECTION_STALLED } from '../src/store/command-deadlines.js';
import { KeptForRetryError } from '../src/store/kept-for-retry.js';
import { RedisConnection } from '../src/store/redis-connection.js';
import { RedisQuotaStore } from '../src/store/redis-quota-store.js';
import { RedisUsageStore } from '../src/store/redis-usage-store.js';
import { asStoreError, StoreUnavailableError } from '../src/store/store-unavailable.js';
import type { UsageRecord } from '../src/usage/usage-record.js';
import { pollUntil } from './support/poll.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';
import { usageRecord } from './support/usage-record-fixture.js';

/**
 * A Redis that stops answering (SIGSTOP: connections stay open, nothing is answered) and then
 * resumes, under the store layer with a short command deadline. Once a command has passed its
 * deadline unanswered the connection is stalled: further commands fail at once, unsent, instead
 * of each waiting out a deadline of its own, until Redis answers again. What was sent before the
 * stall still runs when Redis resumes, though its callers were told it failed: an admit's
 * reservation is then released, a settle or a usage batch is sent again, and neither counts
 * twice. Always a redis-server of this suite's own (it is paused and killed).
 */

const available = hasRedisServerBinary();
if (!available) {
  process.stderr.write('\n!!! REDIS STALLED CONNECTION SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
}

/** Short, so a test sees a deadline pass; far above what an answer on loopback takes. */
const DEADLINE_MS = 1_000;

let redis: RestartableRedis;
let connection: RedisConnection;

beforeAll(async () => {
  if (!available) return;
  redis = await startRestartableRedisServer();
  connection = new RedisConnection({ url: redis.url }, DEADLINE_MS);
  await connection.ready();
});

// A test that failed while Redis was paused leaves it running for the next.
afterEach(() => redis?.resume());

afterAll(async () => {
  redis?.resume();
  await connection?.close();
  await redis?.stop();
});

/** What a promise failed with (the test fails if it did not). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, 'it should have failed').toBeInstanceOf(Error);
  return outcome as Error;
}

/** Resumes the paused Redis; resolves once the connection is usable again. */
async function resumeRedis(): Promise<void> {
  redis.resume();
  expect(
    await pollUntil(
      async () => connection.usable,
      (usable) => usable,
    ),
  ).toBe(true);
}

const run = randomBytes(4).toString('hex');

describe.skipIf(!available)('a stalled Redis connection', () => {
  it('fails further commands at once, unsent, until Redis answers again', async () => {
    const client = connection.client;
    const key = `tg:test:stall:${run}`;
    expect(await client.set(key, 'v')).toBe('OK');
    redis.pause();
    // The first command waits out its deadline...
    expect((await failure(client.get(key))).message).toBe(COMMAND_TIMED_OUT);
    expect(connection.usable).toBe(false);
    // ...the next ones do not wait for one of their own: they fail unsent, as an outage (503).
    const next = await failure(client.get(key));
    expect(next.message).toBe(CONNECTION_STALLED);
    expect(asStoreError(next, client)).toBeInstanceOf(StoreUnavailableError);
    await failure(connection.run({ name: 'x', source: 'return 1', sha: '0'.repeat(40) }, [], []));
    // A transaction too, rather than hanging.
    await failure(client.multi().get(key).exec());
    // The command that timed out is still queued on the connection: its late answer ends the stall.
    await resumeRedis();
    expect(connection.usable).toBe(true);
    expect(await client.get(key)).toBe('v');
  });
});

describe.skipIf(!available)('quota ends and admits whose answers never came', () => {
  const scopes: QuotaScope[] = [
    { id: `team:${run}`, maxConcurrent: 1, budgets: [{ period: 'day', periodKey: 'd1', maxTokens: 1_000 }] },
  ];
  const teamId = `team_${run}`;
  let shared: RedisQuotaStore | undefined;
  const quota = () => {
    shared ??= new RedisQuotaStore(connection);
    return shared;
  };
  const reserve = (store: RedisQuotaStore, reservationId: string) =>
    store.reserve({
      teamId,
      reservationId,
      scopes,
      tokens: 100,
      usdMicros: 0,
      nowMs: Date.now(),
      ttlMs: 600_000,
    });
  const standing = async (store: RedisQuotaStore) => {
    const [status] = await store.status(teamId, scopes, Date.now());
    return { inUse: status?.concurrency?.inUse, budget: status?.budgets[0] };
  };

  it('an admit that timed out, and ran when Redis resumed, has its reservation released', async () => {
    const store = quota();
    // The script is cached on the server, and the slot is free.
    expect(await reserve(store, `${run}-warm`)).toMatchObject({ granted: true });
    expect(await store.release(teamId, `${run}-warm`, Date.now())).toBe('released');

    redis.pause();
    const error = await failure(reserve(store, `${run}-unanswered`));
    // The client is told 503, as for any outage...
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error).toBeInstanceOf(KeptForRetryError);
    await resumeRedis();
    // ...and the reservation Redis made when it resumed is released: 'released' says it existed.
    expect(await (error as KeptForRetryError<QuotaSettleOutcome>).retried).toBe('released');
    expect(await standing(store)).toMatchObject({ inUse: 0, budget: { reservedTokens: 0, spentTokens: 0 } });
    expect(await reserve(store, `${run}-next`)).toMatchObject({ granted: true });
    expect(await store.release(teamId, `${run}-next`, Date.now())).toBe('released');
  });

  it('a settle that timed out is sent again and counts once', async () => {
    const store = quota();
    expect(await reserve(store, `${run}-settle`)).toMatchObject({ granted: true });
    redis.pause();
    const error = await failure(
      store.settle(teamId, `${run}-settle`, { tokens: 40, usdMicros: 0 }, Date.now()),
    );
    expect(error).toBeInstanceOf(KeptForRetryError);
    await resumeRedis();
    // The settle sent first ran when Redis resumed; the one sent again found nothing to do.
    expect(await (error as KeptForRetryError<QuotaSettleOutcome>).retried).toBe('unknown');
    expect(await standing(store)).toMatchObject({ inUse: 0, budget: { reservedTokens: 0, spentTokens: 40 } });
  });
});

describe.skipIf(!available)('usage batches whose answers never came', () => {
  const day = '2011-04-01';
  const at = Date.UTC(2011, 3, 1, 12);
  const batch = (teamId: string, count: number): UsageRecord[] =>
    Array.from({ length: count }, () => usageRecord({ at, teamId, keyId: `key_${run}` }));
  const served = async (store: RedisUsageStore, teamId: string) => {
    const rows = await store.rows({ from: day, to: day, teamId });
    const logged = (await store.listRequests({ limit: 1_000 })).items.filter(
      (item) => item.teamId === teamId,
    );
    return { requests: rows.reduce((sum, row) => sum + row.sums.requests, 0), logged: logged.length };
  };

  it('a batch written when Redis resumed, and sent again, counts once in the sums and the log', async () => {
    const store = new RedisUsageStore(connection);
    const teamId = `team_once_${run}`;
    // The scripts are cached on the server: the calls that time out are the writes themselves.
    await store.record(batch(`team_warm_${run}`, 1));
    redis.pause();
    const error = await failure(store.record(batch(teamId, 3)));
    expect(error).toBeInstanceOf(KeptForRetryError);
    await resumeRedis();
    await (error as KeptForRetryError).retried;
    expect(await served(store, teamId)).toEqual({ requests: 3, logged: 3 });
  });

  it('past the limit of records kept, the oldest batches are dropped, saying so', async () => {
    const store = new RedisUsageStore(connection, undefined, { keptRecordLimit: 3 });
    const teamId = `team_cap_${run}`;
    await redis.kill();
    const first = await failure(store.record(batch(teamId, 2)));
    const second = await failure(store.record(batch(teamId, 2)));
    expect(first).toBeInstanceOf(KeptForRetryError);
    expect(second).toBeInstanceOf(KeptForRetryError);
    const dropped = await failure((first as KeptForRetryError).retried);
    expect(dropped.message).toContain('more than 3 usage records');
    await redis.restart();
    await (second as KeptForRetryError).retried;
    expect(await served(store, teamId)).toEqual({ requests: 2, logged: 2 });
  });
});
