import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayProcessEnv, listeningUrl } from './support/gateway-process.js';

/**
 * The README's "Managing teams and keys" examples, run as written (bash) against a real
 * gateway process: every block marked `<!-- example: NAME -->` must work, in order.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN_KEY = 'readme-admin-key-0123456789';
const run = promisify(execFile);

function examples(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Managing teams and keys'), readme.indexOf('## Endpoints'));
  const blocks = new Map<string, string>();
  for (const match of section.matchAll(/<!-- example: ([a-z-]+) -->\n```sh\n([\s\S]*?)```/g)) {
    blocks.set(match[1] as string, match[2] as string);
  }
  return blocks;
}

/** The answers the README shows after an example (a ```json block right below it), by example name. */
function shownAnswers(): Map<string, Record<string, unknown>> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const answers = new Map<string, Record<string, unknown>>();
  for (const match of readme.matchAll(
    /<!-- example: ([a-z-]+) -->\n```sh\n[\s\S]*?```\n\n```json\n([\s\S]*?)```/g,
  )) {
    answers.set(match[1] as string, JSON.parse(match[2] as string) as Record<string, unknown>);
  }
  return answers;
}

let child: ChildProcess;
let url = '';
const env: Record<string, string> = {};

async function bash(script: string): Promise<string> {
  // The README says http://localhost:8080 and `npx tollgate`; point both at this test's gateway.
  // curl prints no newline after a JSON body; add one so several answers read as lines.
  const prelude = `set -euo pipefail\ncurl() { command curl "$@"; echo; }\nnpx() { if [ "$1" = tollgate ]; then shift; "${process.execPath}" "${join(ROOT, 'dist/cli/main.js')}" "$@"; else command npx "$@"; fi; }\n`;
  const { stdout } = await run('bash', ['-c', prelude + script.replaceAll('http://localhost:8080', url)], {
    env: { ...process.env, ...env, TOLLGATE_URL: url, TOLLGATE_ADMIN_KEY: ADMIN_KEY },
    cwd: ROOT,
  });
  return stdout;
}

beforeAll(async () => {
  child = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'serve'], {
    env: gatewayProcessEnv(mkdtempSync(join(tmpdir(), 'tollgate-readme-')), {
      TOLLGATE_ADMIN_KEY: ADMIN_KEY,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  url = await listeningUrl(child, () => output);
});

afterAll(() => {
  child?.kill('SIGKILL');
});

describe('README: Managing teams and keys', () => {
  const blocks = examples();

  it('has the examples this test runs', () => {
    expect([...blocks.keys()]).toEqual([
      'curl-create-team',
      'curl-create-key',
      'curl-use-key',
      'curl-manage-key',
      'cli',
    ]);
  });

  it('curl: creates a team, a key, uses it, manages it', async () => {
    const team = JSON.parse(await bash(blocks.get('curl-create-team') ?? '')) as {
      id: string;
      models: string[];
    };
    expect(team.models).toEqual(['mock', 'gpt-4o-mini']);
    // The answers the README shows have exactly the fields the gateway returns, in its order.
    const shown = shownAnswers();
    expect(Object.keys(team)).toEqual(Object.keys(shown.get('curl-create-team') ?? {}));
    env.TEAM_ID = team.id;
    const key = JSON.parse(await bash(blocks.get('curl-create-key') ?? '')) as { id: string; key: string };
    expect(key.key).toMatch(/^tg-/);
    expect(Object.keys(key)).toEqual(Object.keys(shown.get('curl-create-key') ?? {}));
    env.KEY_ID = key.id;
    env.KEY = key.key;
    const chat = JSON.parse(await bash(blocks.get('curl-use-key') ?? '')) as {
      choices: Array<{ message: { content: string } }>;
    };
    expect(chat.choices[0]?.message.content).toBe('hello from the search team');
    const lines = (await bash(blocks.get('curl-manage-key') ?? '')).trim().split('\n');
    const [list, patched, rotated, revoked, audit] = lines.map((line) => JSON.parse(line));
    expect(list.data.map((k: { id: string }) => k.id)).toEqual([key.id]);
    expect(patched.metadata).toEqual({ ticket: 'OPS-42' });
    expect(rotated.key).toMatch(/^tg-/);
    expect(revoked.status).toBe('revoked');
    expect(audit.data.map((e: { action: string }) => e.action)).toEqual([
      'team.create',
      'key.create',
      'key.update',
      'key.rotate',
      'key.revoke',
    ]);
  });

  it('CLI: the same with tollgate', async () => {
    const script = (blocks.get('cli') ?? '').split('\n');
    const createTeam = script.find((line) => line.includes('teams create')) ?? '';
    const team = JSON.parse(await bash(`${createTeam} --json`)) as {
      id: string;
      default_key_policy: unknown;
    };
    expect(team.default_key_policy).toEqual({ expires_in_seconds: 90 * 24 * 3600 });
    env.TEAM_ID = team.id;
    const createKey = script.find((line) => line.includes('keys create')) ?? '';
    const key = JSON.parse(await bash(`${createKey} --json`)) as { id: string; owner: string };
    expect(key.owner).toBe('bo@example.com');
    env.KEY_ID = key.id;
    const output = await bash(script.join('\n').replace(createTeam, '').replace(createKey, ''));
    expect(output).toContain('research');
    expect(output).toContain('laptop');
    const final = JSON.parse(await bash(`npx tollgate keys get "$KEY_ID" --json`)) as { status: string };
    expect(final.status).toBe('revoked');
  });
});
