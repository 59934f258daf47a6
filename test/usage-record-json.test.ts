import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { USAGE_OUTCOMES, type UsageAttempt, type UsageRecord } from '../src/usage/usage-record.js';
import {
  USAGE_ATTEMPT_FIELDS,
  USAGE_RECORD_FIELDS,
  usageRecordJson,
} from '../src/usage/usage-record-json.js';
import { usageRecord } from './support/usage-record-fixture.js';

// Ids and names may hold quotes, backslashes, control characters, lone surrogates and any Unicode.
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({
    unit: fc.constantFrom('"', '\\', '\n', '\u0000', '\ud800', '\udfff', 'a', '\u{1f600}'),
    maxLength: 6,
  }),
);
// Records hold counts, but a number that is not one must still give valid JSON.
const number = fc.oneof(
  fc.nat(),
  fc.integer(),
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, Number.MAX_SAFE_INTEGER),
);
const attemptFields = {
  deployment: text,
  status: fc.oneof(
    fc.integer({ min: 100, max: 599 }),
    fc.constantFrom('timeout', 'unavailable', 'skipped'),
    text,
  ),
  duration_ms: number,
};
const attempt = fc.record(attemptFields);
/** Fields in the order UsageRecorder writes them; the optional ones present, absent or undefined. */
const fields = {
  at: number,
  requestId: text,
  teamId: text,
  keyId: text,
  model: text,
  deployment: text,
  status: number,
  outcome: fc.option(fc.constantFrom(...USAGE_OUTCOMES), { nil: undefined }),
  promptTokens: number,
  completionTokens: number,
  totalTokens: number,
  cachedTokens: number,
  reasoningTokens: number,
  usdMicros: number,
  unpriced: fc.boolean(),
  estimated: fc.boolean(),
  latencyMs: number,
  stream: fc.boolean(),
  tags: fc.array(text, { maxLength: 4 }),
  ttftMs: fc.option(number, { nil: undefined }),
  cache: fc.option(fc.constantFrom('HIT' as const, 'MISS' as const, 'BYPASS' as const, 'REFRESH' as const), {
    nil: undefined,
  }),
  attempts: fc.option(fc.array(attempt, { maxLength: 3 }), { nil: undefined }),
};
const record: fc.Arbitrary<UsageRecord> = fc.record(fields, {
  // Every field but the four a record may leave out.
  requiredKeys: USAGE_RECORD_FIELDS.filter(
    (field): field is Exclude<typeof field, 'outcome' | 'ttftMs' | 'cache' | 'attempts'> =>
      !['outcome', 'ttftMs', 'cache', 'attempts'].includes(field),
  ),
});

describe("a usage record's JSON", () => {
  it('names every field a record has', () => {
    expectTypeOf<Exclude<keyof UsageRecord, (typeof USAGE_RECORD_FIELDS)[number]>>().toEqualTypeOf<never>();
    expectTypeOf<Exclude<keyof UsageAttempt, (typeof USAGE_ATTEMPT_FIELDS)[number]>>().toEqualTypeOf<never>();
    // The records below have every field, in the order UsageRecorder writes them.
    expect(Object.keys(fields)).toEqual([...USAGE_RECORD_FIELDS]);
    expect(Object.keys(attemptFields)).toEqual([...USAGE_ATTEMPT_FIELDS]);
  });

  it('is what JSON.stringify gives, for any record', () => {
    fc.assert(
      fc.property(record, (r) => {
        expect(usageRecordJson(r)).toBe(JSON.stringify(r));
      }),
      { numRuns: 3_000 },
    );
  });

  it('reads back as the record it was written from', () => {
    const written = usageRecord({
      ttftMs: 12,
      cache: 'MISS',
      tags: ['a "quoted" tag', 'é'],
      attempts: [
        { deployment: 'primary', status: 503, duration_ms: 4 },
        { deployment: 'backup', status: 200, duration_ms: 40 },
      ],
    });
    expect(JSON.parse(usageRecordJson(written))).toEqual(written);
  });
});
