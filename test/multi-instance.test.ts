import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { redisForTests, type TestRedis } from './support/redis.js';

/**
 * Two gateway processes on one Redis behave as one: a key created through either works on
 * both, and a revocation through one is refused by the other within a second (its key cache
 * is the only lag).
 */

/** The built CLI, run as users run it (global setup builds dist/ once). */
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

/**
 * A database of its own on the shared Redis: this suite clears every `tg:*` key first (so no
 * counter or setting left by an earlier run can interfere), which must not pull state from
 * under other suites running at the same time on database 0.
 */
const DATABASE = 11;

interface GatewayProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` */
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];

async function startProcess(redisUrl: string): Promise<GatewayProcess> {
  const {
    REDIS_URL: _redis,
    OPENAI_API_KEY: _openai,
    TOLLGATE_CONFIG: _config,
    TOLLGATE_AUTH: _auth,
    TOLLGATE_ADMIN_KEY: _admin,
    ...base
  } = process.env;
  const child = spawn(process.execPath, [CLI], {
    env: {
      ...base,
      REDIS_URL: redisUrl,
      TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY,
      PORT: '0',
      HOST: '127.0.0.1',
      TOLLGATE_DATA_DIR: mkdtempSync(join(tmpdir(), 'tollgate-multi-')),
    },
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
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Log lines are buffered for up to a second before they reach stdout.
  for (let i = 0; i < 400; i++) {
    const match = /"url":"(http:\/\/[^"]+)\/v1"/.exec(output);
    if (match?.[1]) return { child, url: match[1], output: () => output, exited };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`gateway did not start:\n${output}`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Deletes this suite's `tg:*` keys with SCAN + DEL (never FLUSHALL/FLUSHDB). */
async function clearGatewayKeys(url: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', 'tg:*', 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

function withDatabase(url: string, database: number): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

let redis: TestRedis | undefined;
let databaseUrl: string | undefined;
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  redis = await redisForTests();
  if (!redis) return;
  databaseUrl = withDatabase(redis.url, DATABASE);
  await clearGatewayKeys(databaseUrl);
  [a, b] = await Promise.all([startProcess(databaseUrl), startProcess(databaseUrl)]);
});

afterAll(async () => {
  await Promise.all(children.splice(0).map(stopProcess));
  if (databaseUrl) await clearGatewayKeys(databaseUrl);
  await redis?.stop();
});

beforeEach((context) => {
  if (!redis) context.skip('no Redis available (see the notice above)');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('two gateway processes sharing one Redis', () => {
  it('both say they run on the redis store', async () => {
    for (const gateway of [a, b]) {
      const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as {
        store: { kind: string; ok: boolean };
      };
      expect(ready.store).toEqual({ kind: 'redis', ok: true });
    }
  });

  it('a key created through A works on B, and a revocation through A is refused by B within 1 s', async () => {
    const adminA = new AdminHttp(a.url);
    const team = await adminA.createTeam({ name: 'multi-instance' });
    const issued = await adminA.createKey({ team_id: team.id, name: 'shared' });
    // B's admin API sees what A wrote.
    expect((await new AdminHttp(b.url).getKey(issued.id)).status).toBe('active');

    const onB = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: issued.key, maxRetries: 0 });
    expect((await onB.models.list()).data.map((m) => m.id)).toEqual(['mock']);
    const completion = await onB.chat.completions.create({
      model: 'mock',
      messages: [{ role: 'user', content: 'across instances' }],
    });
    expect(completion.choices[0]?.message.content).toBe('across instances');

    // Working on B just before the revocation, so B holds the key in its cache.
    await expect(onB.models.list()).resolves.toBeDefined();
    const revokedAt = performance.now();
    await adminA.revokeKey(issued.id);

    let refusal: InstanceType<typeof OpenAI.APIError> | undefined;
    let elapsed = 0;
    while (!refusal && elapsed < 3_000) {
      await onB.models.list().then(
        () => undefined,
        (error: unknown) => {
          if (!(error instanceof OpenAI.APIError)) throw error;
          refusal = error;
        },
      );
      elapsed = performance.now() - revokedAt;
      if (!refusal) await sleep(100);
    }
    // The contract says 1 s; the rest is the polling interval and the requests themselves.
    expect(refusal, 'B never refused the revoked key').toBeInstanceOf(OpenAI.AuthenticationError);
    expect(elapsed).toBeLessThan(1_500);
    expect(refusal?.message).toMatch(/revoked/i);
    expect(refusal?.headers?.get('x-should-retry')).toBe('false');
  });
});
