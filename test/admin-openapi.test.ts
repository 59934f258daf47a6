import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './support/gateway.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({
    auth: {},
    admin: { key: 'test-admin-key-0123456789' },
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
  });
});
afterAll(async () => {
  await gw?.close();
});

interface OpenApi {
  openapi: string;
  paths: Record<
    string,
    Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>
  >;
}

describe('GET /admin/openapi.json', () => {
  it('describes every admin operation, from the schemas the handlers validate with, without the admin key', async () => {
    const response = await fetch(`${gw.url}/admin/openapi.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as OpenApi;
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(operations.sort()).toEqual(
      [
        'DELETE /cache',
        'DELETE /keys/{id}',
        'DELETE /teams/{id}',
        'GET /audit',
        'GET /cache',
        'GET /deployments',
        'GET /metrics',
        'GET /requests',
        'GET /usage',
        'GET /keys',
        'GET /keys/{id}',
        'GET /teams',
        'GET /teams/{id}',
        'PATCH /keys/{id}',
        'PATCH /teams/{id}',
        'POST /keys',
        'POST /keys/{id}/rotate',
        'POST /backends/{name}/refresh',
        'POST /teams',
      ].sort(),
    );
    const createTeam = doc.paths['/teams']?.post?.requestBody?.content['application/json']?.schema;
    expect(createTeam?.required).toEqual(['name']);
    expect(createTeam?.additionalProperties).toBe(false);
    const createKey = doc.paths['/keys']?.post?.requestBody?.content['application/json']?.schema;
    expect(createKey?.required).toEqual(['team_id']);
  });

  it('the rest of /admin still needs the admin key', async () => {
    expect((await fetch(`${gw.url}/admin/teams`)).status).toBe(401);
  });
});
