import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApiKey, ApiKeyWithSecret, ListPage, Team } from '../src/cli/admin-types.js';
import { type CliResult, runCli } from './support/cli-process.js';
import {
  type FakeAdminServer,
  type RecordedRequest,
  startFakeAdminServer,
} from './support/fake-admin-server.js';
import { REFUSED_ORIGIN } from './support/refused-port.js';

const DAY = 86_400;

let server: FakeAdminServer;

beforeAll(async () => {
  server = await startFakeAdminServer();
});
afterAll(() => server.close());
beforeEach(() => server.reset());

/** Runs `tollgate` pointed at the fake server; `env` values of undefined unset a variable. */
function tollgate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, { TOLLGATE_URL: server.url, TOLLGATE_ADMIN_KEY: server.adminKey, ...env });
}

/** Seeds the fake directly over HTTP, so each test spends its CLI runs on what it checks. */
async function api<T>(method: string, path: string, body?: object): Promise<T> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as T;
  if (!response.ok) throw new Error(`seeding ${method} ${path} failed: ${JSON.stringify(json)}`);
  return json;
}

/** The requests the CLI made (seeding requests excluded). */
function cliRequests(since: number): RecordedRequest[] {
  return server.requests.slice(since);
}

async function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult & { requests: RecordedRequest[] }> {
  const since = server.requests.length;
  const result = await tollgate(args, env);
  return { ...result, requests: cliRequests(since) };
}

function only(requests: RecordedRequest[]): RecordedRequest {
  expect(requests).toHaveLength(1);
  const [request] = requests;
  if (!request) throw new Error('no request');
  return request;
}

function expectNoStack(result: CliResult): void {
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stdout).not.toMatch(/\n\s+at /);
}

/** Each row's cells start at the header's column: the table is aligned. */
function expectAligned(table: string, headers: string[]): string[] {
  const lines = table.trimEnd().split('\n');
  const header = lines[0] ?? '';
  const starts = headers.map((name) => header.indexOf(name));
  expect(starts.every((start) => start >= 0)).toBe(true);
  for (const line of lines.slice(1)) {
    for (const start of starts.slice(1)) {
      expect(line[start - 1]).toBe(' ');
      expect(line[start]).not.toBe(' ');
    }
  }
  return lines;
}

describe('tollgate teams', () => {
  it('create sends the documented body with the admin key and prints the team', async () => {
    const result = await run([
      'teams',
      'create',
      '--name',
      'research',
      '--models',
      'gpt-4o, gpt-4o-mini',
      '--metadata',
      'cost_center=42',
      '--metadata',
      'note=a=b',
      '--key-expires-in',
      '30d',
      '--key-models',
      'gpt-4o-mini',
    ]);
    expect(result.code).toBe(0);
    const request = only(result.requests);
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/admin/teams');
    expect(request.authorization).toBe(`Bearer ${server.adminKey}`);
    expect(request.contentType).toBe('application/json');
    expect(request.body).toEqual({
      name: 'research',
      models: ['gpt-4o', 'gpt-4o-mini'],
      default_key_policy: { models: ['gpt-4o-mini'], expires_in_seconds: 30 * DAY },
      metadata: { cost_center: '42', note: 'a=b' },
    });
    expect(result.stdout).toContain('Created team team_0001.');
    expect(result.stdout).toMatch(/^id:\s+team_0001$/m);
    expect(result.stdout).toMatch(/^models:\s+gpt-4o, gpt-4o-mini$/m);
    expect(result.stdout).toMatch(/^key policy:\s+models gpt-4o-mini; expire after 30d$/m);
    expect(result.stdout).toMatch(/^metadata:\s+cost_center=42, note=a=b$/m);
    expect(result.stdout).toMatch(/^created:\s+2025-06-15T15:06:40Z$/m);
  });

  it('create sends only the name when nothing else is given, and --json prints the body as sent', async () => {
    const result = await run(['teams', 'create', '--name', 'minimal', '--json']);
    expect(result.code).toBe(0);
    const request = only(result.requests);
    expect(request.body).toEqual({ name: 'minimal' });
    expect(result.stdout).toBe(`${request.response}\n`);
    expect((JSON.parse(result.stdout) as Team).models).toEqual(['*']);
  });

  it('list prints an aligned table, and --json the list object', async () => {
    await api('POST', '/admin/teams', { name: 'research', models: ['gpt-4o', 'gpt-4o-mini'] });
    await api('POST', '/admin/teams', { name: 'support team', models: ['a', 'b', 'c', 'd', 'e'] });
    await api('POST', '/admin/teams', { name: 'x' });
    const result = await run(['teams', 'list']);
    expect(result.code).toBe(0);
    const request = only(result.requests);
    expect(request.method).toBe('GET');
    expect(request.path).toBe('/admin/teams');
    expect(request.query).toEqual({});
    // List pages have no active_keys: the table shows only what they have, never "undefined".
    expect((JSON.parse(request.response) as ListPage<Team>).data[0]).not.toHaveProperty('active_keys');
    const lines = expectAligned(result.stdout, ['ID', 'NAME', 'MODELS', 'CREATED']);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^team_0001\s+research\s+gpt-4o, gpt-4o-mini\s+2025-06-15$/);
    expect(lines[2]).toMatch(/^team_0002\s+support team\s+a, b, c \+2\s+2025-06-15$/);
    expect(lines[3]).toMatch(/^team_0003\s+x\s+\* \(all\)\s+2025-06-15$/);
    expect(result.stdout).not.toContain('undefined');
    expect(result.stderr).toBe('');

    const json = await run(['teams', 'list', '--json']);
    expect(json.stdout).toBe(`${only(json.requests).response}\n`);
    expect((JSON.parse(json.stdout) as ListPage<Team>).data).toHaveLength(3);
  });

  it('list pages with --limit/--after, and --all follows has_more', async () => {
    for (const name of ['a', 'b', 'c']) await api('POST', '/admin/teams', { name });
    const first = await run(['teams', 'list', '--limit', '2']);
    expect(only(first.requests).query).toEqual({ limit: '2' });
    expect(first.stdout.trimEnd().split('\n')).toHaveLength(3);
    expect(first.stderr).toContain('--after team_0002');

    const next = await run(['teams', 'list', '--limit', '2', '--after', 'team_0002']);
    expect(only(next.requests).query).toEqual({ limit: '2', after: 'team_0002' });

    const all = await run(['teams', 'list', '--limit', '2', '--all', '--json']);
    expect(all.code).toBe(0);
    expect(all.requests.map((r) => r.query)).toEqual([{ limit: '2' }, { limit: '2', after: 'team_0002' }]);
    const page = JSON.parse(all.stdout) as ListPage<Team>;
    expect(page.data.map((team) => team.name)).toEqual(['a', 'b', 'c']);
    expect(page).toMatchObject({
      object: 'list',
      first_id: 'team_0001',
      last_id: 'team_0003',
      has_more: false,
    });
  });

  it('get shows one team; an unknown id exits 3 with the API message and code', async () => {
    await api('POST', '/admin/teams', {
      name: 'research',
      default_key_policy: { expires_in_seconds: 3600 },
      metadata: { a: '1' },
    });
    const found = await run(['teams', 'get', 'team_0001']);
    expect(found.code).toBe(0);
    expect(only(found.requests)).toMatchObject({ method: 'GET', path: '/admin/teams/team_0001' });
    expect(found.stdout).toMatch(/^name:\s+research$/m);
    expect(found.stdout).toMatch(/^key policy:\s+expire after 1h$/m);
    expect(found.stdout).toMatch(/^active keys:\s+0$/m);

    const missing = await run(['teams', 'get', 'team_nope']);
    expect(missing.code).toBe(3);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain("No team 'team_nope'.");
    expect(missing.stderr).toContain('team_not_found');
    expectNoStack(missing);
  });

  it('update sends only the fields given; clears map to null and {}; nothing to update is a usage error', async () => {
    await api('POST', '/admin/teams', { name: 'research', metadata: { a: '1' } });
    const renamed = await run([
      'teams',
      'update',
      'team_0001',
      '--name',
      'Research EU',
      '--key-expires-in',
      '7d',
    ]);
    expect(renamed.code).toBe(0);
    expect(only(renamed.requests)).toMatchObject({
      method: 'PATCH',
      path: '/admin/teams/team_0001',
      body: { name: 'Research EU', default_key_policy: { expires_in_seconds: 7 * DAY } },
    });
    expect(renamed.stdout).toContain('Updated team team_0001.');

    const cleared = await run([
      'teams',
      'update',
      'team_0001',
      '--models',
      '*',
      '--clear-key-policy',
      '--clear-metadata',
    ]);
    expect(cleared.code).toBe(0);
    expect(only(cleared.requests).body).toEqual({ models: ['*'], default_key_policy: null, metadata: {} });

    const empty = await run(['teams', 'update', 'team_0001']);
    expect(empty.code).toBe(2);
    expect(empty.requests).toHaveLength(0);
    expect(empty.stderr).toContain('nothing to update');

    const conflicting = await run([
      'teams',
      'update',
      'team_0001',
      '--clear-key-policy',
      '--key-expires-in',
      '1d',
    ]);
    expect(conflicting.code).toBe(2);
    expect(conflicting.requests).toHaveLength(0);
  });

  it('delete is refused (exit 1, with a hint) while keys are active, and --force sends force=true', async () => {
    await api('POST', '/admin/teams', { name: 'research' });
    await api('POST', '/admin/keys', { team_id: 'team_0001' });
    const refused = await run(['teams', 'delete', 'team_0001']);
    expect(refused.code).toBe(1);
    expect(only(refused.requests)).toMatchObject({
      method: 'DELETE',
      path: '/admin/teams/team_0001',
      query: {},
    });
    expect(refused.stderr).toContain('team_has_active_keys');
    expect(refused.stderr).toContain('HTTP 409');
    expect(refused.stderr).toContain('--force');
    expectNoStack(refused);

    const forced = await run(['teams', 'delete', 'team_0001', '--force']);
    expect(forced.code).toBe(0);
    expect(only(forced.requests)).toMatchObject({ method: 'DELETE', query: { force: 'true' } });
    expect(forced.stdout).toBe('Deleted team team_0001.\n');

    const gone = await run(['teams', 'delete', 'team_0001', '--json']);
    expect(gone.code).toBe(3);
  });
});

describe('tollgate keys', () => {
  beforeEach(async () => {
    await api('POST', '/admin/teams', { name: 'research', models: ['gpt-4o', 'gpt-4o-mini'] });
  });

  it('create sends every field, prints the secret once with a warning, and exits 0', async () => {
    const result = await run([
      'keys',
      'create',
      '--team',
      'team_0001',
      '--name',
      'ci',
      '--owner',
      'alice@example.com',
      '--models',
      'gpt-4o-mini',
      '--expires-at',
      '2030-01-01',
      '--metadata',
      'ticket=OPS-1',
    ]);
    expect(result.code).toBe(0);
    const request = only(result.requests);
    expect(request).toMatchObject({ method: 'POST', path: '/admin/keys' });
    expect(request.authorization).toBe(`Bearer ${server.adminKey}`);
    expect(request.body).toEqual({
      team_id: 'team_0001',
      name: 'ci',
      owner: 'alice@example.com',
      models: ['gpt-4o-mini'],
      expires_at: 1_893_456_000,
      metadata: { ticket: 'OPS-1' },
    });
    const secret = server.secrets.get('key_0002');
    expect(secret).toMatch(/^tg-key_0002-/);
    expect(result.stdout.split(secret ?? '')).toHaveLength(2);
    expect(result.stdout).toMatch(new RegExp(`^ {4}${secret}$`, 'm'));
    expect(result.stdout).toContain('will not be shown again');
    expect(result.stdout).toMatch(/^expires:\s+2030-01-01T00:00:00Z$/m);
    expect(result.stdout).toMatch(/^preview:\s+tg-key_0002-…$/m);
  });

  it('--expires-at takes +durations, Unix seconds and ISO date-times; nonsense is a usage error', async () => {
    const before = Math.floor(Date.now() / 1000);
    const relative = await run(['keys', 'create', '--team', 'team_0001', '--expires-at', '+30d']);
    const after = Math.floor(Date.now() / 1000);
    expect(relative.code).toBe(0);
    const expiresAt = (only(relative.requests).body as { expires_at: number }).expires_at;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 30 * DAY);
    expect(expiresAt).toBeLessThanOrEqual(after + 30 * DAY);

    const unix = await run(['keys', 'create', '--team', 'team_0001', '--expires-at', '1893456000']);
    expect((only(unix.requests).body as { expires_at: number }).expires_at).toBe(1_893_456_000);

    const zoned = await run([
      'keys',
      'create',
      '--team',
      'team_0001',
      '--expires-at',
      '2030-01-01T02:00:00+02:00',
    ]);
    expect((only(zoned.requests).body as { expires_at: number }).expires_at).toBe(1_893_456_000);

    for (const bad of ['soon', '+3x', '1893456000000']) {
      const result = await run(['keys', 'create', '--team', 'team_0001', '--expires-at', bad]);
      expect(result.code).toBe(2);
      expect(result.requests).toHaveLength(0);
      expect(result.stderr).toContain('--expires-at');
    }
  });

  it('create --json prints the body (secret included) exactly; a model outside the team exits 1', async () => {
    const json = await run(['--json', 'keys', 'create', '--team', 'team_0001']);
    expect(json.code).toBe(0);
    expect(only(json.requests).body).toEqual({ team_id: 'team_0001' });
    expect(json.stdout).toBe(`${only(json.requests).response}\n`);
    expect((JSON.parse(json.stdout) as ApiKeyWithSecret).key).toBe(server.secrets.get('key_0002'));

    const refused = await run(['keys', 'create', '--team', 'team_0001', '--models', 'o3']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('model_not_allowed');
    expect(refused.stderr).toContain('o3');

    const noTeam = await run(['keys', 'create', '--team', 'team_nope']);
    expect(noTeam.code).toBe(3);

    const missing = await run(['keys', 'create', '--name', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--team');
    expect(missing.requests).toHaveLength(0);
  });

  it('list filters by team, prints a table, and --all follows every page', async () => {
    await api('POST', '/admin/teams', { name: 'other' });
    await api('POST', '/admin/keys', {
      team_id: 'team_0001',
      name: 'ci',
      owner: 'alice',
      models: ['gpt-4o'],
    });
    await api('POST', '/admin/keys', { team_id: 'team_0002', name: 'elsewhere' });
    await api('POST', '/admin/keys', { team_id: 'team_0001', expires_at: server.now + DAY });
    await api('POST', '/admin/keys', { team_id: 'team_0001', name: 'old' });
    await api('PATCH', '/admin/keys/key_0006', { disabled: true });

    const result = await run(['keys', 'list', '--team', 'team_0001']);
    expect(result.code).toBe(0);
    expect(only(result.requests)).toMatchObject({
      method: 'GET',
      path: '/admin/keys',
      query: { team_id: 'team_0001' },
    });
    const headers = ['ID', 'NAME', 'OWNER', 'TEAM', 'STATUS', 'MODELS', 'EXPIRES', 'LAST USED', 'CREATED'];
    const lines = expectAligned(result.stdout, headers);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(
      /^key_0003\s+ci\s+alice\s+team_0001\s+active\s+gpt-4o\s+never\s+never\s+2025-06-15$/,
    );
    expect(lines[2]).toMatch(
      /^key_0005\s+-\s+-\s+team_0001\s+active\s+\(team\)\s+2025-06-16\s+never\s+2025-06-15$/,
    );
    expect(lines[3]).toMatch(/^key_0006\s+old\s+-\s+team_0001\s+disabled\s+/);

    const all = await run(['keys', 'list', '--team', 'team_0001', '--limit', '1', '--all']);
    expect(all.code).toBe(0);
    expect(all.requests.map((r) => r.query)).toEqual([
      { team_id: 'team_0001', limit: '1' },
      { team_id: 'team_0001', limit: '1', after: 'key_0003' },
      { team_id: 'team_0001', limit: '1', after: 'key_0005' },
    ]);
    expect(all.stdout).toBe(result.stdout);
    expect(all.stderr).toBe('');

    const none = await run(['keys', 'list', '--team', 'team_0002', '--after', 'key_0004']);
    expect(none.stdout).toBe('No keys.\n');

    const badLimit = await run(['keys', 'list', '--limit', '0']);
    expect(badLimit.code).toBe(2);
    expect(badLimit.requests).toHaveLength(0);
  });

  it('get shows the key but never a secret', async () => {
    const created = await api<ApiKeyWithSecret>('POST', '/admin/keys', {
      team_id: 'team_0001',
      name: 'ci\u001b[31m',
      metadata: { tier: 2, env: 'prod' },
    });
    const result = await run(['keys', 'get', created.id]);
    expect(result.code).toBe(0);
    expect(only(result.requests)).toMatchObject({ method: 'GET', path: `/admin/keys/${created.id}` });
    // Control characters someone stored are neutralised, not replayed into the terminal.
    expect(result.stdout).toMatch(/^name:\s+ci\?\[31m$/m);
    expect(result.stdout).not.toContain('\u001b');
    expect(result.stdout).toMatch(/^metadata:\s+tier=2, env=prod$/m);
    expect(result.stdout).toMatch(/^models:\s+\(the team's\)$/m);
    expect(result.stdout).not.toContain(created.key);

    const missing = await run(['keys', 'get', 'key_nope']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('key_not_found');
  });

  it('update maps each flag to its field; contradictory or empty updates are usage errors', async () => {
    await api('POST', '/admin/keys', { team_id: 'team_0001', expires_at: server.now + DAY });
    const disabled = await run(['keys', 'update', 'key_0002', '--disable', '--no-expiry', '--name', 'n2']);
    expect(disabled.code).toBe(0);
    expect(only(disabled.requests)).toMatchObject({
      method: 'PATCH',
      path: '/admin/keys/key_0002',
      body: { name: 'n2', expires_at: null, disabled: true },
    });
    expect(disabled.stdout).toMatch(/^status:\s+disabled$/m);
    expect(disabled.stdout).toMatch(/^expires:\s+never$/m);

    const enabled = await run([
      'keys',
      'update',
      'key_0002',
      '--enable',
      '--owner',
      'bob',
      '--models',
      'gpt-4o',
      '--metadata',
      'k=v',
      '--expires-at',
      '2030-01-01T00:00Z',
    ]);
    expect(enabled.code).toBe(0);
    expect(only(enabled.requests).body).toEqual({
      owner: 'bob',
      models: ['gpt-4o'],
      expires_at: 1_893_456_000,
      disabled: false,
      metadata: { k: 'v' },
    });

    const cleared = await run(['keys', 'update', 'key_0002', '--clear-metadata']);
    expect(only(cleared.requests).body).toEqual({ metadata: {} });

    for (const args of [
      ['--disable', '--enable'],
      ['--expires-at', '+1d', '--no-expiry'],
      ['--metadata', 'a=b', '--clear-metadata'],
      ['--metadata', 'novalue'],
      [],
    ]) {
      const result = await run(['keys', 'update', 'key_0002', ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.requests).toHaveLength(0);
    }
  });

  it('rotate sends grace_seconds and prints the new secret once', async () => {
    const created = await api<ApiKeyWithSecret>('POST', '/admin/keys', { team_id: 'team_0001' });
    const rotated = await run(['keys', 'rotate', created.id, '--grace', '5m']);
    expect(rotated.code).toBe(0);
    expect(only(rotated.requests)).toMatchObject({
      method: 'POST',
      path: `/admin/keys/${created.id}/rotate`,
      body: { grace_seconds: 300 },
    });
    const secret = server.secrets.get(created.id) ?? '';
    expect(secret).not.toBe(created.key);
    expect(rotated.stdout.split(secret)).toHaveLength(2);
    expect(rotated.stdout).not.toContain(created.key);
    expect(rotated.stdout).toContain('will not be shown again');
    expect(rotated.stdout).toContain('keeps working for 5m');

    const immediate = await run(['keys', 'rotate', created.id]);
    expect(only(immediate.requests).body).toEqual({});
    expect(immediate.stdout).toContain('The old secret no longer works.');

    const seconds = await run(['keys', 'rotate', created.id, '--grace', '90', '--json']);
    expect(only(seconds.requests).body).toEqual({ grace_seconds: 90 });
    expect(seconds.stdout).toBe(`${only(seconds.requests).response}\n`);

    const bad = await run(['keys', 'rotate', created.id, '--grace', 'a while']);
    expect(bad.code).toBe(2);
    expect(bad.requests).toHaveLength(0);
  });

  it('revoke sends DELETE and shows the revoked key', async () => {
    const created = await api<ApiKey>('POST', '/admin/keys', { team_id: 'team_0001' });
    const result = await run(['keys', 'revoke', created.id]);
    expect(result.code).toBe(0);
    expect(only(result.requests)).toMatchObject({ method: 'DELETE', path: `/admin/keys/${created.id}` });
    expect(result.stdout).toContain(`Revoked key ${created.id}.`);
    expect(result.stdout).toMatch(/^status:\s+revoked$/m);
    expect(result.stdout).toMatch(/^revoked:\s+2025-06-15T15:06:40Z$/m);
  });
});

describe('exit codes and the admin key', () => {
  it('a wrong admin key exits 4 and is never printed', async () => {
    const wrong = 'tg-admin-wrong-9f8e7d6c5b4a';
    const result = await run(['teams', 'list'], { TOLLGATE_ADMIN_KEY: wrong });
    expect(result.code).toBe(4);
    expect(only(result.requests).authorization).toBe(`Bearer ${wrong}`);
    expect(result.stderr).toContain('invalid_admin_key');
    expect(result.stderr).toContain('HTTP 401');
    expect(`${result.stdout}${result.stderr}`).not.toContain(wrong);
    expectNoStack(result);

    const flag = await run(['--admin-key', wrong, 'keys', 'get', 'key_1', '--json']);
    expect(flag.code).toBe(4);
    expect(`${flag.stdout}${flag.stderr}`).not.toContain(wrong);
  });

  it('no admin key at all exits 4, sends no Authorization header, and says how to give one', async () => {
    const result = await run(['teams', 'list'], { TOLLGATE_ADMIN_KEY: undefined });
    expect(result.code).toBe(4);
    expect(only(result.requests).authorization).toBeUndefined();
    expect(result.stderr).toContain('TOLLGATE_ADMIN_KEY');
  });

  it('--admin-key and --url flags win over the environment', async () => {
    const result = await run(['teams', 'list', '--url', server.url, '--admin-key', server.adminKey], {
      TOLLGATE_URL: REFUSED_ORIGIN,
      TOLLGATE_ADMIN_KEY: 'not-this-one',
    });
    expect(result.code).toBe(0);
    expect(only(result.requests).authorization).toBe(`Bearer ${server.adminKey}`);
  });

  it('an unreachable gateway exits 5: connection refused, and a gateway that never answers', async () => {
    const refused = await tollgate(['teams', 'list'], { TOLLGATE_URL: REFUSED_ORIGIN });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(`could not reach the gateway at ${REFUSED_ORIGIN}`);
    expect(refused.stderr).toContain('connection refused');
    expectNoStack(refused);

    server.hang = true;
    const started = Date.now();
    const silent = await tollgate(['keys', 'list', '--timeout', '1s']);
    expect(silent.code).toBe(5);
    expect(silent.stderr).toContain('no answer within 1s');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('usage errors exit 2 without contacting the gateway', async () => {
    for (const args of [
      ['teams', 'frobnicate'],
      ['frobnicate'],
      ['teams'],
      ['keys', 'list', '--bogus'],
      ['teams', 'get'],
      ['teams', 'get', 'a', 'b'],
      ['teams', 'create'],
      ['teams', 'create', '--name', 'x', '--models', ','],
      ['teams', 'create', '--name', 'x', '--key-expires-in', '0'],
      ['--url', 'not a url', 'teams', 'list'],
      ['--url', 'ftp://example.com', 'teams', 'list'],
      ['--timeout', 'forever', 'teams', 'list'],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.requests, args.join(' ')).toHaveLength(0);
      expectNoStack(result);
    }
    const unknown = await run(['frobnicate']);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });

  it('never prints the admin key, whatever the command or outcome', async () => {
    await api('POST', '/admin/teams', { name: 'research' });
    const outputs = await Promise.all(
      [
        ['--help'],
        ['teams', '--help'],
        ['keys', 'create', '--help'],
        ['teams', 'list'],
        ['teams', 'list', '--json'],
        ['teams', 'get', 'team_nope'],
        ['keys', 'create', '--team', 'team_0001'],
        ['keys', 'list', '--bogus'],
        ['--admin-key', server.adminKey, 'teams', 'get', 'team_0001', 'extra'],
      ].map((args) => tollgate(args)),
    );
    for (const output of outputs) {
      expect(`${output.stdout}${output.stderr}`).not.toContain(server.adminKey);
    }
  });
});

describe('--help', () => {
  it('documents the exit codes and global options at the top level', async () => {
    const result = await tollgate(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: tollgate');
    for (const line of [
      /^\s+0\s+success$/m,
      /^\s+1\s+the gateway answered with another error/m,
      /^\s+2\s+usage error/m,
      /^\s+3\s+not found \(404\)/m,
      /^\s+4\s+authentication or authorization failed \(401\/403\)/m,
      /^\s+5\s+could not reach the gateway/m,
    ]) {
      expect(result.stdout).toMatch(line);
    }
    for (const option of ['--url', '--admin-key', '--json', 'TOLLGATE_URL', 'TOLLGATE_ADMIN_KEY']) {
      expect(result.stdout).toContain(option);
    }
    for (const command of ['serve', 'teams', 'keys'])
      expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  it('every command has help with examples', async () => {
    const commands = [
      ['serve'],
      ['teams'],
      ['teams', 'create'],
      ['teams', 'list'],
      ['teams', 'get'],
      ['teams', 'update'],
      ['teams', 'delete'],
      ['keys'],
      ['keys', 'create'],
      ['keys', 'list'],
      ['keys', 'get'],
      ['keys', 'update'],
      ['keys', 'rotate'],
      ['keys', 'revoke'],
    ];
    const results = await Promise.all(commands.map((command) => tollgate([...command, '--help'])));
    results.forEach((result, i) => {
      const name = commands[i]?.join(' ') ?? '';
      expect(result.code, name).toBe(0);
      expect(result.stdout, name).toContain(`Usage: tollgate ${name}`);
      expect(result.stdout, name).toContain('Examples:');
      expect(result.stdout, name).toContain(`$ tollgate ${name}`);
      // Global options are listed on every admin command too.
      if (name !== 'serve') expect(result.stdout, name).toContain('--admin-key');
    });
    expect(results[11]?.stdout).toContain('--no-expiry');
    expect(results[12]?.stdout).toContain('--grace');
  });
});
