import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { daysBetween, utcDay } from '../src/usage/usage-record.js';

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe("a record's UTC day", () => {
  it('is the ISO date of its ms, whatever was asked before', () => {
    // Times around a few neighbouring day boundaries, in any order, and far apart: the day
    // remembered from one must never answer for the next.
    const near = fc
      .tuple(
        fc.integer({ min: -20_000, max: 20_000 }),
        fc.array(fc.tuple(fc.integer({ min: -2, max: 2 }), fc.integer({ min: -2, max: 2 })), {
          minLength: 1,
          maxLength: 8,
        }),
      )
      .map(([day, steps]) => steps.map(([days, offset]) => (day + days) * DAY_MS + offset));
    const far = fc.array(fc.integer({ min: -8.64e15, max: 8.64e15 }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(fc.oneof(near, far), (times) => {
        for (const at of times) expect(utcDay(at)).toBe(isoDay(at));
      }),
      { numRuns: 2_000 },
    );
  });

  it('names each day of a range once, across the turn of a year', () => {
    expect(daysBetween('2026-12-30', '2027-01-02')).toEqual([
      '2026-12-30',
      '2026-12-31',
      '2027-01-01',
      '2027-01-02',
    ]);
  });

  it('refuses a time that is not one, as Date does', () => {
    expect(() => utcDay(Number.NaN)).toThrow(RangeError);
  });
});
