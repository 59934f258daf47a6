import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli-process.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * The built CLI against the real admin API (test/cli.test.ts pins the documented contract with
 * a stand-in): what `teams list` and `teams get` print comes from what the gateway returns.
 */
const ADMIN = 'test-admin-key-0123456789';
let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
  });
});
afterAll(() => gw.close());

const tollgate = (...args: string[]) => runCli(args, { TOLLGATE_URL: gw.url, TOLLGATE_ADMIN_KEY: ADMIN });

describe('tollgate teams against a real gateway', () => {
  it('list shows only what list pages carry (no "undefined"); get shows the active keys', async () => {
    const created = await tollgate('teams', 'create', '--name', 'research', '--json');
    expect(created.code).toBe(0);
    const team = JSON.parse(created.stdout) as { id: string };
    expect((await tollgate('keys', 'create', '--team', team.id, '--json')).code).toBe(0);

    const list = await tollgate('teams', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).not.toContain('undefined');
    const [header, row] = list.stdout.trimEnd().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['ID', 'NAME', 'MODELS', 'CREATED']);
    expect(row).toMatch(new RegExp(`^${team.id}\\s+research\\s+\\* \\(all\\)\\s+\\d{4}-\\d{2}-\\d{2}$`));

    const get = await tollgate('teams', 'get', team.id);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/^active keys:\s+1$/m);
  });
});
