import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import type { TestGateway } from './support/gateway.js';

/**
 * A team's limits on one model are spent like its own: `GET /admin/teams/{id}` shows where each
 * stands, next to the team's, so a model budget running out can be seen before it refuses.
 */
let gw: TestGateway;
let admin: AdminHttp;

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway({ mock: { backend: 'mock' }, other: { backend: 'mock' } }));
});
afterAll(() => gw.close());

interface BudgetStanding {
  period: string;
  max_tokens: number;
  spent_tokens: number;
  reserved_tokens: number;
  remaining_tokens: number;
}
interface TeamWithStanding {
  standing: {
    budgets: BudgetStanding[];
    model_limits?: Record<string, { budgets: BudgetStanding[]; concurrency?: { limit: number } }>;
  };
}

describe("a team's standing per model", () => {
  it('shows each model limit, spent by that model only', async () => {
    const team = await admin.createTeam({
      name: 'per-model',
      model_limits: {
        mock: { budgets: [{ period: 'day', max_tokens: 10_000 }], limits: { max_concurrent: 3 } },
        other: { budgets: [{ period: 'month', max_tokens: 5_000 }] },
      },
    });
    const key = await admin.createKey({ team_id: team.id });
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mock',
        max_tokens: 20,
        messages: [{ role: 'user', content: 'hello there' }],
      }),
    });
    const used = ((await response.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
    // The answer settles just after it is sent: read until nothing is reserved any more.
    let standing: TeamWithStanding['standing'];
    do {
      standing = (await admin.ok<TeamWithStanding>('GET', `/teams/${team.id}`)).standing;
    } while (standing.model_limits?.mock?.budgets[0]?.reserved_tokens !== 0);
    expect(standing.budgets).toEqual([]);
    expect(standing.model_limits?.mock).toMatchObject({
      concurrency: { limit: 3 },
      budgets: [{ period: 'day', max_tokens: 10_000, spent_tokens: used, remaining_tokens: 10_000 - used }],
    });
    expect(standing.model_limits?.other?.budgets).toMatchObject([
      { period: 'month', max_tokens: 5_000, spent_tokens: 0, remaining_tokens: 5_000 },
    ]);
  });

  it('is absent for a team without model limits', async () => {
    const team = await admin.createTeam({ name: 'no-model-limits' });
    const { standing } = await admin.ok<TeamWithStanding>('GET', `/teams/${team.id}`);
    expect(standing).toEqual({ budgets: [] });
  });
});
