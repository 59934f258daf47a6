import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { QuotaReservationRequest, QuotaScope, QuotaScopeStatus } from '../src/quota/quota-types.js';
import type { QuotaStore } from '../src/store/quota-store.js';
import type { Store } from '../src/store/store.js';
import { scanKeys } from './support/redis-cluster.js';
import { storeSubjects } from './support/store-subjects.js';

const stores = storeSubjects({ clearBeforeEach: false, settleHold: true });
const subjects = stores.subjects;

beforeAll(stores.start);
afterAll(stores.stop);

/** A minute boundary plus 15 s, so window arithmetic is easy to read. */
const T0 = Date.UTC(2026, 10, 22, 12, 0, 15);
const TTL = 200;
const DAY = '2026-11-22';

const newId = (prefix: string) => `${prefix}${randomBytes(6).toString('hex')}`;

describe.each(subjects)('Quota contract: $name', (subject) => {
  let store: Store | undefined;
  let teamId = '';
  const extra: Store[] = [];

  beforeEach(async (context) => {
    store = await subject.open();
    if (!store) context.skip(`${subject.name}: not available here`);
    // A fresh team per test: its keys share nothing with any other test's.
    teamId = newId('team_');
  });

  afterEach(async () => {
    await Promise.all([store?.close(), ...extra.splice(0).map((s) => s.close())]);
    store = undefined;
  });

  const s = (): Store => {
    if (!store) throw new Error('no store');
    return store;
  };
  /** The quota sub-store of the running test's store. */
  const q = (): QuotaStore => s().quota;

  const request = (
    scopes: QuotaScope[],
    overrides: Partial<QuotaReservationRequest> = {},
  ): QuotaReservationRequest => ({
    reservationId: newId('res_'),
    teamId,
    scopes,
    tokens: 100,
    usdMicros: 1_000,
    nowMs: T0,
    ttlMs: 60_000,
    ...overrides,
  });

  const status = async (scopes: QuotaScope[], nowMs = T0): Promise<QuotaScopeStatus[]> =>
    q().status(teamId, scopes, nowMs);

  const keyScope = (overrides: Partial<QuotaScope> = {}): QuotaScope => ({ id: 'key:k1', ...overrides });
  const teamScope = (overrides: Partial<QuotaScope> = {}): QuotaScope => ({
    id: `team:${teamId}`,
    ...overrides,
  });
  const dayBudget = (overrides: { maxTokens?: number; maxUsdMicros?: number; periodKey?: string } = {}) => ({
    period: 'day' as const,
    periodKey: DAY,
    ...overrides,
  });

  describe('each limit grants, then refuses naming the scope and what is left', () => {
    it('tokens per minute: retry at the next window start', async () => {
      const scopes = [keyScope({ tokensPerMinute: 250 })];
      const window = (remaining: number) => ({ scope: 'key:k1', limit: 250, remaining, resetMs: 45_000 });
      expect(await q().reserve(request(scopes))).toEqual({
        granted: true,
        tokensPerMinute: window(150),
      });
      expect(await q().reserve(request(scopes))).toEqual({ granted: true, tokensPerMinute: window(50) });
      expect(await q().reserve(request(scopes))).toEqual({
        granted: false,
        scope: 'key:k1',
        limit: 'tokens_per_minute',
        limitValue: 250,
        remaining: 50,
        retryAfterMs: 45_000,
      });
      // A smaller request still fits.
      expect(await q().reserve(request(scopes, { tokens: 50 }))).toEqual({
        granted: true,
        tokensPerMinute: window(0),
      });
      const [st] = await status(scopes);
      expect(st?.tokensPerMinute).toEqual({ limit: 250, used: 250, remaining: 0, resetMs: 45_000 });
    });

    it('a grant reports the tokens-per-minute window with the fewest tokens left', async () => {
      const scopes = [keyScope({ tokensPerMinute: 1_000 }), teamScope({ tokensPerMinute: 500 })];
      expect(await q().reserve(request(scopes))).toEqual({
        granted: true,
        tokensPerMinute: { scope: `team:${teamId}`, limit: 500, remaining: 400, resetMs: 45_000 },
      });
      // Other traffic on the key alone makes the key's window the tighter one.
      await q().reserve(request([keyScope({ tokensPerMinute: 1_000 })], { tokens: 800 }));
      expect(await q().reserve(request(scopes))).toEqual({
        granted: true,
        tokensPerMinute: { scope: 'key:k1', limit: 1_000, remaining: 0, resetMs: 45_000 },
      });
      // Without a tokens-per-minute limit there is nothing to report.
      expect(await q().reserve(request([keyScope({ maxConcurrent: 5 })]))).toEqual({ granted: true });
    });

    it('concurrency: no retry time, and the slot count', async () => {
      const scopes = [keyScope({ maxConcurrent: 2 })];
      await q().reserve(request(scopes));
      await q().reserve(request(scopes));
      const refused = await q().reserve(request(scopes));
      expect(refused).toEqual({
        granted: false,
        scope: 'key:k1',
        limit: 'concurrency',
        limitValue: 2,
        remaining: 0,
      });
      expect((await status(scopes))[0]?.concurrency).toEqual({ limit: 2, inUse: 2, remaining: 0 });
    });

    it('budget tokens and budget USD, with the period', async () => {
      const tokens = [keyScope({ budgets: [dayBudget({ maxTokens: 250 })] })];
      await q().reserve(request(tokens));
      await q().reserve(request(tokens));
      expect(await q().reserve(request(tokens))).toEqual({
        granted: false,
        scope: 'key:k1',
        limit: 'budget_tokens',
        limitValue: 250,
        remaining: 50,
        period: 'day',
        periodKey: DAY,
      });
      const usd = [teamScope({ budgets: [{ period: 'month', periodKey: '2026-11', maxUsdMicros: 2_500 }] })];
      await q().reserve(request(usd));
      await q().reserve(request(usd));
      expect(await q().reserve(request(usd))).toEqual({
        granted: false,
        scope: `team:${teamId}`,
        limit: 'budget_usd',
        limitValue: 2_500,
        remaining: 500,
        period: 'month',
        periodKey: '2026-11',
      });
    });

    it('reports a budget refusal before a rate refusal (it must not be retried)', async () => {
      const scopes = [
        keyScope({ tokensPerMinute: 100 }),
        teamScope({ budgets: [{ period: 'lifetime', periodKey: 'all', maxTokens: 100 }] }),
      ];
      await q().reserve(request(scopes));
      const refused = await q().reserve(request(scopes));
      expect(refused).toMatchObject({ granted: false, scope: `team:${teamId}`, limit: 'budget_tokens' });
    });
  });

  it('is all-or-nothing: a refusal by the team scope changes no counter of any scope', async () => {
    const scopes = [
      keyScope({ tokensPerMinute: 10_000, maxConcurrent: 5, budgets: [dayBudget({ maxTokens: 10_000 })] }),
      teamScope({ tokensPerMinute: 10_000, maxConcurrent: 5, budgets: [dayBudget({ maxTokens: 150 })] }),
    ];
    await q().reserve(request(scopes));
    const before = await status(scopes);
    const refused = await q().reserve(request(scopes));
    expect(refused).toMatchObject({ granted: false, scope: `team:${teamId}`, limit: 'budget_tokens' });
    expect(await status(scopes)).toEqual(before);
    expect(before[0]?.tokensPerMinute?.used).toBe(100);
    expect(before[0]?.concurrency?.inUse).toBe(1);
    expect(before[0]?.budgets[0]?.reservedTokens).toBe(100);
  });

  describe('request rates', () => {
    const admitAt = (nowMs: number) =>
      q().admit({ teamId, nowMs, requests: [{ id: 'key:k1', perMinute: 2, perDay: 3 }] });

    it('count in windows that start at the first request, then refuse with the wait left', async () => {
      expect(await admitAt(T0)).toEqual({
        requests: {
          allowed: true,
          tightest: { scope: 'key:k1', kind: 'requests_per_minute', limit: 2, remaining: 1, resetMs: 60_000 },
        },
      });
      await admitAt(T0 + 10_000);
      expect(await admitAt(T0 + 20_000)).toEqual({
        requests: {
          allowed: false,
          refused: { scope: 'key:k1', kind: 'requests_per_minute', limit: 2, remaining: 0, resetMs: 40_000 },
        },
      });
      // A refused request is not counted: the next minute has room, the day has one left.
      expect(await admitAt(T0 + 60_000)).toEqual({
        requests: {
          allowed: true,
          tightest: {
            scope: 'key:k1',
            kind: 'requests_per_day',
            limit: 3,
            remaining: 0,
            resetMs: 86_400_000 - 60_000,
          },
        },
      });
    });

    it('a clock behind the window start (another instance ahead) never waits longer than the window', async () => {
      await admitAt(T0 + 500);
      await admitAt(T0 + 600);
      // This instance's clock reads 2 s before the window began on another's.
      const behind = await admitAt(T0 - 1_500);
      expect(behind.requests).toMatchObject({ allowed: false, refused: { kind: 'requests_per_minute' } });
      if (behind.requests.allowed) throw new Error('granted');
      expect(behind.requests.refused.resetMs).toBe(60_000);
    });

    const admitRates = (nowMs: number, rates: { perMinute?: number; perDay?: number }) =>
      q().admit({ teamId, nowMs, requests: [{ id: 'key:k1', ...rates }] });
    const dayWindow = (limit: number, remaining: number, resetMs: number) => ({
      scope: 'key:k1',
      kind: 'requests_per_day',
      limit,
      remaining,
      resetMs,
    });

    it('a per-day refusal names the day window, its limit and the wait to its end', async () => {
      // Alone, and under a looser per-minute limit: the day is what refuses either way.
      for (const rates of [{ perDay: 1 }, { perMinute: 5, perDay: 1 }]) {
        teamId = newId('team_');
        expect(await admitRates(T0, rates)).toEqual({
          requests: { allowed: true, tightest: dayWindow(1, 0, 86_400_000) },
        });
        expect(await admitRates(T0 + 10_000, rates)).toEqual({
          requests: { allowed: false, refused: dayWindow(1, 0, 86_400_000 - 10_000) },
        });
      }
    });

    it('a per-minute refusal names the minute window, its limit and the wait to its end', async () => {
      for (const rates of [{ perMinute: 1 }, { perMinute: 1, perDay: 5 }]) {
        teamId = newId('team_');
        await admitRates(T0, rates);
        expect(await admitRates(T0 + 10_000, rates)).toEqual({
          requests: {
            allowed: false,
            refused: {
              scope: 'key:k1',
              kind: 'requests_per_minute',
              limit: 1,
              remaining: 0,
              resetMs: 50_000,
            },
          },
        });
      }
    });

    it('a scope limited per day only counts no minute: its tightest window is the day', async () => {
      expect(await admitRates(T0, { perDay: 3 })).toEqual({
        requests: { allowed: true, tightest: dayWindow(3, 2, 86_400_000) },
      });
      expect(await admitRates(T0 + 10_000, { perDay: 3 })).toEqual({
        requests: { allowed: true, tightest: dayWindow(3, 1, 86_400_000 - 10_000) },
      });
    });

    it('a per-minute limit added after day-only requests counts from its own first request', async () => {
      await admitRates(T0, { perDay: 10 });
      await admitRates(T0 + 1_000, { perDay: 10 });
      // The minute starts now: the day-only requests before were never counted per minute.
      const rates = { perMinute: 3, perDay: 10 };
      expect(await admitRates(T0 + 2_000, rates)).toEqual({
        requests: {
          allowed: true,
          tightest: { scope: 'key:k1', kind: 'requests_per_minute', limit: 3, remaining: 2, resetMs: 60_000 },
        },
      });
      expect((await admitRates(T0 + 3_000, rates)).requests.allowed).toBe(true);
      expect((await admitRates(T0 + 4_000, rates)).requests.allowed).toBe(true);
      expect(await admitRates(T0 + 5_000, rates)).toEqual({
        requests: {
          allowed: false,
          refused: { scope: 'key:k1', kind: 'requests_per_minute', limit: 3, remaining: 0, resetMs: 57_000 },
        },
      });
    });
  });

  describe('settle and release', () => {
    const scopes = () => [
      keyScope({ tokensPerMinute: 10_000, maxConcurrent: 1, budgets: [dayBudget({ maxTokens: 10_000 })] }),
      teamScope({ budgets: [dayBudget({ maxUsdMicros: 1_000_000 })] }),
    ];

    it('replaces the estimate by a lower actual everywhere and frees the slot; repeats change nothing', async () => {
      const req = request(scopes(), { tokens: 500, usdMicros: 5_000 });
      await q().reserve(req);
      expect(await q().settle(teamId, req.reservationId, { tokens: 200, usdMicros: 2_000 }, T0 + 1_000)).toBe(
        'settled',
      );
      const after = await status(scopes(), T0 + 1_000);
      expect(after[0]?.tokensPerMinute?.used).toBe(200);
      expect(after[0]?.concurrency?.inUse).toBe(0);
      expect(after[0]?.budgets[0]).toMatchObject({
        spentTokens: 200,
        reservedTokens: 0,
        remainingTokens: 9_800,
      });
      expect(after[1]?.budgets[0]).toMatchObject({ spentUsdMicros: 2_000, reservedUsdMicros: 0 });
      expect(await q().settle(teamId, req.reservationId, { tokens: 200, usdMicros: 2_000 }, T0 + 2_000)).toBe(
        'unknown',
      );
      expect(await q().release(teamId, req.reservationId, T0 + 2_000)).toBe('unknown');
      expect(await status(scopes(), T0 + 1_000)).toEqual(after);
    });

    it('finishes many at once exactly: each counted once, a repeat in the same moment is unknown', async () => {
      // scopes() with room for twelve at once (its key has one slot).
      const roomy = () => [
        keyScope({ tokensPerMinute: 10_000, maxConcurrent: 20, budgets: [dayBudget({ maxTokens: 10_000 })] }),
        teamScope({ budgets: [dayBudget({ maxUsdMicros: 1_000_000 })] }),
      ];
      const reqs = Array.from({ length: 12 }, () => request(roomy(), { tokens: 100, usdMicros: 1_000 }));
      for (const req of reqs) expect((await q().reserve(req)).granted).toBe(true);
      const [first, second] = reqs as [QuotaReservationRequest, QuotaReservationRequest];
      // Asked in one turn: settles, a release, a repeated settle and an unknown id together.
      const outcomes = await Promise.all([
        ...reqs
          .slice(1)
          .map((req, i) => q().settle(teamId, req.reservationId, { tokens: 10 + i, usdMicros: 100 }, T0 + 1)),
        q().release(teamId, first.reservationId, T0 + 1),
        q().settle(teamId, second.reservationId, { tokens: 999, usdMicros: 999 }, T0 + 1),
        q().settle(teamId, newId('res_'), { tokens: 999, usdMicros: 999 }, T0 + 1),
      ]);
      expect(outcomes).toEqual([...Array<string>(11).fill('settled'), 'released', 'unknown', 'unknown']);
      // 10 + 11 + ... + 20 tokens, 11 x 100 micro-USD; nothing reserved or in use any more.
      const [key, team] = await status(roomy(), T0 + 1);
      expect(key?.budgets[0]).toMatchObject({ spentTokens: 165, reservedTokens: 0 });
      expect(key?.concurrency?.inUse).toBe(0);
      expect(key?.tokensPerMinute?.used).toBe(165);
      expect(team?.budgets[0]).toMatchObject({ spentUsdMicros: 1_100, reservedUsdMicros: 0 });
    });

    it('admits, settles and releases asked for together run in the order asked', async () => {
      // The key has one slot and 10,000 tokens a day; the first request holds 9,000 of them.
      const first = request(scopes(), { tokens: 9_000 });
      expect((await q().reserve(first)).granted).toBe(true);
      const [before, settle, after, last] = [
        request(scopes(), { tokens: 2_000 }),
        first,
        request(scopes(), { tokens: 2_000 }),
        request(scopes(), { tokens: 2_000 }),
      ];
      // Asked in one turn: the settle frees the slot and 8,000 tokens for what comes after it only.
      const outcomes = await Promise.all([
        q().reserve(before),
        q().settle(teamId, settle.reservationId, { tokens: 1_000, usdMicros: 100 }, T0 + 1),
        q().reserve(after),
        q().reserve(last),
        q().release(teamId, after.reservationId, T0 + 1),
      ]);
      expect(outcomes).toEqual([
        expect.objectContaining({ granted: false, limit: 'budget_tokens', remaining: 1_000 }),
        'settled',
        expect.objectContaining({ granted: true }),
        expect.objectContaining({ granted: false, limit: 'concurrency' }),
        'released',
      ]);
      const [key, team] = await status(scopes(), T0 + 1);
      expect(key?.concurrency?.inUse).toBe(0);
      expect(key?.budgets[0]).toMatchObject({ spentTokens: 1_000, reservedTokens: 0 });
      expect(team?.budgets[0]).toMatchObject({ spentUsdMicros: 100, reservedUsdMicros: 0 });
      expect(await q().reserve(request(scopes(), { tokens: 9_000 }))).toMatchObject({ granted: true });
    });

    it('records a higher actual in full', async () => {
      const req = request(scopes(), { tokens: 100, usdMicros: 1_000 });
      await q().reserve(req);
      await q().settle(teamId, req.reservationId, { tokens: 300, usdMicros: 3_000 }, T0);
      const [key, team] = await status(scopes());
      expect(key?.tokensPerMinute?.used).toBe(300);
      expect(key?.budgets[0]).toMatchObject({ spentTokens: 300, reservedTokens: 0 });
      expect(team?.budgets[0]).toMatchObject({ spentUsdMicros: 3_000, reservedUsdMicros: 0 });
    });

    it('release refunds everything and frees the slot', async () => {
      const req = request(scopes(), { tokens: 500 });
      await q().reserve(req);
      expect(await q().reserve(request(scopes()))).toMatchObject({
        granted: false,
        limit: 'concurrency',
      });
      expect(await q().release(teamId, req.reservationId, T0)).toBe('released');
      const [key, team] = await status(scopes());
      expect(key?.tokensPerMinute?.used).toBe(0);
      expect(key?.concurrency?.inUse).toBe(0);
      expect(key?.budgets[0]).toMatchObject({ spentTokens: 0, reservedTokens: 0 });
      expect(team?.budgets[0]).toMatchObject({ spentUsdMicros: 0, reservedUsdMicros: 0 });
      expect(await q().reserve(request(scopes()))).toMatchObject({ granted: true });
    });

    it('free requests (0 USD, 0 tokens: unpriced models) settle, release and expire like any other', async () => {
      const free = request(scopes(), { tokens: 0, usdMicros: 0, ttlMs: TTL });
      expect(await q().reserve(free)).toMatchObject({ granted: true });
      expect(await q().settle(teamId, free.reservationId, { tokens: 40, usdMicros: 0 }, T0)).toBe('settled');
      const priced = request(scopes(), { tokens: 10, usdMicros: 0 });
      await q().reserve(priced);
      expect(await q().release(teamId, priced.reservationId, T0)).toBe('released');
      // A lost free reservation is reaped by the next call after its ttl, which must still work.
      await q().reserve(request(scopes(), { tokens: 0, usdMicros: 0, ttlMs: TTL }));
      const later = request(scopes(), { tokens: 5, usdMicros: 0, nowMs: T0 + TTL });
      expect(await q().reserve(later)).toMatchObject({ granted: true });
      expect(await q().settle(teamId, later.reservationId, { tokens: 5, usdMicros: 0 }, T0 + TTL)).toBe(
        'settled',
      );
      const [key, team] = await status(scopes(), T0 + TTL);
      expect(key?.budgets[0]).toMatchObject({ spentTokens: 45, reservedTokens: 0 });
      expect(key?.concurrency?.inUse).toBe(0);
      expect(team?.budgets[0]).toMatchObject({ spentUsdMicros: 0, reservedUsdMicros: 0 });
    });

    it('a settle for an unknown reservation changes nothing', async () => {
      expect(await q().settle(teamId, 'res_never', { tokens: 5, usdMicros: 5 }, T0)).toBe('unknown');
      expect((await status(scopes()))[0]?.budgets[0]?.spentTokens).toBe(0);
    });
  });

  describe('a lost process (ttl)', () => {
    const scopes = [keyScope({ maxConcurrent: 1, budgets: [dayBudget({ maxTokens: 1_000 })] })];

    it('stops holding its slot and budget when its ttl passes', async () => {
      const lost = request(scopes, { ttlMs: TTL });
      expect(await q().reserve(lost)).toEqual({ granted: true });
      expect(await q().reserve(request(scopes, { nowMs: T0 + TTL - 1 }))).toMatchObject({
        granted: false,
        limit: 'concurrency',
      });
      expect((await status(scopes, T0 + TTL))[0]).toMatchObject({
        concurrency: { inUse: 0 },
        budgets: [{ reservedTokens: 0, spentTokens: 0 }],
      });
      expect(await q().reserve(request(scopes, { nowMs: T0 + TTL, ttlMs: TTL }))).toEqual({
        granted: true,
      });
    });

    it('a late settle still records the actual spend, once', async () => {
      const lost = request(scopes, { ttlMs: TTL });
      await q().reserve(lost);
      const late = T0 + 10 * TTL;
      expect(await q().settle(teamId, lost.reservationId, { tokens: 70, usdMicros: 7 }, late)).toBe(
        'expired',
      );
      expect(await q().settle(teamId, lost.reservationId, { tokens: 70, usdMicros: 7 }, late)).toBe(
        'unknown',
      );
      expect((await status(scopes, late))[0]).toMatchObject({
        concurrency: { inUse: 0 },
        budgets: [{ reservedTokens: 0, spentTokens: 70, spentUsdMicros: 7, remainingTokens: 930 }],
      });
    });

    it('requests asked for together count as one after another, when a lost one expires among them', async () => {
      const two = [keyScope({ maxConcurrent: 2, budgets: [dayBudget({ maxTokens: 1_000 })] })];
      expect(await q().reserve(request(two, { ttlMs: TTL }))).toEqual({ granted: true });
      // Asked for in one go (the Redis store sends such requests to Redis as one batch): the
      // second finds the lost reservation expired and frees it, after the first took a slot.
      const [first, second, third] = await Promise.all([
        q().reserve(request(two, { nowMs: T0 + TTL - 1 })),
        q().reserve(request(two, { nowMs: T0 + TTL })),
        q().reserve(request(two, { nowMs: T0 + TTL })),
      ]);
      expect(first).toEqual({ granted: true });
      expect(second).toEqual({ granted: true });
      expect(third).toMatchObject({ granted: false, limit: 'concurrency', remaining: 0 });
      expect((await status(two, T0 + TTL))[0]).toMatchObject({
        concurrency: { inUse: 2 },
        budgets: [{ reservedTokens: 200, spentTokens: 0 }],
      });
    });

    it('a settle asked for together with a request that reaps its reservation frees it once', async () => {
      const two = [keyScope({ maxConcurrent: 2, budgets: [dayBudget({ maxTokens: 1_000 })] })];
      const lost = request(two, { ttlMs: TTL });
      await q().reserve(lost);
      await q().reserve(request(two));
      // Asked for in one go: the request finds the lost reservation expired and frees its slot
      // and estimate; the settle after it records the spend and must free nothing again.
      const [next, settled] = await Promise.all([
        q().reserve(request(two, { nowMs: T0 + TTL })),
        q().settle(teamId, lost.reservationId, { tokens: 30, usdMicros: 3 }, T0 + TTL),
      ]);
      expect(next).toEqual({ granted: true });
      expect(settled).toBe('expired');
      expect((await status(two, T0 + TTL))[0]).toMatchObject({
        concurrency: { inUse: 2 },
        budgets: [{ reservedTokens: 200, spentTokens: 30 }],
      });
    });
  });

  it('tokens per minute roll over at the next window', async () => {
    const scopes = [keyScope({ tokensPerMinute: 100 })];
    await q().reserve(request(scopes));
    const refused = await q().reserve(request(scopes, { nowMs: T0 + 44_999, tokens: 1 }));
    expect(refused).toMatchObject({ granted: false, limit: 'tokens_per_minute', retryAfterMs: 1 });
    const next = T0 + 45_000;
    expect((await status(scopes, next))[0]?.tokensPerMinute).toEqual({
      limit: 100,
      used: 0,
      remaining: 100,
      resetMs: 60_000,
    });
    expect(await q().reserve(request(scopes, { nowMs: next }))).toEqual({
      granted: true,
      tokensPerMinute: { scope: 'key:k1', limit: 100, remaining: 0, resetMs: 60_000 },
    });
  });

  it('budgets are kept per period key: a new day starts fresh', async () => {
    const today = [keyScope({ budgets: [dayBudget({ maxTokens: 100 })] })];
    const tomorrow = [keyScope({ budgets: [dayBudget({ maxTokens: 100, periodKey: '2026-11-23' })] })];
    const req = request(today);
    await q().reserve(req);
    await q().settle(teamId, req.reservationId, { tokens: 100, usdMicros: 0 }, T0);
    expect(await q().reserve(request(today, { tokens: 1 }))).toMatchObject({
      granted: false,
      limit: 'budget_tokens',
      remaining: 0,
    });
    expect(await q().reserve(request(tomorrow, { nowMs: T0 + 86_400_000 }))).toEqual({ granted: true });
    expect((await status(today))[0]?.budgets[0]?.spentTokens).toBe(100);
  });

  describe('exactness under concurrency (two instances on one shared state)', () => {
    it('grants exactly budget / estimate of 200 simultaneous reservations', async () => {
      const other = await subject.sibling(s());
      if (other !== s()) extra.push(other);
      const scopes = [
        keyScope({ budgets: [dayBudget({ maxTokens: 1_000 })] }),
        teamScope({ budgets: [dayBudget({ maxTokens: 5_000 })] }),
      ];
      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const instance = (i % 2 === 0 ? s() : other).quota;
          const req = request(scopes, { tokens: 10 });
          const result = await instance.reserve(req);
          if (result.granted)
            await instance.settle(teamId, req.reservationId, { tokens: 10, usdMicros: 0 }, T0);
          return result.granted;
        }),
      );
      const granted = results.filter(Boolean).length;
      // Actual usage equals the estimate here, so the budget is never overshot at all.
      expect(granted * 10).toBeLessThanOrEqual(1_000);
      expect(granted).toBe(100);
      expect((await status(scopes))[0]?.budgets[0]).toMatchObject({ spentTokens: 1_000, reservedTokens: 0 });
    });

    it('never lets more than C requests in flight', async () => {
      const other = await subject.sibling(s());
      if (other !== s()) extra.push(other);
      const C = 5;
      const scopes = [teamScope({ maxConcurrent: C })];
      let inFlight = 0;
      let peak = 0;
      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const instance = (i % 2 === 0 ? s() : other).quota;
          const req = request(scopes);
          // Spread the attempts so slots are freed and taken again while others ask.
          await new Promise((resolve) => setTimeout(resolve, i % 20));
          const result = await instance.reserve(req);
          if (!result.granted) return false;
          inFlight++;
          peak = Math.max(peak, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 2));
          inFlight--;
          await instance.settle(teamId, req.reservationId, { tokens: 100, usdMicros: 0 }, T0);
          return true;
        }),
      );
      expect(peak).toBeLessThanOrEqual(C);
      expect(peak).toBeGreaterThan(0);
      expect(results.filter(Boolean).length).toBeGreaterThanOrEqual(C);
      expect((await status(scopes))[0]?.concurrency?.inUse).toBe(0);
    });
  });

  // Only where there are Redis keys to look at (MemoryStore keeps none): not defined at all for
  // the memory store, rather than reported as skipped.
  const onRedis = (name: string, test: () => Promise<void>) => {
    if (subject.name !== 'MemoryStore') it(name, test);
  };
  onRedis(
    'keeps a team in one hash under its hash tag: a field per counter, nothing left of ended reservations',
    async () => {
      const servers = subject.servers();
      expect(servers.length).toBeGreaterThan(0);
      const scopes = [
        keyScope({ tokensPerMinute: 1_000, maxConcurrent: 3, budgets: [dayBudget({ maxTokens: 1_000 })] }),
        teamScope({ budgets: [{ period: 'lifetime', periodKey: 'all', maxTokens: 10_000 }] }),
      ];
      const fieldsNow = async () => {
        const keys: string[] = [];
        const fields: string[] = [];
        for (const server of servers)
          for (const key of await scanKeys(server, `tg:{q:${teamId}}:*`)) {
            keys.push(key);
            fields.push(...(await server.hkeys(key)));
          }
        return { keys, fields: fields.sort() };
      };
      const first = request(scopes);
      await q().reserve(first);
      const held = await fieldsNow();
      expect(held.keys).toEqual([`tg:{q:${teamId}}:h`]);
      expect(held.fields).toEqual(
        [
          `b:key:k1:day`,
          `b:team:${teamId}:lifetime`,
          'c:key:k1',
          'm:key:k1',
          'next',
          `r:${first.reservationId}`,
        ].sort(),
      );
      await q().settle(teamId, first.reservationId, { tokens: 10, usdMicros: 0 }, T0 + 1);
      // Windows and periods live in the values: hours and days of traffic add no fields.
      for (const [at, day] of [
        [T0 + 3_600_000, DAY],
        [T0 + 86_400_000, '2026-11-23'],
        [T0 + 2 * 86_400_000, '2026-11-24'],
      ] as const) {
        const dayScopes = [
          keyScope({
            tokensPerMinute: 1_000,
            maxConcurrent: 3,
            budgets: [dayBudget({ maxTokens: 1_000, periodKey: day })],
          }),
          scopes[1] as QuotaScope,
        ];
        const later = request(dayScopes, { nowMs: at });
        await q().reserve(later);
        await q().settle(teamId, later.reservationId, { tokens: 10, usdMicros: 0 }, at + 1);
      }
      const ended = await fieldsNow();
      expect(ended.keys).toEqual([`tg:{q:${teamId}}:h`]);
      expect(ended.fields.filter((field) => field.startsWith('r:'))).toEqual([]);
      expect(ended.fields.length).toBeLessThanOrEqual(held.fields.length);
    },
  );
});
