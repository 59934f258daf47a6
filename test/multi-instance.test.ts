import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { redisForTests, type TestRedis } from './support/redis.js';

/**
 * Two gateway processes on one Redis behave as one: a key created through either works on
 * both, and a revocation through one is refused by the other within a second (its key cache
 * is the only lag).
 */

/**
 * A database of its own on the shared Redis: this suite clears every `tg:*` key first (so no
 * counter or setting left by an earlier run can interfere), which must not pull state from
 * under other suites running at the same time on database 0.
 */
const DATABASE = 11;

const gatewayProcesses: GatewayProcess[] = [];

async function startProcess(redisUrl: string): Promise<GatewayProcess> {
  const started = await startGatewayProcess({ REDIS_URL: redisUrl, TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY });
  gatewayProcesses.push(started);
  return started;
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
  await Promise.all(gatewayProcesses.splice(0).map((started) => started.stop()));
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
