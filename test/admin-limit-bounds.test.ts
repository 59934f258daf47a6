import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import type { TestGateway } from './support/gateway.js';

/**
 * Every limit, budget and time the admin API stores must stay usable afterwards: budgets are
 * counted in exact integer micro-dollars and times become JavaScript dates, so values past what
 * those can hold are refused when they are set (400 naming the field), not found out later by a
 * 500 on every request of the team.
 */
let gw: TestGateway;
let admin: AdminHttp;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** 9999-12-31T23:59:59Z in Unix seconds: the latest time the API takes. */
const LAST_SECOND = 253_402_300_799;
const HUNDRED_YEARS = 100 * 365 * 86_400;

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway());
});
afterAll(() => gw.close());

function expectInvalid(response: { status: number; body: unknown }, param: string): string {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  const error = expectEnvelope(response.body, { type: 'invalid_request_error', code: null, param });
  expect(error.message).toContain(`'${param}'`);
  return error.message;
}

async function chat(key: string): Promise<number> {
  const response = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }),
  });
  await response.arrayBuffer();
  return response.status;
}

describe('max_usd within what a budget can count', () => {
  const huge = [{ period: 'day', max_usd: 1e12 }];

  it('a max_usd too large for micro-dollar counting is refused wherever a budget goes', async () => {
    expectInvalid(await admin.call('POST', '/teams', { name: 'rich', budgets: huge }), 'budgets[0].max_usd');
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'rich', default_key_policy: { budgets: huge } }),
      'default_key_policy.budgets[0].max_usd',
    );
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'rich', model_limits: { mock: { budgets: huge } } }),
      'model_limits.mock.budgets[0].max_usd',
    );
    const team = await admin.createTeam({ name: 'plain' });
    expectInvalid(await admin.call('PATCH', `/teams/${team.id}`, { budgets: huge }), 'budgets[0].max_usd');
    expectInvalid(
      await admin.call('POST', '/keys', { team_id: team.id, budgets: huge }),
      'budgets[0].max_usd',
    );
    const key = await admin.createKey({ team_id: team.id });
    expectInvalid(await admin.call('PATCH', `/keys/${key.id}`, { budgets: huge }), 'budgets[0].max_usd');
    // Nothing refused was stored: the team and its key still answer and serve.
    expect((await admin.call('GET', `/teams/${team.id}`)).status).toBe(200);
    expect(await chat(key.key)).toBe(200);
  });

  it('the largest max_usd and the largest integer limits are stored and keep the team serving', async () => {
    const limits = {
      requests_per_minute: MAX_SAFE,
      requests_per_day: MAX_SAFE,
      tokens_per_minute: MAX_SAFE,
      max_concurrent: MAX_SAFE,
    };
    const budgets = [{ period: 'day', max_tokens: MAX_SAFE, max_usd: 1_000_000_000 }];
    const team = await admin.createTeam({
      name: 'ceiling',
      limits,
      budgets,
      model_limits: { mock: { limits, budgets } },
    });
    const key = await admin.createKey({ team_id: team.id, limits, budgets });
    expect(await chat(key.key)).toBe(200);
    expect((await admin.call('GET', `/teams/${team.id}`)).status).toBe(200);
    expect((await admin.call('GET', `/keys/${key.id}`)).status).toBe(200);
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'x', budgets: [{ period: 'day', max_usd: 1_000_000_001 }] }),
      'budgets[0].max_usd',
    );
  });

  it('integer limits past the safe-integer range are refused, naming the field', async () => {
    for (const name of ['requests_per_minute', 'requests_per_day', 'tokens_per_minute', 'max_concurrent']) {
      expectInvalid(
        await admin.call('POST', '/teams', { name: 'x', limits: { [name]: MAX_SAFE + 1 } }),
        `limits.${name}`,
      );
    }
    expectInvalid(
      await admin.call('POST', '/teams', { name: 'x', budgets: [{ period: 'month', max_tokens: 2 ** 60 }] }),
      'budgets[0].max_tokens',
    );
  });

  it('a max_usd under one micro-dollar (which would round to a budget of 0) is refused', async () => {
    const message = expectInvalid(
      await admin.call('POST', '/teams', { name: 'x', budgets: [{ period: 'day', max_usd: 1e-9 }] }),
      'budgets[0].max_usd',
    );
    expect(message).toContain('0.000001');
    const team = await admin.createTeam({ name: 'frugal', budgets: [{ period: 'day', max_usd: 0.000001 }] });
    expect((team as unknown as { budgets: unknown }).budgets).toEqual([{ period: 'day', max_usd: 0.000001 }]);
  });
});

describe('times within what a date can hold', () => {
  it('expires_at past the year 9999 is refused on create and update, saying it is in seconds', async () => {
    const team = await admin.createTeam({ name: 'clock' });
    const millis = 9_000_000_000_000;
    const created = expectInvalid(
      await admin.call('POST', '/keys', { team_id: team.id, expires_at: millis }),
      'expires_at',
    );
    expect(created).toContain('seconds');
    expect(created).toContain('milliseconds');
    const key = await admin.createKey({ team_id: team.id });
    expectInvalid(
      await admin.call('PATCH', `/keys/${key.id}`, { expires_at: LAST_SECOND + 1 }),
      'expires_at',
    );
    expect((await admin.call<{ expires_at: null }>('GET', `/keys/${key.id}`)).body.expires_at).toBeNull();
    const last = await admin.ok<{ expires_at: number }>('PATCH', `/keys/${key.id}`, {
      expires_at: LAST_SECOND,
    });
    expect(last.expires_at).toBe(LAST_SECOND);
  });

  it('default_key_policy.expires_in_seconds is at most a hundred years', async () => {
    expectInvalid(
      await admin.call('POST', '/teams', {
        name: 'x',
        default_key_policy: { expires_in_seconds: 9_000_000_000_000 },
      }),
      'default_key_policy.expires_in_seconds',
    );
    const team = await admin.createTeam({
      name: 'long',
      default_key_policy: { expires_in_seconds: HUNDRED_YEARS },
    });
    expectInvalid(
      await admin.call('PATCH', `/teams/${team.id}`, {
        default_key_policy: { expires_in_seconds: HUNDRED_YEARS + 1 },
      }),
      'default_key_policy.expires_in_seconds',
    );
    const key = await admin.createKey({ team_id: team.id });
    expect(key.expires_at).toBeGreaterThan(key.created_at + HUNDRED_YEARS - 10);
    expect(key.expires_at).toBeLessThanOrEqual(LAST_SECOND);
  });
});
