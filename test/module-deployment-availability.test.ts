import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * `GET /admin/deployments` and `/readyz` agree on a module backend: a module does not probe a
 * server of its own, so its deployments show an `availability` only while it says it cannot take
 * requests (`unavailableForMs`), never an "available" that its failing health check contradicts.
 */

let gw: TestGateway | undefined;
let moduleDir: string;

beforeAll(() => {
  moduleDir = mkdtempSync(join(tmpdir(), 'tollgate-module-availability-'));
  writeFileSync(
    join(moduleDir, 'unhealthy.mjs'),
    `export default function createBackend(name, options) {
  return {
    supports: (endpoint) => endpoint === 'chat.completions',
    send: async () => { throw new Error('not used'); },
    checkHealth: async () => { throw new Error('its service is gone'); },
    ...(options.waitMs ? { unavailableForMs: () => options.waitMs } : {}),
  };
}
`,
  );
});

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

interface Report {
  backends: Record<string, { ok: boolean; error?: string; retry_after_ms?: number }>;
}

async function start() {
  const module = join(moduleDir, 'unhealthy.mjs');
  gw = await startGateway({
    admin: { key: TEST_ADMIN_KEY },
    readiness: { cacheMs: 0 },
    backends: {
      sick: { type: 'module', module },
      resting: { type: 'module', module, options: { waitMs: 5_000 } },
    },
    models: { sick: { backend: 'sick' }, resting: { backend: 'resting' } },
  });
  const admin = new AdminHttp(gw.url);
  const deployments = await admin.ok<{
    data: Array<{ backend: string; availability?: Record<string, unknown> }>;
  }>('GET', '/deployments', undefined, 200);
  const readyz = (await (await fetch(`${gw.url}/readyz`)).json()) as Report;
  return { byBackend: new Map(deployments.data.map((entry) => [entry.backend, entry])), readyz };
}

describe('a module backend in GET /admin/deployments', () => {
  it('whose health check fails: /readyz says so, and its deployment claims no availability', async () => {
    const { byBackend, readyz } = await start();
    expect(readyz.backends.sick?.ok).toBe(false);
    expect(byBackend.get('sick')).toBeDefined();
    expect(byBackend.get('sick')?.availability).toBeUndefined();
  });

  it('that says it cannot take requests: unavailable in both', async () => {
    const { byBackend, readyz } = await start();
    expect(readyz.backends.resting).toMatchObject({ ok: false, retry_after_ms: 5_000 });
    expect(byBackend.get('resting')?.availability).toMatchObject({
      state: 'unavailable',
      retry_after_ms: 5_000,
      checked_at: null,
    });
  });
});
