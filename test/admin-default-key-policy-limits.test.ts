import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import type { TestGateway } from './support/gateway.js';

/**
 * A key made without limits of its own takes its team's default_key_policy limits and budgets,
 * and a key's may only be tighter than its team's. A policy set looser than the team is refused
 * when it is set; a team may lower its own limits under its policy at any time (cutting spend must
 * not wait on editing the policy), and keys made from the policy then take the team's values.
 */
let gw: TestGateway;
let admin: AdminHttp;

interface TeamLimits {
  id: string;
  limits: Record<string, number>;
  budgets: unknown[];
  default_key_policy: { limits?: Record<string, number>; budgets?: unknown[] } | null;
}

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway());
});
afterAll(() => gw.close());

function expectRefused(response: { status: number; body: unknown }, param: string, mentions: string[]): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  const error = expectEnvelope(response.body, {
    type: 'invalid_request_error',
    code: 'limit_exceeds_team',
    param,
  });
  for (const text of mentions) expect(error.message).toContain(text);
}

async function teamCount(): Promise<number> {
  const page = await admin.ok<{ data: unknown[] }>('GET', '/teams?limit=100');
  return page.data.length;
}

describe('default_key_policy limits and budgets within the team’s', () => {
  it('create: a policy limit or budget above the team’s is refused, naming it; nothing is created', async () => {
    const before = await teamCount();
    expectRefused(
      await admin.call('POST', '/teams', {
        name: 'dkp',
        limits: { requests_per_minute: 10 },
        default_key_policy: { limits: { requests_per_minute: 20 } },
      }),
      'default_key_policy.limits.requests_per_minute',
      ['default_key_policy.limits.requests_per_minute is 20', 'limits.requests_per_minute is 10'],
    );
    expectRefused(
      await admin.call('POST', '/teams', {
        name: 'dkp',
        budgets: [
          { period: 'day', max_tokens: 1_000 },
          { period: 'month', max_usd: 5 },
        ],
        default_key_policy: { budgets: [{ period: 'month', max_usd: 6 }] },
      }),
      'default_key_policy.budgets[0].max_usd',
      ['default_key_policy.budgets[0].max_usd is 6', 'budgets[1].max_usd is 5'],
    );
    expect(await teamCount()).toBe(before);
  });

  it('create: a policy at or under the team’s is kept, and keys made without limits take it', async () => {
    const team = await admin.ok<TeamLimits>('POST', '/teams', {
      name: 'dkp-ok',
      limits: { requests_per_minute: 10 },
      budgets: [{ period: 'day', max_tokens: 1_000 }],
      default_key_policy: {
        // Limits the team does not set, and periods it has no budget for, bind only the key.
        limits: { requests_per_minute: 10, max_concurrent: 3 },
        budgets: [
          { period: 'day', max_tokens: 500 },
          { period: 'lifetime', max_usd: 50 },
        ],
      },
    });
    const key = await admin.ok<{ limits: unknown; budgets: unknown }>('POST', '/keys', { team_id: team.id });
    expect(key.limits).toEqual({ requests_per_minute: 10, max_concurrent: 3 });
    expect(key.budgets).toEqual([
      { period: 'day', max_tokens: 500 },
      { period: 'lifetime', max_usd: 50 },
    ]);
  });

  it('update: the team may lower its limits and budgets under its policy; keys made from it take the team’s', async () => {
    const team = await admin.ok<TeamLimits>('POST', '/teams', {
      name: 'dkp-lower',
      limits: { requests_per_minute: 30 },
      budgets: [{ period: 'day', max_tokens: 1_000 }],
      default_key_policy: {
        limits: { requests_per_minute: 20, max_concurrent: 4 },
        budgets: [
          { period: 'day', max_tokens: 800 },
          { period: 'month', max_usd: 5 },
        ],
      },
    });
    const lowered = await admin.ok<TeamLimits>('PATCH', `/teams/${team.id}`, {
      limits: { requests_per_minute: 10 },
      budgets: [{ period: 'day', max_tokens: 500 }],
    });
    expect(lowered.limits).toEqual({ requests_per_minute: 10 });
    expect(lowered.budgets).toEqual([{ period: 'day', max_tokens: 500 }]);
    // The policy is kept as it was; a key made from it takes the lower of the two, field by field.
    expect(lowered.default_key_policy?.limits).toEqual({ requests_per_minute: 20, max_concurrent: 4 });
    const key = await admin.ok<{ limits: unknown; budgets: unknown }>('POST', '/keys', { team_id: team.id });
    expect(key.limits).toEqual({ requests_per_minute: 10, max_concurrent: 4 });
    expect(key.budgets).toEqual([
      { period: 'day', max_tokens: 500 },
      { period: 'month', max_usd: 5 },
    ]);
    // A client that writes the team back whole, policy unchanged, is not refused for the policy.
    const echoed = await admin.ok<TeamLimits>('PATCH', `/teams/${team.id}`, {
      name: 'dkp-lower, renamed',
      limits: { requests_per_minute: 10 },
      default_key_policy: lowered.default_key_policy,
    });
    expect(echoed.default_key_policy).toEqual(lowered.default_key_policy);
    // Limits the caller sends are still held to the team's, and refused above them.
    expectRefused(
      await admin.call('POST', '/keys', { team_id: team.id, limits: { requests_per_minute: 20 } }),
      'limits.requests_per_minute',
      ['limits.requests_per_minute is 20', "the team's is 10"],
    );
  });

  it('update: a looser policy is refused; lowering both together, or dropping the policy, is accepted', async () => {
    const team = await admin.ok<TeamLimits>('POST', '/teams', {
      name: 'dkp-patch',
      limits: { tokens_per_minute: 1_000 },
      default_key_policy: { limits: { tokens_per_minute: 800 } },
    });
    expectRefused(
      await admin.call('PATCH', `/teams/${team.id}`, {
        default_key_policy: { limits: { tokens_per_minute: 2_000 } },
      }),
      'default_key_policy.limits.tokens_per_minute',
      ['default_key_policy.limits.tokens_per_minute is 2000', 'limits.tokens_per_minute is 1000'],
    );
    const both = await admin.ok<TeamLimits>('PATCH', `/teams/${team.id}`, {
      limits: { tokens_per_minute: 100 },
      default_key_policy: { limits: { tokens_per_minute: 100 } },
    });
    expect(both.limits).toEqual({ tokens_per_minute: 100 });
    const dropped = await admin.ok<TeamLimits>('PATCH', `/teams/${team.id}`, {
      limits: { tokens_per_minute: 10 },
      default_key_policy: null,
    });
    expect(dropped.default_key_policy).toBeNull();
    // Removing the team's limit altogether leaves the policy within it.
    await admin.ok('PATCH', `/teams/${team.id}`, {
      limits: null,
      default_key_policy: { limits: { tokens_per_minute: 5_000 } },
    });
    await admin.createKey({ team_id: team.id });
  });
});
