import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisConnection } from '../src/store/redis-connection.js';
import { RedisUsageStore } from '../src/store/redis-usage-store.js';
import type { UsageRecord } from '../src/usage/usage-record.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { usageRecord } from './support/usage-record-fixture.js';

/**
 * The day sums' field names are part of what is stored: sums written by an earlier version must
 * land in the same fields, so each is exactly JSON.stringify([team, key, model, metric]).
 */
const redis = await redisForTests();

// A day no other suite writes, and ids of this run only (the Redis may be shared).
const AT = Date.UTC(2011, 2, 7, 12, 0, 0);
const DAY_KEY = 'tg:{usage:2011-03-07}:sums';

describe.skipIf(!redis)('Redis usage store: day-sum fields', () => {
  let server: TestRedis;
  let connection: RedisConnection;

  beforeAll(() => {
    server = redis as TestRedis;
    connection = new RedisConnection({ url: server.url });
  });
  afterAll(async () => {
    await connection?.close();
    await server?.stop();
  });

  it('are JSON.stringify of team, key, model and metric, escapes included', async () => {
    const run = randomBytes(4).toString('hex');
    const record = (teamId: string, model: string): UsageRecord =>
      usageRecord({ at: AT, teamId, keyId: `key "${run}"`, model });
    const teams = [`team_${run}`, `tëam\\${run}\u2028\t"`];
    const store = new RedisUsageStore(connection);
    await store.record([record(teams[0] as string, 'gpt-4o'), record(teams[1] as string, 'm/"x"')]);
    await store.record([record(teams[0] as string, 'gpt-4o')]);
    const fields = await connection.client.hgetall(DAY_KEY);
    const ours = Object.entries(fields).filter(([field]) => field.includes(run));
    const expected = (team: string, model: string, metric: string, value: number) => [
      JSON.stringify([team, `key "${run}"`, model, metric]),
      String(value),
    ];
    const [first, second] = teams as [string, string];
    expect(Object.fromEntries(ours)).toEqual(
      Object.fromEntries([
        expected(first, 'gpt-4o', 'requests', 2),
        expected(first, 'gpt-4o', 'prompt_tokens', 20),
        expected(first, 'gpt-4o', 'completion_tokens', 10),
        expected(first, 'gpt-4o', 'total_tokens', 30),
        expected(first, 'gpt-4o', 'usd_micros', 600),
        expected(second, 'm/"x"', 'requests', 1),
        expected(second, 'm/"x"', 'prompt_tokens', 10),
        expected(second, 'm/"x"', 'completion_tokens', 5),
        expected(second, 'm/"x"', 'total_tokens', 15),
        expected(second, 'm/"x"', 'usd_micros', 300),
      ]),
    );
    await connection.client.hdel(DAY_KEY, ...ours.map(([field]) => field));
  });

  it('stay exact when the names kept are forgotten between and within batches', async () => {
    const run = randomBytes(4).toString('hex');
    // One name set kept: every change of team, key or model forgets the one before.
    const store = new RedisUsageStore(connection, 1);
    const record = (model: string) =>
      usageRecord({ at: AT, teamId: `team_${run}`, keyId: `k_${run}`, model });
    await store.record([record('a'), record('b'), record('a')]);
    await store.record([record('b'), record('a')]);
    const fields = await connection.client.hgetall(DAY_KEY);
    const requests = (model: string) =>
      fields[JSON.stringify([`team_${run}`, `k_${run}`, model, 'requests'])];
    expect([requests('a'), requests('b')]).toEqual(['3', '2']);
  });
});
