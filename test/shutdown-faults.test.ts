import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory-store.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway } from './support/gateway.js';
import { exitCodeOf, type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { hasRedisServerBinary, redisForTests } from './support/redis.js';
import { startRestartableRedisServer } from './support/restartable-redis.js';

/**
 * Faults around stopping a real gateway process: the reader of its stdout gone before SIGTERM,
 * and streams still open when the grace period ends.
 */

const gateways: GatewayProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const gateway of gateways.splice(0)) await gateway.stop();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(env: Record<string, string>): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess({ TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY, ...env });
  gateways.push(gateway);
  return gateway;
}

describe('SIGTERM after the reader of stdout has gone', () => {
  it('still stops: the port closes and the process exits', async () => {
    const gateway = await start({ TOLLGATE_AUTH: 'none' });
    // Log lines waiting in the buffer (this request's line) when stdout goes away.
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    const stdout = gateway.child.stdout;
    if (!stdout) throw new Error('no stdout pipe');
    const closed = once(stdout, 'close');
    stdout.destroy();
    await closed;

    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    // Stopping with nobody to read its logs is still a clean stop.
    expect(await exit).toBe(0);
    await expect(fetch(`${gateway.url}/healthz`)).rejects.toThrow();
  });
});

describe('SIGTERM while the reader of stdout has stopped reading', () => {
  it('still stops: the last log lines are not waited for forever', async () => {
    const gateway = await start({ TOLLGATE_AUTH: 'none' });
    const stdout = gateway.child.stdout;
    if (!stdout) throw new Error('no stdout pipe');
    stdout.pause();
    // Far more log lines than the pipe holds (a few hundred KiB at most): its writer is stuck.
    const id = 'x'.repeat(120);
    for (let batch = 0; batch < 50; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          fetch(`${gateway.url}/healthz`, { headers: { 'x-request-id': `${id}-${batch}-${i}` } }),
        ),
      );
      // Serving never waits on the log: every answer still comes.
      for (const answer of answers) expect(answer.status).toBe(200);
    }

    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});

describe('SIGTERM while Redis does not answer', () => {
  it.skipIf(!hasRedisServerBinary())('still stops: nothing it waits on is waited for forever', async () => {
    const redis = await startRestartableRedisServer();
    cleanups.push(() => redis.stop());
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-hung-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'tollgate.yaml');
    writeFileSync(
      config,
      'server: { shutdownGraceMs: 300 }\nbackends: { mock: { type: mock } }\nmodels: { mock: { backend: mock } }\n',
    );
    const gateway = await start({ REDIS_URL: redis.url, TOLLGATE_CONFIG: config });
    const admin = new AdminHttp(gateway.url);
    const team = await admin.createTeam({
      name: 'hung',
      budgets: [{ period: 'day', max_tokens: 1_000_000 }],
    });
    const { key } = await admin.createKey({ team_id: team.id, name: 'hung' });
    // Work for stopping to finish in Redis: a last-used time and a usage record to write.
    const answer = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(answer.status).toBe(200);
    // Connected, but never answering again.
    redis.pause();
    cleanups.push(() => redis.resume());

    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    await exit;
    expect(gateway.child.exitCode).not.toBeNull();
  });
});

/** A stream the upstream starts and never finishes: only the gateway's shutdown ends it. */
async function endlessUpstream(): Promise<FakeUpstream> {
  const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunk = {
      id: 'c',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'm',
      choices: [{ index: 0, delta: { role: 'assistant', content: 'one two three' }, finish_reason: null }],
    };
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  });
  await upstream.start();
  cleanups.push(() => upstream.stop());
  return upstream;
}

interface Standing {
  concurrency?: { limit: number; inUse: number };
  budgets: Array<{ spent_tokens: number; reserved_tokens: number }>;
}

const STREAMS = 10;
const DATABASE = 12;
const redisAvailable = Boolean(process.env.REDIS_URL) || hasRedisServerBinary();

function writeConfig(upstream: FakeUpstream): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-shutdown-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'tollgate.yaml');
  writeFileSync(
    config,
    [
      'server: { shutdownGraceMs: 300 }',
      `backends: { up: { type: openai, baseUrl: "http://127.0.0.1:${upstream.port}/v1", apiKey: k } }`,
      'models: { gpt-4o-mini: { backend: up } }',
      '',
    ].join('\n'),
  );
  return config;
}

interface OpenStreams {
  teamId: string;
  keyId: string;
  ids: string[];
  /** Reads each stream to its end (cut: a clean end or a reset); resolves once all have ended. */
  ended: () => Promise<void>;
}

/** A team with a budget, a key with a concurrency limit, and STREAMS streams open on it. */
async function openStreams(url: string, upstream: FakeUpstream): Promise<OpenStreams> {
  const admin = new AdminHttp(url);
  const team = await admin.createTeam({ name: 'cut', budgets: [{ period: 'day', max_tokens: 1_000_000 }] });
  const { key, id: keyId } = await admin.createKey({
    team_id: team.id,
    name: 'streams',
    limits: { max_concurrent: STREAMS },
  });
  const ids = Array.from({ length: STREAMS }, (_, i) => `cut-stream-${i}-${Date.now()}`);
  const readers = await Promise.all(
    ids.map(async (id) => {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify({
          model: 'gpt-4o-mini',
          stream: true,
          messages: [{ role: 'user', content: 'count to a thousand' }],
        }),
      });
      expect(response.status).toBe(200);
      const reader = response.body?.getReader();
      if (!reader) throw new Error('no body');
      // The first chunk has reached the client: the stream is relayed, its budget reserved.
      expect((await reader.read()).done).toBe(false);
      return reader;
    }),
  );
  expect(upstream.requests).toHaveLength(STREAMS);
  const readToEnd = async (reader: (typeof readers)[number]) => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // Reset rather than ended: cut either way.
    }
  };
  return { teamId: team.id, keyId, ids, ended: async () => void (await Promise.all(readers.map(readToEnd))) };
}

interface Left {
  /** request_id and total_tokens of the team's records. */
  records: Array<{ requestId: string; totalTokens: number; stream: boolean }>;
  spentTokens: number | undefined;
  reservedTokens: number | undefined;
  concurrencyInUse: number | undefined;
}

function expectNothingLost(streams: OpenStreams, left: Left): void {
  // Every charged request has its record...
  expect(left.records.map((r) => r.requestId).sort()).toEqual([...streams.ids].sort());
  for (const record of left.records) {
    expect(record.stream).toBe(true);
    expect(record.totalTokens).toBeGreaterThan(0);
  }
  // ...what the records say is what the budget was charged, and nothing is still reserved.
  expect(left.reservedTokens).toBe(0);
  expect(left.spentTokens).toBe(left.records.reduce((sum, r) => sum + r.totalTokens, 0));
  expect(left.concurrencyInUse).toBe(0);
}

describe('streams cut when the grace period ends', () => {
  it.skipIf(!redisAvailable)(
    'settle and record before the process exits (gateway process on Redis, read back by another)',
    async () => {
      const redis = await redisForTests();
      if (!redis) throw new Error('no Redis');
      cleanups.push(() => redis.stop());
      const upstream = await endlessUpstream();
      // A database of its own, so other suites' requests never crowd this one's out of the log.
      const env = { TOLLGATE_CONFIG: writeConfig(upstream), REDIS_URL: `${redis.url}/${DATABASE}` };
      const first = await start(env);
      const streams = await openStreams(first.url, upstream);

      const exit = exitCodeOf(first);
      first.child.kill('SIGTERM');
      expect(await exit).toBe(0);
      await streams.ended();

      const admin = new AdminHttp((await start(env)).url);
      const requests = await admin.call<{
        data: Array<{ request_id: string; team_id: string; stream: boolean; total_tokens: number }>;
      }>('GET', '/requests?limit=100');
      const team = await admin.call<{ standing: Standing }>('GET', `/teams/${streams.teamId}`);
      const key = await admin.call<{ standing: Standing }>('GET', `/keys/${streams.keyId}`);
      expectNothingLost(streams, {
        records: requests.body.data
          .filter((r) => r.team_id === streams.teamId)
          .map((r) => ({ requestId: r.request_id, totalTokens: r.total_tokens, stream: r.stream })),
        spentTokens: team.body.standing.budgets[0]?.spent_tokens,
        reservedTokens: team.body.standing.budgets[0]?.reserved_tokens,
        concurrencyInUse: key.body.standing.concurrency?.inUse,
      });
    },
  );

  it('settle and record before the store closes (memory store, the same stop sequence in process)', async () => {
    const upstream = await endlessUpstream();
    const store = await MemoryStore.open();
    const gateway = await startGateway(
      {
        auth: {},
        admin: { key: TEST_ADMIN_KEY },
        backends: { up: { type: 'openai', baseUrl: `http://127.0.0.1:${upstream.port}/v1`, apiKey: 'k' } },
        models: { 'gpt-4o-mini': { backend: 'up' } },
      },
      {},
      { store },
    );
    const streams = await openStreams(gateway.url, upstream);

    // What serve.ts does on SIGTERM once the grace period is over.
    const closing = gateway.app.close();
    gateway.app.server.closeAllConnections();
    await closing;
    await streams.ended();

    const day = new Date().toISOString().slice(0, 10);
    const [team] = await store.quota.status(
      streams.teamId,
      [{ id: `team:${streams.teamId}`, budgets: [{ period: 'day', periodKey: day, maxTokens: 1_000_000 }] }],
      Date.now(),
    );
    const [key] = await store.quota.status(
      streams.teamId,
      [{ id: `key:${streams.keyId}`, maxConcurrent: STREAMS }],
      Date.now(),
    );
    const { items } = await store.usage.listRequests({ limit: 100 });
    expectNothingLost(streams, {
      records: items.filter((r) => r.teamId === streams.teamId),
      spentTokens: team?.budgets[0]?.spentTokens,
      reservedTokens: team?.budgets[0]?.reservedTokens,
      concurrencyInUse: key?.concurrency?.inUse,
    });
  });
});
