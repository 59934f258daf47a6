import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type CliResult, runCli } from './support/cli-process.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * The built CLI against a real gateway: a URL that is not the admin API (the `/v1` base URL API
 * clients use) must not read as exit 3, "no such team or key"; and an id the gateway does not know
 * must not read as a team or key with nothing to show.
 */
let gw: TestGateway;
let admin: AdminHttp;

beforeAll(async () => {
  gw = await startGateway({
    auth: {},
    admin: { key: TEST_ADMIN_KEY },
    cache: { enabled: true },
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
  });
  admin = new AdminHttp(gw.url);
});
afterAll(() => gw.close());

function tollgate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, { TOLLGATE_URL: gw.url, TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY, ...env });
}

describe('a URL that is not the gateway’s admin API', () => {
  it('the /v1 base URL: exit 1, says so, and says which URL to give instead', async () => {
    const team = await admin.createTeam({ name: 'wrong-url' });
    const key = await admin.createKey({ team_id: team.id });
    for (const [args, env] of [
      [['keys', 'revoke', key.id, '--url', `${gw.url}/v1`], {}],
      [['keys', 'get', key.id], { TOLLGATE_URL: `${gw.url}/v1/` }],
      [['teams', 'list', '--url', `${gw.url}/v1`], {}],
    ] as const) {
      const result = await tollgate([...args], env);
      const name = args.join(' ');
      expect(result.code, name).toBe(1);
      expect(result.stdout, name).toBe('');
      expect(result.stderr, name).toContain(`${gw.url}/v1/ is not the gateway's admin API`);
      expect(result.stderr, name).toContain('(unknown_url, HTTP 404)');
      expect(result.stderr, name).toContain(
        `hint: drop the trailing /v1: the CLI wants the gateway's root, ${gw.url}/`,
      );
    }
    // Nothing happened to the key, as the message says.
    expect((await admin.ok<{ status: string }>('GET', `/keys/${key.id}`)).status).toBe('active');
  });

  it('another path: exit 1, with the general hint', async () => {
    const result = await tollgate(['teams', 'list', '--url', `${gw.url}/gateway`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${gw.url}/gateway/ is not the gateway's admin API`);
    expect(result.stderr).toContain("hint: give the gateway's root URL");
  });

  it('a real "no such key" still exits 3', async () => {
    const result = await tollgate(['keys', 'revoke', '0mxdutgxm000sledsi']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('(key_not_found, HTTP 404)');
  });

  describe('a server that is not a gateway at all', () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      // A reverse proxy's or web server's own 404 page.
      server = createServer((_request, response) => {
        response.writeHead(404, { 'content-type': 'text/html' });
        response.end('<html><body>Not Found</body></html>');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('answering 404 to everything: exit 1, not "no such key"', async () => {
      const result = await tollgate(['keys', 'revoke', '0mxdutgxm000sledsi', '--url', url]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`${url}/ is not the gateway's admin API`);
    });
  });
});

describe('an id the gateway does not know', () => {
  it('keys list --team: exit 3 "no such team", in --json too; a team with no keys is still "No keys."', async () => {
    for (const json of [[], ['--json']]) {
      const result = await tollgate(['keys', 'list', '--team', 'team_nonexistent', ...json]);
      expect(result.code, json.join('')).toBe(3);
      expect(result.stdout, json.join('')).toBe('');
      expect(result.stderr).toContain("No team with id 'team_nonexistent'. (team_not_found, HTTP 404)");
    }
    const team = await admin.createTeam({ name: 'keyless' });
    const empty = await tollgate(['keys', 'list', '--team', team.id]);
    expect(empty.stderr).toBe('');
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe('No keys.\n');
  });

  it('cache stats and cache purge with --team or --key: exit 3; a known empty scope is a zero row', async () => {
    for (const args of [
      ['cache', 'stats', '--team', 'team_nonexistent'],
      ['cache', 'stats', '--team', 'team_nonexistent', '--json'],
      ['cache', 'purge', '--team', 'team_nonexistent'],
    ]) {
      const result = await tollgate(args);
      expect(result.code, args.join(' ')).toBe(3);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toContain('team_not_found');
    }
    for (const args of [
      ['cache', 'stats', '--key', '0mxdutgxm000sledsi'],
      ['cache', 'purge', '--key', '0mxdutgxm000sledsi'],
    ]) {
      const result = await tollgate(args);
      expect(result.code, args.join(' ')).toBe(3);
      expect(result.stderr, args.join(' ')).toContain('key_not_found');
    }
    const team = await admin.createTeam({ name: 'uncached' });
    const stats = await tollgate(['cache', 'stats', '--team', team.id]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(new RegExp(`^team:${team.id}\\s+0\\s+0 B$`, 'm'));
    const purge = await tollgate(['cache', 'purge', '--team', team.id]);
    expect(purge.code).toBe(0);
    expect(purge.stdout).toBe('Purged 0 cache entries.\n');
  });

  it('usage --team or --key: exit 3; an empty report says so instead of printing a lone header', async () => {
    const unknownTeam = await tollgate(['usage', '--team', 'team_nonexistent']);
    expect(unknownTeam.code).toBe(3);
    expect(unknownTeam.stderr).toContain('team_not_found');
    const unknownKey = await tollgate(['usage', '--key', '0mxdutgxm000sledsi']);
    expect(unknownKey.code).toBe(3);
    expect(unknownKey.stderr).toContain('key_not_found');

    const team = await admin.createTeam({ name: 'idle' });
    const idle = await tollgate(['usage', '--team', team.id, '--from', '2026-01-01', '--to', '2026-01-31']);
    expect(idle.stderr).toBe('');
    expect(idle.code).toBe(0);
    expect(idle.stdout).toBe('Usage 2026-01-01 .. 2026-01-31 (UTC), by day\nNo usage in this range.\n');
  });
});

describe('the ids in --help examples', () => {
  it('have the form of the ids the gateway hands out', async () => {
    const team = await admin.createTeam({ name: 'ids' });
    const key = await admin.createKey({ team_id: team.id });
    const TEAM_ID = /^team_[0-9a-z]{20}$/;
    const KEY_ID = /^[0-9a-z]{18}$/;
    expect(team.id).toMatch(TEAM_ID);
    expect(key.id).toMatch(KEY_ID);

    const commands = [
      [],
      ['keys'],
      ['keys', 'create'],
      ['keys', 'list'],
      ['keys', 'get'],
      ['keys', 'update'],
      ['keys', 'rotate'],
      ['keys', 'revoke'],
      ['teams'],
      ['teams', 'get'],
      ['teams', 'update'],
      ['teams', 'delete'],
      ['cache'],
      ['cache', 'stats'],
      ['cache', 'purge'],
      ['usage'],
    ];
    let keyIds = 0;
    let teamIds = 0;
    for (const command of commands) {
      const help = (await runCli([...command, '--help'])).stdout;
      for (const line of help.split('\n').filter((text) => text.trimStart().startsWith('$ tollgate'))) {
        for (const [, id] of line.matchAll(/(?:keys (?:get|update|rotate|revoke)|--key) (\S+)/g)) {
          expect(id, line).toMatch(KEY_ID);
          keyIds++;
        }
        for (const [, id] of line.matchAll(/(?:teams (?:get|update|delete)|--team) (\S+)/g)) {
          expect(id, line).toMatch(TEAM_ID);
          teamIds++;
        }
      }
    }
    expect(keyIds).toBeGreaterThan(5);
    expect(teamIds).toBeGreaterThan(5);
  });
});
