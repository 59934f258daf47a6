import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';

const ADMIN = 'test-admin-key-0123456789';
let gw: TestGateway;

async function call(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
  });
});
afterAll(async () => {
  await gw?.close();
});

describe('limits and budgets on teams and keys (admin API)', () => {
  it('sets, shows, changes and removes them; null removes one limit, null limits removes all', async () => {
    const team = await call('POST', '/teams', {
      name: 'limited',
      limits: { requests_per_minute: 600, tokens_per_minute: 100_000, max_concurrent: 20 },
      budgets: [{ period: 'month', max_usd: 500 }],
    });
    expect(team.status).toBe(201);
    expect(team.json.limits).toEqual({
      requests_per_minute: 600,
      tokens_per_minute: 100_000,
      max_concurrent: 20,
    });
    expect(team.json.budgets).toEqual([{ period: 'month', max_usd: 500 }]);
    const id = team.json.id as string;
    const patched = await call('PATCH', `/teams/${id}`, {
      limits: { requests_per_minute: null, requests_per_day: 10_000 },
    });
    expect(patched.json.limits).toEqual({
      tokens_per_minute: 100_000,
      max_concurrent: 20,
      requests_per_day: 10_000,
    });
    const cleared = await call('PATCH', `/teams/${id}`, { limits: null, budgets: null });
    expect(cleared.json.limits).toEqual({});
    expect(cleared.json.budgets).toEqual([]);
  });

  it("a key's limits and budgets can only be tighter than its team's", async () => {
    const team = await call('POST', '/teams', {
      name: 'parent',
      limits: { tokens_per_minute: 1_000 },
      budgets: [{ period: 'day', max_tokens: 50_000 }],
    });
    const teamId = team.json.id as string;
    const ok = await call('POST', '/keys', {
      team_id: teamId,
      limits: { tokens_per_minute: 500, max_concurrent: 2 },
      budgets: [{ period: 'day', max_tokens: 10_000 }],
    });
    expect(ok.status).toBe(201);
    expect(ok.json.limits).toEqual({ tokens_per_minute: 500, max_concurrent: 2 });
    const looser = await call('POST', '/keys', { team_id: teamId, limits: { tokens_per_minute: 5_000 } });
    expect(looser.status).toBe(400);
    expect(looser.json.error).toMatchObject({
      code: 'limit_exceeds_team',
      param: 'limits.tokens_per_minute',
    });
    const richer = await call('PATCH', `/keys/${ok.json.id}`, {
      budgets: [{ period: 'day', max_tokens: 60_000 }],
    });
    expect(richer.status).toBe(400);
    expect(richer.json.error).toMatchObject({ code: 'limit_exceeds_team', param: 'budgets[0].max_tokens' });
    const tighter = await call('PATCH', `/keys/${ok.json.id}`, {
      limits: { tokens_per_minute: 100, max_concurrent: null },
      budgets: [{ period: 'day', max_tokens: 5_000 }],
    });
    expect(tighter.status).toBe(200);
    expect(tighter.json.limits).toEqual({ tokens_per_minute: 100 });
    expect(tighter.json.budgets).toEqual([{ period: 'day', max_tokens: 5_000 }]);
    const reread = await call('GET', `/keys/${ok.json.id}`);
    expect(reread.json.limits).toEqual({ tokens_per_minute: 100 });
  });

  it("new keys take the team's default limits and budgets", async () => {
    const team = await call('POST', '/teams', {
      name: 'defaults',
      default_key_policy: {
        limits: { requests_per_minute: 60 },
        budgets: [{ period: 'lifetime', max_usd: 5 }],
      },
    });
    const key = await call('POST', '/keys', { team_id: team.json.id });
    expect(key.json.limits).toEqual({ requests_per_minute: 60 });
    expect(key.json.budgets).toEqual([{ period: 'lifetime', max_usd: 5 }]);
  });

  it('rejects malformed limits and budgets with the field named', async () => {
    const zero = await call('POST', '/teams', { name: 'x', limits: { max_concurrent: 0 } });
    expect(zero.status).toBe(400);
    expect((zero.json.error as { param: string }).param).toBe('limits.max_concurrent');
    const twice = await call('POST', '/teams', {
      name: 'x',
      budgets: [
        { period: 'day', max_tokens: 1 },
        { period: 'day', max_usd: 1 },
      ],
    });
    expect(twice.status).toBe(400);
    const empty = await call('POST', '/teams', { name: 'x', budgets: [{ period: 'month' }] });
    expect(empty.status).toBe(400);
    const unknown = await call('POST', '/teams', { name: 'x', limits: { requests_per_hour: 5 } });
    expect((unknown.json.error as { param: string }).param).toBe('limits.requests_per_hour');
  });
});
