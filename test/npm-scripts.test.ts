import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The README's commands as a user runs them: `npm start` and `npx tollgate` from a shell whose
 * `node` is whatever the machine has (these machines: 20), not the Node 24 that npm scripts put
 * first on PATH for this test run.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const cleanups: Array<() => void> = [];

afterAll(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** The environment of a user's shell: no node_modules/.bin on PATH, no gateway settings. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('npm_') || name.startsWith('VITEST') || name === 'NODE_OPTIONS') continue;
    if (
      ['REDIS_URL', 'OPENAI_API_KEY', 'OPENAI_BASE_URL', 'TOLLGATE_CONFIG', 'TOLLGATE_ADMIN_KEY'].includes(
        name,
      )
    )
      continue;
    env[name] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((entry) => !entry.includes('node_modules'))
    .join(delimiter);
  const data = mkdtempSync(join(tmpdir(), 'tollgate-npm-start-'));
  cleanups.push(() => rmSync(data, { recursive: true, force: true }));
  return { ...env, PORT: '0', HOST: '127.0.0.1', TOLLGATE_DATA_DIR: data, ...extra };
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function npmStart(cwd: string): Started {
  const child = spawn('npm', ['start'], { cwd, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => output, exited };
}

/** Resolves with the gateway's URL once it logs it; rejects if the process ends first. */
function listening(started: Started): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = /"url":"(http:\/\/[^"]+)\/v1"/.exec(started.output());
      if (match?.[1]) {
        started.child.stdout?.off('data', check);
        resolve(match[1].replace('localhost', '127.0.0.1'));
      }
    };
    started.child.stdout?.on('data', check);
    check();
    void started.exited.then(() => reject(new Error(`npm start ended:\n${started.output()}`)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The gateway process npm runs for `start` (the script execs node: npm's only child). */
function childOf(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
  expect(children).toHaveLength(1);
  return Number(children[0]);
}

/**
 * A copy of the checkout as built (sources, scripts, configs, dist/; node_modules linked), so a
 * rebuild there cannot disturb the test files that run the real dist/. The build stamp is
 * copied last, so the copy's dist/ is fresh.
 */
function checkoutCopy(): string {
  const copy = mkdtempSync(join(tmpdir(), 'tollgate-checkout-'));
  cleanups.push(() => rmSync(copy, { recursive: true, force: true }));
  for (const entry of ['src', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'dist']) {
    cpSync(join(ROOT, entry), join(copy, entry), { recursive: true, dereference: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  return copy;
}

describe('npm start', () => {
  it('runs the gateway on the Node the project installs, and SIGTERM to npm drains and stops it', async () => {
    const started = npmStart(checkoutCopy());
    const url = await listening(started);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    const npmPid = started.child.pid as number;
    const gatewayPid = childOf(npmPid);
    expect(readFileSync(`/proc/${gatewayPid}/cmdline`, 'utf8')).toContain('dist/server.js');

    // What a process manager does: signal the process it started, npm, and nothing else.
    started.child.kill('SIGTERM');
    await started.exited;
    expect(alive(gatewayPid)).toBe(false);
    expect(started.output()).toContain('shutting down: draining in-flight requests');
    expect(started.output()).toContain('"msg":"stopped"');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    // Fresh sources: starting did not rebuild dist/.
    expect(started.output()).not.toContain('build: dist/ built');
  });

  it('two starts at the same moment after a source change build once, and both come up', async () => {
    const copy = checkoutCopy();
    // A source saved after the last build.
    const now = Date.now() / 1000;
    utimesSync(join(copy, 'dist', '.build-stamp'), now - 20, now - 20);
    utimesSync(join(copy, 'src', 'errors.ts'), now - 10, now - 10);

    const first = npmStart(copy);
    const second = npmStart(copy);
    const urls = await Promise.all([listening(first), listening(second)]);
    expect(new Set(urls).size).toBe(2);
    const builds = (first.output() + second.output()).match(/build: dist\/ built/g) ?? [];
    expect(builds).toHaveLength(1);
    for (const started of [first, second]) {
      started.child.kill('SIGTERM');
      expect(await started.exited).toBe(0);
    }
    expect(existsSync(join(copy, '.build.lock'))).toBe(false);
  });
});

describe('npm run dev', () => {
  it('runs the sources directly and answers', async () => {
    const child = spawn('npm', ['run', 'dev'], {
      cwd: ROOT,
      env: userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    cleanups.push(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // Gone.
      }
    });
    let output = '';
    const url = await new Promise<string>((resolve, reject) => {
      const read = (chunk: Buffer) => {
        // Pretty logs, coloured: `url: "http://127.0.0.1:<port>/v1"`.
        output += chunk.toString().replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '');
        const match = /url: "(http:\/\/[^"]+)\/v1"/.exec(output);
        if (match?.[1]) resolve(match[1].replace('localhost', '127.0.0.1'));
      };
      child.stdout?.on('data', read);
      child.stderr?.on('data', read);
      void exited.then(() => reject(new Error(`npm run dev ended:\n${output}`)));
    });
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    process.kill(-(child.pid as number), 'SIGTERM');
    await exited;
  });
});

describe('the tollgate command', () => {
  it('npx tollgate works in a checkout after npm ci', () => {
    const out = execFileSync('npx', ['tollgate', '--version'], {
      cwd: ROOT,
      env: userEnv(),
      encoding: 'utf8',
    });
    expect(out.trim()).toBe(VERSION);
  });
});

describe('on a Node older than 22', () => {
  // Node 20 as the gateway would see it: the version is what the entry points read.
  const asNode20 = `data:text/javascript,Object.defineProperty(process.versions,'node',{value:'20.20.2'});Object.defineProperty(process,'version',{value:'v20.20.2'})`;

  for (const entry of ['dist/server.js', 'dist/cli/main.js']) {
    it(`node ${entry} says first which Node it needs and how to get it`, () => {
      let stderr = '';
      let status: number | null = 0;
      try {
        execFileSync(process.execPath, ['--import', asNode20, entry], {
          cwd: ROOT,
          env: userEnv(),
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (error) {
        const failed = error as { status: number | null; stderr: string };
        status = failed.status;
        stderr = failed.stderr;
      }
      expect(status).toBe(1);
      const firstLine = stderr.split('\n')[0] ?? '';
      expect(firstLine).toMatch(/^tollgate needs Node\.js >= 22; this is Node\.js v20\.20\.2\./);
      expect(firstLine).toContain('npm start');
    });
  }
});
