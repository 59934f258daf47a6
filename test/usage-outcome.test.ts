import { describe, expect, it } from 'vitest';
import { GatewayError, UpstreamClientError } from '../src/errors.js';
import { anthropicErrorOf } from '../src/http/anthropic-error.js';
import { QuotaExceededError } from '../src/pipeline/quota.js';
import { requestRateRefusal } from '../src/pipeline/request-limits.js';
import { outcomeOf } from '../src/usage/usage-outcome.js';

/**
 * The outcome a request is counted under depends on who refused it, not on the status a surface
 * writes for it: Anthropic's surface answers an exhausted budget with 402 billing_error.
 */
const budgetRefusal = () =>
  new QuotaExceededError(
    429,
    'insufficient_quota',
    'insufficient_quota',
    "Your team's USD budget ($1.00) for this day is exhausted; this request needs an estimated $0.01.",
    { headers: { 'x-should-retry': 'false' } },
  );

describe('outcomeOf', () => {
  it("counts the gateway's budget refusal as rejected on the Anthropic surface (402) as on OpenAI's (429)", () => {
    const refusal = budgetRefusal();
    const anthropicStatus = anthropicErrorOf(refusal).status;
    expect(anthropicStatus).toBe(402);
    expect(outcomeOf(anthropicStatus, refusal, false)).toBe('rejected');
    expect(outcomeOf(429, refusal, false)).toBe('rejected');
  });

  it("counts the gateway's rate refusals as rejected with whatever status the surface wrote", () => {
    const rate = requestRateRefusal({
      scope: 'key:k1',
      kind: 'requests_per_day',
      limit: 1,
      remaining: 0,
      resetMs: 60_000,
    });
    for (const error of [
      rate,
      new QuotaExceededError(429, 'rate_limit_error', 'rate_limit_exceeded', 'slots'),
    ])
      expect(outcomeOf(anthropicErrorOf(error).status, error, false)).toBe('rejected');
  });

  it("does not count an upstream's 402 as the gateway's refusal", () => {
    const upstream402 = new UpstreamClientError(
      402,
      Buffer.from('{"error":{"message":"pay up","type":"billing_error"}}'),
      'application/json',
      {},
    );
    expect(outcomeOf(402, upstream402, false)).toBe('failed');
    // Relayed without an error of the gateway's (a passthrough answer): not a refusal either.
    expect(outcomeOf(402, undefined, false)).toBe('invalid');
  });

  it("keeps the gateway's other 4xx invalid", () => {
    const invalid = new GatewayError(400, 'invalid_request_error', null, 'bad');
    expect(outcomeOf(400, invalid, false)).toBe('invalid');
  });
});
