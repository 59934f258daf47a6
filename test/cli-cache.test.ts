import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CachePurge, CacheStats } from '../src/cli/admin-types.js';
import { type CliResult, runCli } from './support/cli-process.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * `tollgate cache stats | purge`: the built CLI (global setup builds dist/) against a real
 * gateway with the response cache on and a mock backend.
 */
const ADMIN = 'test-admin-key-0123456789';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({
    auth: {},
    admin: { key: ADMIN },
    cache: { enabled: true },
    backends: { m: { type: 'mock' } },
    models: { mock: { backend: 'm' } },
  });
});
afterAll(() => gw.close());

/** Runs `tollgate` as a user would, pointed at the gateway through the environment. */
function tollgate(args: string[]): Promise<CliResult> {
  return runCli(args, { TOLLGATE_URL: gw.url, TOLLGATE_ADMIN_KEY: ADMIN });
}

async function admin<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as T;
  if (!response.ok) throw new Error(`${method} ${path} failed: ${JSON.stringify(json)}`);
  return json;
}

/** A team with one key, and one cached chat completion in the team's scope. */
async function cachedTeam(): Promise<{ teamId: string; keyId: string }> {
  const team = await admin<{ id: string }>('POST', '/teams', { name: 'cli-cache' });
  const key = await admin<{ id: string; key: string }>('POST', '/keys', { team_id: team.id });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key.key, maxRetries: 0 });
  const ask = { model: 'mock', temperature: 0, messages: [{ role: 'user' as const, content: 'hi' }] };
  const first = await client.chat.completions.create(ask).withResponse();
  const second = await client.chat.completions.create(ask).withResponse();
  expect(first.response.headers.get('x-tollgate-cache')).toBe('MISS');
  expect(second.response.headers.get('x-tollgate-cache')).toBe('HIT');
  return { teamId: team.id, keyId: key.id };
}

describe('tollgate cache', () => {
  it('stats shows the entries of a scope, purge --team empties it, and stats then shows none', async () => {
    const { teamId } = await cachedTeam();

    const json = await tollgate(['cache', 'stats', '--team', teamId, '--json']);
    expect(json.code).toBe(0);
    const stats = JSON.parse(json.stdout) as CacheStats;
    expect(stats.object).toBe('list');
    expect(stats.data).toHaveLength(1);
    expect(stats.data[0]).toMatchObject({ scope: `team:${teamId}`, team_id: teamId, entries: 1 });
    expect(stats.data[0]?.bytes).toBeGreaterThan(0);

    const table = await tollgate(['cache', 'stats', '--team', teamId]);
    expect(table.code).toBe(0);
    const [header, row, ...rest] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^SCOPE\s+ENTRIES\s+BYTES$/);
    expect(row).toMatch(new RegExp(`^team:${teamId}\\s+1\\s+\\d+(\\.\\d)? (B|KiB)$`));
    expect(rest).toEqual([]);

    const all = await tollgate(['cache', 'stats']);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(`team:${teamId}`);

    const purged = await tollgate(['cache', 'purge', '--team', teamId]);
    expect(purged.code).toBe(0);
    expect(purged.stdout).toBe('Purged 1 cache entry.\n');

    const after = await tollgate(['cache', 'stats', '--team', teamId, '--json']);
    expect(after.code).toBe(0);
    const entries = (JSON.parse(after.stdout) as CacheStats).data.reduce((sum, r) => sum + r.entries, 0);
    expect(entries).toBe(0);
    const emptied = await tollgate(['cache', 'stats', '--team', teamId]);
    expect(emptied.code).toBe(0);
    expect(emptied.stdout).not.toMatch(new RegExp(`^team:${teamId}\\s+[1-9]`, 'm'));

    const again = await tollgate(['cache', 'purge', '--team', teamId, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout) as CachePurge).toEqual({ object: 'cache.purge', deleted: 0 });
  });

  it('purge --key and --model narrow the purge; --all empties every scope', async () => {
    const { keyId } = await cachedTeam();
    // The team scope holds the entry, so the key's own scope has nothing to purge.
    expect((await tollgate(['cache', 'purge', '--key', keyId])).stdout).toBe('Purged 0 cache entries.\n');
    expect((await tollgate(['cache', 'purge', '--all', '--model', 'other'])).stdout).toBe(
      'Purged 0 cache entries.\n',
    );
    const everything = await tollgate(['cache', 'purge', '--all', '--json']);
    expect(everything.code).toBe(0);
    expect((JSON.parse(everything.stdout) as CachePurge).deleted).toBeGreaterThanOrEqual(1);
    expect((await tollgate(['cache', 'stats'])).stdout).toBe('No cache entries.\n');
  });

  it('purge without a scope or --all is a usage error (exit 2) and sends nothing', async () => {
    const { teamId } = await cachedTeam();
    const result = await tollgate(['cache', 'purge']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('say what to purge');
    expect(result.stderr).toContain('--all');
    // Nothing was purged.
    const stats = await admin<CacheStats>('GET', `/cache?team_id=${teamId}`);
    expect(stats.data[0]?.entries).toBe(1);

    const both = await tollgate(['cache', 'stats', '--team', teamId, '--global']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('cannot be used with');
    const scopeAndAll = await tollgate(['cache', 'purge', '--team', teamId, '--all']);
    expect(scopeAndAll.code).toBe(2);
  });

  it('a wrong admin key exits 4', async () => {
    const { code } = await runCli(['--url', gw.url, 'cache', 'stats'], {
      TOLLGATE_ADMIN_KEY: 'wrong-key-0123456789',
    });
    expect(code).toBe(4);
  });

  it('--help describes both subcommands', async () => {
    const group = await tollgate(['cache', '--help']);
    expect(group.code).toBe(0);
    expect(group.stdout).toContain('stats');
    expect(group.stdout).toContain('purge');

    const stats = await tollgate(['cache', 'stats', '--help']);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain('Usage: tollgate cache stats');
    for (const option of ['--team <id>', '--key <id>', '--global', '--json', 'Examples:']) {
      expect(stats.stdout).toContain(option);
    }

    const purge = await tollgate(['cache', 'purge', '--help']);
    expect(purge.code).toBe(0);
    expect(purge.stdout).toContain('Usage: tollgate cache purge');
    for (const option of ['--team <id>', '--key <id>', '--global', '--model <name>', '--all', 'Examples:']) {
      expect(purge.stdout).toContain(option);
    }
  });
});
