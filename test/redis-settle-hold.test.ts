import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import type { QuotaReservationRequest, QuotaScope } from '../src/quota/quota-types.js';
import { RedisStore } from '../src/store/redis-store.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { startRedisServer, type TestRedis } from './support/redis.js';

/**
 * `quota.settleHoldMs` on Redis: a settle or release waits for its team's next admit and goes to
 * Redis in the same script call. Counted with Redis's own INFO commandstats on a throwaway server
 * (nothing else talks to it). The hold is set far longer than any test runs, so what a test sees
 * never depends on when a timer fires; the one test of the timer waits for the settle itself.
 */

const T0 = Date.UTC(2026, 11, 6, 12, 0, 15);
const TEAM = 'team_hold';
const SCOPES: QuotaScope[] = [
  {
    id: 'key:k1',
    maxConcurrent: 1,
    budgets: [{ period: 'day', periodKey: '2026-12-06', maxTokens: 10_000 }],
  },
];
const LONG_HOLD_MS = 600_000;

let redis: TestRedis;
let probe: Redis;
const opened: RedisStore[] = [];
let nextId = 0;

const open = (settleHoldMs: number) => {
  const store = new RedisStore({ target: { url: redis.url }, settleHoldMs });
  opened.push(store);
  return store;
};

const reservation = (tokens = 1_000): QuotaReservationRequest => ({
  reservationId: `res_${++nextId}`,
  teamId: TEAM,
  scopes: SCOPES,
  tokens,
  usdMicros: 0,
  nowMs: T0,
  ttlMs: 60_000,
});

async function scriptCalls(): Promise<number> {
  const text = await probe.info('commandstats');
  return [...text.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)].reduce(
    (sum, match) => sum + Number(match[2]),
    0,
  );
}

async function spent(store: RedisStore): Promise<{ inUse: number; spent: number; reserved: number }> {
  const [status] = await store.quota.status(TEAM, SCOPES, T0);
  return {
    inUse: status?.concurrency?.inUse ?? -1,
    spent: status?.budgets[0]?.spentTokens ?? -1,
    reserved: status?.budgets[0]?.reservedTokens ?? -1,
  };
}

beforeAll(async () => {
  redis = await startRedisServer();
  probe = new Redis(redis.url);
});

const gateways: TestGateway[] = [];

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
  await Promise.all(opened.splice(0).map((store) => store.close()));
  await probe.flushall();
});

afterAll(async () => {
  probe.disconnect();
  await redis.stop();
});

describe('quota.settleHoldMs (Redis)', () => {
  it('is read from the config, 0 by default, and refused outside 0..1000 ms', () => {
    const models = { backends: { up: { type: 'mock' } }, models: { m: { backend: 'up' } } };
    expect(parseConfig(models, {}, 'test').quota.settleHoldMs).toBe(0);
    expect(parseConfig({ ...models, quota: { settleHoldMs: 5 } }, {}, 'test').quota.settleHoldMs).toBe(5);
    expect(() => parseConfig({ ...models, quota: { settleHoldMs: 5_000 } }, {}, 'test')).toThrow(
      /settleHoldMs/,
    );
  });

  it("a held settle goes to Redis with the team's next admit: one script call for both, in order", async () => {
    const store = open(LONG_HOLD_MS);
    const first = reservation(9_000);
    expect((await store.quota.reserve(first)).granted).toBe(true);
    const before = await scriptCalls();
    let settled: string | undefined;
    const settle = store.quota
      .settle(TEAM, first.reservationId, { tokens: 500, usdMicros: 0 }, T0)
      .then((outcome) => {
        settled = outcome;
        return outcome;
      });
    // Nothing has gone yet: a turn later the settle is still held.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBeUndefined();
    expect(await scriptCalls()).toBe(before);
    // The next admit takes it along, after it: the slot and 8,500 tokens are free for this admit.
    const second = await store.quota.reserve(reservation(9_000));
    expect(second).toMatchObject({ granted: true });
    expect(await settle).toBe('settled');
    expect(await scriptCalls()).toBe(before + 1);
  });

  it('a status read counts the settles held before it', async () => {
    const store = open(LONG_HOLD_MS);
    const first = reservation(2_000);
    await store.quota.reserve(first);
    const settle = store.quota.settle(TEAM, first.reservationId, { tokens: 700, usdMicros: 0 }, T0);
    expect(await spent(store)).toEqual({ inUse: 0, spent: 700, reserved: 0 });
    expect(await settle).toBe('settled');
  });

  it('closing the store sends what is held before it quits', async () => {
    const store = open(LONG_HOLD_MS);
    const first = reservation(2_000);
    await store.quota.reserve(first);
    const release = store.quota.release(TEAM, first.reservationId, T0);
    await store.close();
    expect(await release).toBe('released');
    expect(await spent(open(0))).toEqual({ inUse: 0, spent: 0, reserved: 0 });
  });

  it('with no admit after it, a held settle goes on its own once the hold is over', async () => {
    const store = open(1);
    const first = reservation(2_000);
    await store.quota.reserve(first);
    expect(await store.quota.settle(TEAM, first.reservationId, { tokens: 300, usdMicros: 0 }, T0)).toBe(
      'settled',
    );
    expect(await spent(open(0))).toEqual({ inUse: 0, spent: 300, reserved: 0 });
  });

  it('an answer that ends its reservation before it goes out (an error) does not wait for the hold', async () => {
    const ADMIN = 'hold-admin-key-0123456789';
    // The store holds far longer than the config allows, so the test never races the timer.
    const store = open(LONG_HOLD_MS);
    const gateway = await startGateway(
      {
        auth: {},
        admin: { key: ADMIN },
        redis: { url: redis.url },
        quota: { settleHoldMs: 1_000 },
        backends: { m: { type: 'mock' } },
        models: { 'gpt-4o-mini': { backend: 'm' } },
      },
      {},
      { store },
    );
    gateways.push(gateway);
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const post = async (path: string, body: unknown, headers: Record<string, string>) =>
      fetch(`${gateway.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
    const team = (await (
      await post('/admin/teams', { name: 'held', limits: { max_concurrent: 1 } }, admin)
    ).json()) as {
      id: string;
    };
    const key = (await (await post('/admin/keys', { team_id: team.id }, admin)).json()) as { key: string };
    const chat = (content: string) =>
      post(
        '/v1/chat/completions',
        { model: 'gpt-4o-mini', max_tokens: 5, messages: [{ role: 'user', content }] },
        { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      );
    const inUse = async () => {
      // Read by another store: this one's status would send what the gateway's store holds.
      const [status] = await open(0).quota.status(
        team.id,
        [{ id: `team:${team.id}`, maxConcurrent: 1 }],
        Date.now(),
      );
      return status?.concurrency?.inUse;
    };

    const failed = await chat('[[mock:error:500]]');
    expect(failed.status).toBe(502);
    await failed.text();
    // The client has its error while the release is still held: the answer did not wait for it.
    expect(await inUse()).toBe(1);
    // This instance's next admit sends the release first, so the one slot is free for it.
    const next = await chat('hi');
    expect(next.status).toBe(200);
    await next.text();
    await store.quota.flush();
    expect(await inUse()).toBe(0);
  });
});
