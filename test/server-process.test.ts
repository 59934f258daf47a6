import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayProcessEnv, listeningUrl } from './support/gateway-process.js';

/** The built CLI, run as users run it (global setup builds dist/ once). */
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-proc-data-'));
  const child = spawn(process.execPath, [CLI, ...args], {
    env: gatewayProcessEnv(dataDir, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  // 'close', not 'exit': by then everything the process wrote has been read.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const started = run(args, env);
  return { ...started, url: await listeningUrl(started.child, started.output) };
}

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tollgate-proc-')), 'tollgate.yaml');
  writeFileSync(path, text);
  return path;
}

describe('the tollgate process', () => {
  it('boots on embedded defaults, prints a generated admin key once, and serves the mock model to a team key', async () => {
    const gateway = await start([]);
    const adminKey = /export TOLLGATE_ADMIN_KEY=(tga-[A-Za-z0-9_-]+)/.exec(gateway.output())?.[1];
    expect(adminKey).toBeDefined();
    const admin = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
    const team = (await (
      await fetch(`${gateway.url}/admin/teams`, {
        method: 'POST',
        headers: admin,
        body: '{"name":"quick-start"}',
      })
    ).json()) as { id: string };
    const created = (await (
      await fetch(`${gateway.url}/admin/keys`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ team_id: team.id, name: 'laptop' }),
      })
    ).json()) as { key: string };
    expect(created.key).toMatch(/^tg-/);
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: created.key, maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['mock']);
    const completion = await client.chat.completions.create({
      model: 'mock',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion.choices[0]?.message.content).toBe('hi');
    const stranger = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'anything', maxRetries: 0 });
    await expect(stranger.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { store: { kind: string } };
    expect(ready.store.kind).toBe('memory');
    // The plaintext admin key is on the terminal once, never in the JSON log lines.
    const logLines = gateway
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'));
    expect(logLines.some((line) => line.includes(adminKey ?? '!'))).toBe(false);
  });

  it('does not print a new admin key on a second start with the same data directory', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-proc-restart-'));
    const first = await start([], { TOLLGATE_DATA_DIR: dataDir });
    expect(first.output()).toContain('export TOLLGATE_ADMIN_KEY=');
    first.child.kill('SIGTERM');
    await first.exited;
    const second = await start([], { TOLLGATE_DATA_DIR: dataDir });
    expect(second.output()).not.toContain('export TOLLGATE_ADMIN_KEY=');
  });

  it('refuses to boot on an invalid config, listing every problem', async () => {
    const path = configFile(
      'server: { port: "x" }\nbackends: { a: { type: nope } }\nmodels: { m: { backend: b } }\n',
    );
    const { exited, output } = run(['--config', path], { PORT: '' });
    expect(await exited).toBe(1);
    expect(output()).toContain('server.port');
    expect(output()).toContain('backends.a.type');
    expect(output()).toContain("models.m.backend: unknown backend 'b'");
    expect(output()).not.toMatch(/\n\s+at /);
  });

  it('on SIGTERM stops accepting but lets an in-flight stream finish', async () => {
    const path = configFile(
      'backends: { slow: { type: mock, chunks: 8, chunkDelayMs: 60 } }\nmodels: { slow: { backend: slow } }\n',
    );
    const gateway = await start(['serve', '--config', path], { TOLLGATE_AUTH: 'none' });
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'slow',
        stream: true,
        messages: [{ role: 'user', content: 'a reply long enough' }],
      }),
    });
    const reader = response.body?.getReader();
    if (!reader) throw new Error('no body');
    const first = await reader.read();
    expect(first.done).toBe(false);
    gateway.child.kill('SIGTERM');
    let text = Buffer.from(first.value ?? []).toString();
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      text += Buffer.from(next.value).toString();
    }
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(await gateway.exited).toBe(0);
    await expect(fetch(`${gateway.url}/healthz`)).rejects.toThrow();
  });

  it('closes what is left when the grace period ends', async () => {
    const path = configFile(
      'server: { shutdownGraceMs: 200 }\nbackends: { slow: { type: mock, chunks: 50, chunkDelayMs: 200 } }\nmodels: { slow: { backend: slow } }\n',
    );
    const gateway = await start(['--config', path], { TOLLGATE_AUTH: 'none' });
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'slow',
        stream: true,
        messages: [{ role: 'user', content: 'x'.repeat(100) }],
      }),
    });
    const reader = response.body?.getReader();
    await reader?.read();
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    // The client sees its stream end (cut short: a clean end or a reset, never a hang).
    const ended = await (async () => {
      try {
        for (;;) if ((await reader?.read())?.done) return 'done';
      } catch {
        return 'reset';
      }
    })();
    expect(['done', 'reset']).toContain(ended);
    expect(gateway.output()).toContain('grace period over');
  });

  it('prints help and version', async () => {
    const help = run(['--help']);
    expect(await help.exited).toBe(0);
    expect(help.output()).toContain('Usage: tollgate');
    const version = run(['--version']);
    expect(await version.exited).toBe(0);
    expect(version.output().trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const unknown = run(['frobnicate']);
    expect(await unknown.exited).toBe(2);
  });
});
