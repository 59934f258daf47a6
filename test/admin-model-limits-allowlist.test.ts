import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminGateway } from './support/admin-gateway.js';
import type { AdminHttp } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import type { TestGateway } from './support/gateway.js';

/**
 * A team's `model_limits` may only name models the team may use: a limit on any other would bind
 * nothing while reading as if it did, so it is refused with a 400 that names the model.
 */
let gw: TestGateway;
let admin: AdminHttp;

beforeAll(async () => {
  ({ gw, admin } = await startAdminGateway({
    mock: { backend: 'mock' },
    'gpt-test': { backend: 'mock' },
    'org/model-a': { backend: 'mock' },
  }));
});
afterAll(() => gw.close());

const limit = { limits: { max_concurrent: 2 } };

function expectRefused(response: { status: number; body: unknown }, model: string): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  const error = expectEnvelope(response.body, {
    type: 'invalid_request_error',
    code: 'model_not_allowed',
    param: 'model_limits',
  });
  expect(error.message).toContain(`'${model}'`);
}

describe('model_limits within the team’s models', () => {
  it('create: a model outside the team’s list is refused, naming it; one inside (or under prefix/*) is kept', async () => {
    expectRefused(
      await admin.call('POST', '/teams', {
        name: 'a',
        models: ['mock'],
        model_limits: { 'gpt-test': limit },
      }),
      'gpt-test',
    );
    const team = await admin.ok<{ model_limits: unknown }>('POST', '/teams', {
      name: 'b',
      models: ['mock', 'org/*'],
      model_limits: { mock: limit, 'org/model-a': limit },
    });
    expect(team.model_limits).toEqual({ mock: limit, 'org/model-a': limit });
    // Every model allowed: any name may carry limits.
    await admin.ok('POST', '/teams', { name: 'c', model_limits: { 'gpt-test': limit } });
  });

  it('update: new model_limits, or models narrowed under existing ones, are refused; nothing changes', async () => {
    const team = await admin.ok<{ id: string }>('POST', '/teams', {
      name: 'd',
      models: ['mock', 'gpt-test'],
      model_limits: { 'gpt-test': limit },
    });
    expectRefused(
      await admin.call('PATCH', `/teams/${team.id}`, { model_limits: { 'org/model-a': limit } }),
      'org/model-a',
    );
    expectRefused(await admin.call('PATCH', `/teams/${team.id}`, { models: ['mock'] }), 'gpt-test');
    const unchanged = await admin.ok<{ models: string[]; model_limits: unknown }>('GET', `/teams/${team.id}`);
    expect(unchanged).toMatchObject({ models: ['mock', 'gpt-test'], model_limits: { 'gpt-test': limit } });
    // Narrowing together with removing the entry is accepted.
    const narrowed = await admin.ok<{ models: string[]; model_limits: unknown }>(
      'PATCH',
      `/teams/${team.id}`,
      {
        models: ['mock'],
        model_limits: null,
      },
    );
    expect(narrowed).toMatchObject({ models: ['mock'], model_limits: {} });
  });
});
