import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseTimestamp } from '../src/cli/durations.js';
import { type CliResult, runCli } from './support/cli-process.js';
import {
  type FakeAdminServer,
  type RecordedRequest,
  startFakeAdminServer,
} from './support/fake-admin-server.js';

/**
 * Arguments the CLI must refuse itself (exit 2, nothing sent): a day that does not exist, a
 * timeout no timer can hold, an admin key no HTTP header can carry.
 */
let server: FakeAdminServer;
let teamId: string;

beforeAll(async () => {
  server = await startFakeAdminServer();
});
afterAll(() => server.close());
beforeEach(async () => {
  server.reset();
  const response = await fetch(`${server.url}/admin/teams`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 't' }),
  });
  teamId = ((await response.json()) as { id: string }).id;
});

async function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult & { requests: RecordedRequest[] }> {
  const since = server.requests.length;
  const result = await runCli(args, {
    TOLLGATE_URL: server.url,
    TOLLGATE_ADMIN_KEY: server.adminKey,
    ...env,
  });
  return { ...result, requests: server.requests.slice(since) };
}

describe('--expires-at with a day that does not exist', () => {
  it('parseTimestamp refuses it instead of rolling it over into the next month', () => {
    for (const [text, why] of [
      ['2027-02-30', '2027-02 has no day 30'],
      ['2027-02-29T12:00Z', '2027-02 has no day 29'],
      ['2026-04-31', '2026-04 has no day 31'],
      ['2026-13-01', 'no month 13'],
      ['2026-00-10', 'no month 00'],
      ['2026-01-00', '2026-01 has no day 00'],
    ] as const) {
      expect(() => parseTimestamp(text), text).toThrow(`expected a real calendar day (${why})`);
    }
    expect(parseTimestamp('2028-02-29')).toBe(Date.UTC(2028, 1, 29) / 1000);
    expect(parseTimestamp('2027-02-28T23:59:59Z')).toBe(Date.UTC(2027, 1, 28, 23, 59, 59) / 1000);
  });

  it('keys create and keys update exit 2 and send nothing', async () => {
    for (const args of [
      ['keys', 'create', '--team', teamId, '--expires-at', '2027-02-30'],
      ['keys', 'update', 'k', '--expires-at', '2027-02-30T10:00Z'],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.requests, args.join(' ')).toHaveLength(0);
      expect(result.stderr).toContain('expected a real calendar day (2027-02 has no day 30)');
    }
    const leap = await run(['keys', 'create', '--team', teamId, '--expires-at', '2028-02-29']);
    expect(leap.code).toBe(0);
    expect(leap.stdout).toMatch(/^expires:\s+2028-02-29T00:00:00Z$/m);
  });
});

describe('--timeout past what a timer can hold', () => {
  it('is a usage error naming the bound, with no Node warning and no request', async () => {
    for (const timeout of ['30d', '25d', '2147484']) {
      const result = await run(['--timeout', timeout, 'teams', 'list']);
      expect(result.code, timeout).toBe(2);
      expect(result.requests, timeout).toHaveLength(0);
      expect(result.stderr, timeout).toContain('a timeout can be at most 24d');
      expect(result.stderr, timeout).not.toContain('TimeoutOverflowWarning');
      expect(result.stderr, timeout).not.toContain('no answer within');
    }
  });

  it('the bound itself works', async () => {
    const result = await run(['teams', 'list', '--timeout', '24d']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});

describe('an admin key an HTTP header cannot carry', () => {
  const UNSENDABLE = 'clé-admin-…€-0123456789';

  it('is a usage error naming where it came from, never the key, and nothing is sent', async () => {
    for (const [args, env, source] of [
      [['teams', 'list'], { TOLLGATE_ADMIN_KEY: UNSENDABLE }, 'TOLLGATE_ADMIN_KEY'],
      [['--admin-key', UNSENDABLE, 'keys', 'revoke', 'k'], {}, '--admin-key'],
      [['teams', 'list'], { TOLLGATE_ADMIN_KEY: 'tga-split\nkey-0123456789' }, 'TOLLGATE_ADMIN_KEY'],
    ] as const) {
      const result = await run([...args], env);
      expect(result.code, source).toBe(2);
      expect(result.requests, source).toHaveLength(0);
      expect(result.stderr, source).toContain(`the admin key in ${source} cannot be sent`);
      expect(result.stderr, source).not.toContain('could not reach the gateway');
      expect(result.stderr).not.toContain('clé');
      expect(result.stderr).not.toContain('split');
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });

  it('a Latin-1 key is still sent as it is (here a wrong one: exit 4)', async () => {
    const result = await run(['teams', 'list'], { TOLLGATE_ADMIN_KEY: 'clé-admin-0123456789' });
    expect(result.code).toBe(4);
    expect(result.requests).toHaveLength(1);
  });
});
