import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import { pollUntil } from './support/poll.js';
import { hasRedisServerBinary, startRedisServer, type TestRedis } from './support/redis.js';

/**
 * `server.workers`: the built gateway (`npm start`'s dist/server.js) as a cluster of processes on
 * one port, sharing state through a throwaway Redis. Which process answered a request is read
 * from its request log line (`worker`, `pid`), found by the response's x-request-id.
 */
const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));
const AMBIENT = [
  'REDIS_URL',
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'TOLLGATE_CONFIG',
  'TOLLGATE_AUTH',
  'TOLLGATE_ADMIN_KEY',
];
const MOCK = 'backends: { m: { type: mock } }\nmodels: { m: { backend: m } }\n';

interface LogLine {
  msg?: string;
  role?: string;
  worker?: number;
  pid?: number;
  worker_pid?: number;
  code?: number | null;
  exit_code?: number;
  request_id?: string;
  url?: string;
  status?: number;
}

interface Cluster {
  child: ChildProcess;
  output: () => string;
  lines: () => LogLine[];
  exited: Promise<number | null>;
  /** Resolves once stdout and stderr are closed: everything the processes wrote is in `output`. */
  closed: Promise<void>;
}

const running: Cluster[] = [];
const folders: string[] = [];

afterEach(() => {
  for (const gateway of running.splice(0)) {
    if (gateway.child.exitCode === null && gateway.child.signalCode === null) gateway.child.kill('SIGKILL');
  }
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function launch(configText: string, env: Record<string, string> = {}): Cluster {
  const folder = mkdtempSync(join(tmpdir(), 'tollgate-workers-'));
  folders.push(folder);
  const config = join(folder, 'tollgate.yaml');
  writeFileSync(config, configText);
  const base = { ...process.env };
  for (const name of AMBIENT) delete base[name];
  const child = spawn(process.execPath, [SERVER, '--config', config], {
    env: { ...base, PORT: '0', HOST: '127.0.0.1', TOLLGATE_DATA_DIR: join(folder, 'data'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const lines = () =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  const gateway = { child, output: () => output, lines, exited, closed };
  running.push(gateway);
  return gateway;
}

/**
 * Resolves with the gateway's URL once the primary says every worker listens and the workers'
 * own lines say so too (each process buffers its log lines for up to a second).
 */
async function listening(gateway: Cluster, workers = 2): Promise<string> {
  const primaryLine = () =>
    gateway.lines().find((l) => l.msg === 'tollgate is listening' && l.role === 'primary');
  // Booting several whole gateways at once on a busy machine can outlast one pollUntil (~15 s).
  for (let round = 0; round < 3; round++) {
    const done = await pollUntil(
      async () => primaryLine() !== undefined && listeningWorkers(gateway).length >= workers,
      (ready) => ready || gateway.child.exitCode !== null,
    );
    if (done || gateway.child.exitCode !== null) break;
  }
  const url = primaryLine()?.url;
  if (!url) throw new Error(`the gateway did not start:\n${gateway.output()}`);
  return url.replace(/\/v1$/, '');
}

interface Answer {
  status: number;
  requestId: string;
  body: string;
}

/** One request on a connection of its own, so the cluster may hand it to any worker. */
function send(url: string, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, requestId: String(res.headers['x-request-id']), body: text }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The pid of the worker whose request log line carries this request id. */
async function answeredBy(gateway: Cluster, requestId: string): Promise<number | undefined> {
  const line = await pollUntil(
    async () => gateway.lines().find((l) => l.request_id === requestId && l.msg === 'request'),
    (found) => found !== undefined,
  );
  expect(line?.worker).toBeTypeOf('number');
  return line?.pid;
}

/** The pids of the workers that said they listen. */
function listeningWorkers(gateway: Cluster): number[] {
  return gateway
    .lines()
    .filter((l) => l.msg === 'worker is listening')
    .map((l) => l.pid ?? 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('server.workers in the config', () => {
  const base = { backends: { m: { type: 'mock' } }, models: { m: { backend: 'm' } } };
  const problems = (raw: unknown, env: NodeJS.ProcessEnv = {}) => {
    try {
      parseConfig(raw, env, 'test');
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
  };

  it('defaults to 1, takes a number or auto (one per core), and refuses other values in its own words', () => {
    expect(parseConfig(base, {}, 'test').server.workers).toBe(1);
    const redis = { REDIS_URL: 'redis://127.0.0.1:6379' };
    expect(parseConfig({ ...base, server: { workers: 3 } }, redis, 'test').server.workers).toBe(3);
    expect(parseConfig({ ...base, server: { workers: 'auto' } }, redis, 'test').server.workers).toBe(
      availableParallelism(),
    );
    expect(problems({ ...base, server: { workers: 'four' } }, redis)).toEqual([
      "server.workers: expected 'auto' or a whole number from 1 to 256",
    ]);
    expect(problems({ ...base, server: { workers: 0 } }, redis)).toEqual([
      'server.workers: must be at least 1',
    ]);
  });

  it('refuses more than one worker without Redis, listed with the other problems', () => {
    expect(problems({ ...base, server: { workers: 2 }, models: { x: { backend: 'nope' } } })).toEqual([
      'server.workers: 2 workers need Redis (redis, or REDIS_URL) to share teams, keys, limits and the cache; the embedded store lives in one process. Configure redis, or set workers: 1',
      "models.x.backend: unknown backend 'nope' (declared: m)",
    ]);
    expect(problems({ ...base, server: { workers: 1 } })).toEqual([]);
    const auto = problems({ ...base, server: { workers: 'auto' } });
    if (availableParallelism() > 1)
      expect(auto).toEqual([
        expect.stringMatching(/^server\.workers: 'auto' is \d+ on this machine, and \d+ workers need Redis/),
      ]);
    else expect(auto).toEqual([]);
  });
});

/** Each test boots two or more full gateway processes. */
const PROCESS_TEST_MS = 60_000;

describe.skipIf(!hasRedisServerBinary())(
  'a gateway with server.workers: 2',
  { timeout: PROCESS_TEST_MS },
  () => {
    let redis: TestRedis;
    beforeAll(async () => {
      redis = await startRedisServer();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('serves one port from two processes sharing Redis, prints one admin key, and stops them all on SIGTERM', async () => {
      // A Redis of its own: the admin key is generated on this start, by one of the two workers.
      const own = await startRedisServer();
      try {
        const gateway = launch(`server: { workers: 2 }\nredis: { url: "${own.url}" }\n${MOCK}`);
        const url = await listening(gateway);
        const workers = listeningWorkers(gateway);
        expect(new Set(workers).size).toBe(2);
        expect(workers).not.toContain(gateway.child.pid);
        const adminKey = /export TOLLGATE_ADMIN_KEY=(tga-[A-Za-z0-9_-]+)/.exec(gateway.output())?.[1];
        if (!adminKey) throw new Error(`no admin key printed:\n${gateway.output()}`);
        const admin = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };

        const team = await send(url, 'POST', '/admin/teams', admin, '{"name":"cluster"}');
        expect(team.status).toBe(201);
        const created = await send(
          url,
          'POST',
          '/admin/keys',
          admin,
          JSON.stringify({ team_id: (JSON.parse(team.body) as { id: string }).id, name: 'k' }),
        );
        expect(created.status).toBe(201);
        const key = (JSON.parse(created.body) as { key: string }).key;
        const creator = await answeredBy(gateway, created.requestId);

        // Until a worker other than the one that created the key has accepted it.
        const seen = new Set<number | undefined>([creator]);
        let elsewhere: Answer | undefined;
        for (let i = 0; i < 100 && !elsewhere; i++) {
          const answer = await send(url, 'GET', '/v1/models', { authorization: `Bearer ${key}` });
          expect(answer.status).toBe(200);
          const pid = await answeredBy(gateway, answer.requestId);
          seen.add(pid);
          if (pid !== creator) elsewhere = answer;
        }
        expect(elsewhere?.status).toBe(200);
        expect([...seen].sort()).toEqual([...workers].sort());

        const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
        const completion = await client.chat.completions.create({
          model: 'm',
          messages: [{ role: 'user', content: 'hello' }],
        });
        expect(completion.choices[0]?.message.content).toBe('hello');

        gateway.child.kill('SIGTERM');
        expect(await gateway.exited).toBe(0);
        await gateway.closed;
        for (const pid of workers) expect(alive(pid)).toBe(false);
        expect(
          gateway.lines().filter((l) => l.msg === 'shutting down: draining in-flight requests'),
        ).toHaveLength(2);
        expect(gateway.output().match(/export TOLLGATE_ADMIN_KEY=/g)).toHaveLength(1);
      } finally {
        await own.stop();
      }
    });

    it('replaces a worker killed with SIGKILL and keeps answering', async () => {
      const gateway = launch(`server: { workers: 2 }\nauth: none\nredis: { url: "${redis.url}" }\n${MOCK}`);
      const url = await listening(gateway);
      const [victim, survivor] = listeningWorkers(gateway);
      if (victim === undefined || survivor === undefined) throw new Error('two workers expected');
      process.kill(victim, 'SIGKILL');
      const exit = await pollUntil(
        async () => gateway.lines().find((l) => l.msg?.startsWith('worker exited unexpectedly')),
        (found) => found !== undefined,
      );
      expect(exit?.worker_pid).toBe(victim);
      // The survivor answers while the replacement starts.
      const meanwhile = await send(url, 'GET', '/v1/models', {});
      expect(meanwhile.status).toBe(200);
      const replacement = await pollUntil(
        async () => listeningWorkers(gateway).find((pid) => pid !== victim && pid !== survivor),
        (found) => found !== undefined,
      );
      if (replacement === undefined) throw new Error(`no replacement worker:\n${gateway.output()}`);
      let answeredByReplacement = false;
      for (let i = 0; i < 100 && !answeredByReplacement; i++) {
        const answer = await send(url, 'GET', '/v1/models', {});
        expect(answer.status).toBe(200);
        answeredByReplacement = (await answeredBy(gateway, answer.requestId)) === replacement;
      }
      expect(answeredByReplacement).toBe(true);
      gateway.child.kill('SIGTERM');
      expect(await gateway.exited).toBe(0);
      for (const pid of [survivor, replacement]) expect(alive(pid)).toBe(false);
    });

    it('on SIGTERM to the primary lets a worker finish its in-flight stream before all exit', async () => {
      const gateway = launch(
        `server: { workers: 2 }\nauth: none\nredis: { url: "${redis.url}" }\nbackends: { slow: { type: mock, chunks: 8, chunkDelayMs: 60 } }\nmodels: { slow: { backend: slow } }\n`,
      );
      const url = await listening(gateway);
      const response = await fetch(`${url}/v1/chat/completions`, {
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
      await gateway.closed;
      expect(gateway.lines().filter((l) => l.msg === 'worker stopped' && l.code === 0)).toHaveLength(2);
    });

    it('exits with the exit code of a worker that did not stop cleanly, as a single gateway would', async () => {
      const folder = mkdtempSync(join(tmpdir(), 'tollgate-workers-module-'));
      folders.push(folder);
      const failsOnStop = join(folder, 'fails-on-stop.mjs');
      // Worker 1 ends on SIGTERM with a failure code of its own (3: not the primary's usual 1);
      // worker 2 drains and stops cleanly.
      writeFileSync(
        failsOnStop,
        [
          "import cluster from 'node:cluster';",
          "if (cluster.worker?.id === 1) process.once('SIGTERM', () => process.exit(3));",
          'export default () => ({ supports: () => true, send: async () => { throw new Error("unused"); } });',
          '',
        ].join('\n'),
      );
      const gateway = launch(
        `server: { workers: 2 }\nauth: none\nredis: { url: "${redis.url}" }\nbackends: { b: { type: module, module: ${JSON.stringify(failsOnStop)} } }\nmodels: { m: { backend: b } }\n`,
      );
      await listening(gateway);
      gateway.child.kill('SIGTERM');
      expect(await gateway.exited).toBe(3);
      await gateway.closed;
      const stopped = gateway.lines().filter((l) => l.msg === 'worker stopped');
      expect(stopped.map((l) => l.code).sort()).toEqual([0, 3]);
      const last = gateway
        .lines()
        .filter((l) => l.role === 'primary')
        .at(-1);
      expect(last).toMatchObject({ msg: 'stopped: exiting with a failure code', exit_code: 3 });
    });

    it('refuses workers: 2 without Redis at boot, with the reason, and starts no worker', async () => {
      const gateway = launch(`server: { workers: 2 }\n${MOCK}`);
      expect(await gateway.exited).toBe(1);
      await gateway.closed;
      expect(gateway.output()).toContain('server.workers: 2 workers need Redis');
      expect(gateway.output()).not.toContain('starting workers');
    });

    it('gives up and exits non-zero when workers keep dying right after they start', async () => {
      const folder = mkdtempSync(join(tmpdir(), 'tollgate-workers-module-'));
      folders.push(folder);
      const broken = join(folder, 'broken.mjs');
      writeFileSync(broken, "throw new Error('this backend cannot load');\n");
      const gateway = launch(
        `server: { workers: 2 }\nauth: none\nredis: { url: "${redis.url}" }\nbackends: { b: { type: module, module: ${JSON.stringify(broken)} } }\nmodels: { m: { backend: b } }\n`,
      );
      expect(await gateway.exited).toBe(1);
      await gateway.closed;
      expect(gateway.output()).toContain('workers keep dying right after they start: giving up');
      // Each worker's reason says whose it is: with several dying together they interleave.
      expect(gateway.output()).toMatch(
        /\[worker \d+, pid \d+\] tollgate failed to start: .*this backend cannot load/,
      );
      expect(
        gateway.lines().filter((l) => l.msg?.startsWith('worker exited unexpectedly')).length,
      ).toBeGreaterThan(0);
    });
  },
);
