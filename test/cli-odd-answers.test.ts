import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApiKeyWithSecret } from '../src/cli/admin-types.js';
import { formatDate, formatTimestamp } from '../src/cli/durations.js';
import { runCli } from './support/cli-process.js';
import { type FakeAdminServer, startFakeAdminServer } from './support/fake-admin-server.js';

/**
 * A gateway may hold a time no JavaScript date can (stored before the API bounded them): the CLI
 * prints such a value as its raw Unix seconds rather than failing the whole command.
 */
const FAR = 9_000_000_000_000;

describe('formatting times out of the date range', () => {
  it('prints the raw seconds instead of throwing; ordinary times are unchanged', () => {
    expect(formatTimestamp(FAR)).toBe(String(FAR));
    expect(formatDate(FAR)).toBe(String(FAR));
    expect(formatTimestamp(1_750_000_000)).toBe('2025-06-15T15:06:40Z');
    expect(formatDate(1_750_000_000)).toBe('2025-06-15');
    // Within Date's range but past year 9999: a date, not a cut-off fragment of one.
    expect(formatDate(300_000_000_000)).toBe('+011476-08-15');
  });
});

describe('tollgate keys with a stored out-of-range expires_at', () => {
  let server: FakeAdminServer;
  let keyId: string;

  beforeAll(async () => {
    server = await startFakeAdminServer();
  });
  afterAll(() => server.close());
  beforeEach(async () => {
    server.reset();
    const headers = { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' };
    const team = (await (
      await fetch(`${server.url}/admin/teams`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: 't' }),
      })
    ).json()) as { id: string };
    const key = (await (
      await fetch(`${server.url}/admin/keys`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ team_id: team.id, name: 'far' }),
      })
    ).json()) as ApiKeyWithSecret;
    keyId = key.id;
    const stored = server.keys.get(keyId);
    if (!stored) throw new Error('the fake did not store the key');
    stored.expires_at = FAR;
  });

  const tollgate = (args: string[]) =>
    runCli(args, { TOLLGATE_URL: server.url, TOLLGATE_ADMIN_KEY: server.adminKey });

  it('keys get, keys list --team and keys list --all print it raw and exit 0', async () => {
    const teamId = server.keys.get(keyId)?.team_id ?? '';
    for (const args of [
      ['keys', 'get', keyId],
      ['keys', 'list', '--team', teamId],
      ['keys', 'list', '--all'],
    ]) {
      const result = await tollgate(args);
      expect(result.stderr, args.join(' ')).toBe('');
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout).toContain(keyId);
      expect(result.stdout).toContain(String(FAR));
    }
  });
});

describe('tollgate against a server that is not a gateway', () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    // Any 200 JSON object, whatever was asked: a reverse proxy's stub, another service.
    server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('says the answer was not a gateway’s, in one line, instead of a bare JavaScript error', async () => {
    for (const args of [
      ['keys', 'list', '--all'],
      ['teams', 'list'],
      ['keys', 'get', 'key_x'],
    ]) {
      const result = await runCli(args, { TOLLGATE_URL: url, TOLLGATE_ADMIN_KEY: 'tga-anything-0123456789' });
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(/answered in a shape this CLI does not know/);
      // What was missing is named, but no stack trace follows it.
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
