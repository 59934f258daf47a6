import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AdmitRequest, QuotaScope, RequestRateScope } from '../src/quota/quota-types.js';
import { seal } from '../src/quota/sealed-scopes.js';
import { type ScriptPlanTimes, scriptJson } from '../src/store/quota-script-json.js';

/** The plan and record as quota-turn.lua documents them, through JSON.stringify. */
function reference(
  requests: RequestRateScope[],
  reservation: AdmitRequest['reservation'],
  times: ScriptPlanTimes,
) {
  const plan = {
    q: requests.map((s) => ({ s: s.id, pm: s.perMinute, pd: s.perDay })),
    t: reservation?.tokens ?? 0,
    u: reservation?.usdMicros ?? 0,
    e: times.nowMs + (reservation?.ttlMs ?? 0),
    w: times.window,
    retry: times.retryMs,
    s: (reservation?.scopes ?? []).map((scope) => ({
      id: scope.id,
      c: scope.maxConcurrent,
      m: scope.tokensPerMinute,
      b: (scope.budgets ?? []).map((b) => ({
        p: b.period,
        k: b.periodKey,
        mt: b.maxTokens,
        mu: b.maxUsdMicros,
      })),
    })),
  };
  const record = reservation && {
    e: plan.e,
    t: plan.t,
    u: plan.u,
    c: reservation.scopes.filter((s) => s.maxConcurrent !== undefined).map((s) => s.id),
    m: reservation.scopes.filter((s) => s.tokensPerMinute !== undefined).map((s) => [s.id, times.window]),
    b: reservation.scopes.flatMap((s) => (s.budgets ?? []).map((b) => [s.id, b.period, b.periodKey])),
  };
  return { plan: JSON.stringify(plan), record: record ? JSON.stringify(record) : '' };
}

const count = fc.option(fc.oneof(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.constant(-0)), {
  nil: undefined,
});
// Ids hold model names, which may carry quotes, backslashes, control characters, lone surrogates
// and any Unicode (the generic string arbitrary rarely makes the first four: they get their own).
const id = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({
    unit: fc.constantFrom('"', '\\', '\n', '\u0000', '\ud800', '\udfff', 'a', '\u{1f600}'),
    maxLength: 6,
  }),
);
const requestScope = fc.record({ id, perMinute: count, perDay: count }, { requiredKeys: ['id'] });
const budget = fc.record(
  {
    period: fc.constantFrom('day' as const, 'month' as const, 'lifetime' as const),
    periodKey: fc.oneof(fc.constant('2026-12-07'), id),
    maxTokens: count,
    maxUsdMicros: count,
  },
  { requiredKeys: ['period', 'periodKey'] },
);
const scope: fc.Arbitrary<QuotaScope> = fc.record(
  { id, tokensPerMinute: count, maxConcurrent: count, budgets: fc.array(budget, { maxLength: 3 }) },
  { requiredKeys: ['id'] },
);
const reservation = fc.option(
  fc.record({
    reservationId: fc.uuid(),
    scopes: fc.array(scope, { maxLength: 4 }),
    tokens: fc.nat(),
    usdMicros: fc.nat(),
    ttlMs: fc.integer({ min: 1, max: 10_000_000 }),
  }),
  { nil: undefined },
);
const times = fc.record({
  nowMs: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  window: fc.nat(),
  retryMs: fc.integer({ min: 0, max: 60_000 }),
});

describe('the quota script JSON written by hand', () => {
  it('is what JSON.stringify writes for the plan and record (property)', () => {
    fc.assert(
      fc.property(fc.array(requestScope, { maxLength: 4 }), reservation, times, (requests, asked, at) => {
        const expected = reference(requests, asked, at);
        const written = scriptJson(requests, asked, at);
        expect(written.plan).toBe(expected.plan);
        expect(written.record).toBe(expected.record);
      }),
      { numRuns: 500 },
    );
  });

  it('sealed lists (written once, then remembered) give the same JSON at any time', () => {
    fc.assert(
      fc.property(
        fc.array(requestScope, { maxLength: 4 }),
        reservation,
        times,
        times,
        (requests, asked, first, second) => {
          const sealedRequests = seal(structuredClone(requests));
          const sealedAsked = asked && { ...asked, scopes: seal(structuredClone(asked.scopes)) };
          for (const at of [first, second, first]) {
            const expected = reference(requests, asked, at);
            const written = scriptJson(sealedRequests, sealedAsked, at);
            expect(written.plan).toBe(expected.plan);
            expect(written.record).toBe(expected.record);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a sealed list cannot change under the JSON remembered for it', () => {
    const scopes = seal([
      { id: 'team:t', tokensPerMinute: 10, budgets: [{ period: 'day' as const, periodKey: 'd' }] },
    ]);
    const asked = { reservationId: 'r', scopes, tokens: 1, usdMicros: 0, ttlMs: 1 };
    const at = { nowMs: 0, window: 0, retryMs: 1 };
    const before = scriptJson([], asked, at);
    expect(() => {
      (scopes[0] as { tokensPerMinute: number }).tokensPerMinute = 99;
    }).toThrow(TypeError);
    expect(() => {
      (scopes[0]?.budgets?.[0] as { periodKey: string }).periodKey = 'other';
    }).toThrow(TypeError);
    expect(() => (scopes as unknown as QuotaScope[]).push({ id: 'key:k' })).toThrow(TypeError);
    // What is remembered is still what the list says.
    expect(scriptJson([], asked, at)).toEqual(before);
    expect(before).toEqual(reference([], { ...asked, scopes: structuredClone([...scopes]) }, at));
  });

  it('a request without limits or reservation is the empty plan', () => {
    expect(scriptJson([], undefined, { nowMs: 1_000, window: 0, retryMs: 59_000 }).plan).toBe(
      '{"q":[],"t":0,"u":0,"e":1000,"w":0,"retry":59000,"s":[]}',
    );
  });
});
