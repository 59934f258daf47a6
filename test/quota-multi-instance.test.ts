import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis-store.js';
import { estimateChatPromptTokens } from '../src/usage/token-estimate.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { pollUntil } from './support/poll.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { type LeasedDatabase, leaseRedisDatabase } from './support/redis-cluster.js';

/**
 * ② quota exactness across instances: three gateway PROCESSES (the built CLI) on one Redis,
 * one real HTTP upstream that reports fixed usage and counts the requests it is serving at
 * once, and hundreds of concurrent requests spread round-robin over the three. Budgets,
 * concurrency and requests per minute must hold for the three together exactly as for one.
 */

const MODEL = 'gpt-4o-mini';
/** What the upstream reports for every completion, whatever was asked. */
const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };

// ---------------------------------------------------------------- the upstream

interface Upstream {
  url: string;
  /** Requests the upstream has been asked to serve (reset per case). */
  served: number;
  inFlight: number;
  maxInFlight: number;
  delayMs: number;
  stop: () => Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const upstream: Upstream = {
    url: '',
    served: 0,
    inFlight: 0,
    maxInFlight: 0,
    delayMs: 30,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
  };
  server = createServer((req, res) => {
    void (async () => {
      for await (const _chunk of req) {
        // drain the body; the answer does not depend on it
      }
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
        return;
      }
      upstream.served++;
      upstream.inFlight++;
      upstream.maxInFlight = Math.max(upstream.maxInFlight, upstream.inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, upstream.delayMs));
      } finally {
        upstream.inFlight--;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-multi',
          object: 'chat.completion',
          created: 1,
          model: MODEL,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'ok', refusal: null },
              logprobs: null,
              finish_reason: 'stop',
            },
          ],
          usage: USAGE,
        }),
      );
    })();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

// ---------------------------------------------------------------- the gateway processes

const gatewayProcesses: GatewayProcess[] = [];
const tempDirs: string[] = [];

async function startProcess(redisUrl: string, configPath: string): Promise<GatewayProcess> {
  const started = await startGatewayProcess({
    REDIS_URL: redisUrl,
    TOLLGATE_CONFIG: configPath,
    TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY,
  });
  gatewayProcesses.push(started);
  return started;
}

// ---------------------------------------------------------------- setup

let redis: TestRedis | undefined;
let database: LeasedDatabase | undefined;
let upstream: Upstream | undefined;
let gateways: GatewayProcess[] = [];
let admin: AdminHttp;

beforeAll(async () => {
  redis = await redisForTests();
  if (!redis) return;
  // A private, empty database: no counter left by another suite or run can interfere.
  database = await leaseRedisDatabase(redis.url);
  upstream = await startUpstream();
  const configDir = mkdtempSync(join(tmpdir(), 'tollgate-quota-multi-config-'));
  tempDirs.push(configDir);
  const configPath = join(configDir, 'tollgate.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      backends: { up: { type: 'openai', baseUrl: `${upstream.url}/v1`, apiKey: 'upstream-key' } },
      models: { [MODEL]: { backend: 'up' } },
    }),
  );
  const url = database.url;
  gateways = await Promise.all([0, 1, 2].map(() => startProcess(url, configPath)));
  admin = new AdminHttp(gateways[0]?.url ?? '');
}, 30_000);

afterAll(async () => {
  await Promise.all(gatewayProcesses.splice(0).map((started) => started.stop()));
  await upstream?.stop();
  if (database) {
    let cursor = '0';
    do {
      const [next, keys] = await database.client.scan(cursor, 'MATCH', 'tg:*', 'COUNT', 500);
      if (keys.length > 0) await database.client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await database.release();
  }
  await redis?.stop();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

beforeEach((context) => {
  if (!redis) {
    context.skip('no Redis available (see the notice above)');
    return;
  }
  if (upstream) {
    upstream.served = 0;
    upstream.inFlight = 0;
    upstream.maxInFlight = 0;
  }
});

// ---------------------------------------------------------------- helpers

interface Outcome {
  status: number;
  headers: Headers;
  body: { error?: { type?: string; code?: string | null; message?: string } };
}

const messages = [{ role: 'user', content: 'hi' }];

/** One chat completion through gateway `i % 3`, raw fetch (no SDK retries). */
async function chat(i: number, key: string, maxTokens: number): Promise<Outcome> {
  const gateway = gateways[i % gateways.length];
  if (!gateway) throw new Error('no gateway');
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, max_tokens: maxTokens, messages }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

/** `count` requests at once, round-robin over the three instances. */
function burst(count: number, key: string, maxTokens: number): Promise<Outcome[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => chat(i, key, maxTokens)));
}

async function teamWithKey(
  name: string,
  team: Record<string, unknown>,
  key: Record<string, unknown>,
): Promise<{ teamId: string; key: string }> {
  const created = await admin.createTeam({ name, ...team });
  const issued = await admin.createKey({ team_id: created.id, name: `${name}-key`, ...key });
  return { teamId: created.id, key: issued.key };
}

function tally(outcomes: Outcome[]): { ok: number; refused: number; other: number[] } {
  const ok = outcomes.filter((o) => o.status === 200).length;
  const refused = outcomes.filter((o) => o.status === 429).length;
  const other = outcomes.filter((o) => o.status !== 200 && o.status !== 429).map((o) => o.status);
  return { ok, refused, other };
}

function utcDay(now: number): string {
  return new Intl.DateTimeFormat('en-CA', {
    timeZone: 'UTC',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(now);
}

// ---------------------------------------------------------------- the cases

describe('② quota across three gateway processes on one Redis', () => {
  it('three instances answer, all on the redis store', async () => {
    for (const gateway of gateways) {
      const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { store: { kind: string } };
      expect(ready.store.kind).toBe('redis');
    }
  });

  it('a team token budget of N holds for 300 concurrent requests: served in (N - E, N]', async () => {
    if (!upstream || !database) throw new Error('not set up');
    upstream.delayMs = 30;
    const BUDGET = 2_000;
    // The gateway's estimate, computed as it does (src/pipeline/quota.ts): prompt tokens counted
    // with the tokenizer + max_tokens × n (n = 1). max_tokens is chosen so the estimate E equals
    // the usage the upstream reports (40): a reservation is then exactly what is settled.
    const prompt = estimateChatPromptTokens(messages);
    const maxTokens = USAGE.total_tokens - prompt;
    expect(maxTokens).toBeGreaterThan(0);
    const estimate = prompt + maxTokens;
    expect(estimate).toBe(USAGE.total_tokens);

    const { teamId, key } = await teamWithKey(
      'budget',
      { budgets: [{ period: 'day', max_tokens: BUDGET }] },
      {},
    );
    const outcomes = await burst(300, key, maxTokens);
    const { ok, refused, other } = tally(outcomes);
    const served = upstream.served * USAGE.total_tokens;
    process.stdout.write(
      `[quota-multi] budget N=${BUDGET} E=${estimate}: ${ok} x 200, ${refused} x 429, upstream served ${upstream.served} requests = ${served} tokens\n`,
    );

    expect(other).toEqual([]);
    // Every 200 is a request the upstream served, and nothing else reached it.
    expect(upstream.served).toBe(ok);
    // The bound: a reservation is all-or-nothing and atomic in Redis over every instance, and
    // the actual usage (40) never exceeds the estimate (E = 40), so spend can never pass N.
    // A request is refused only when spent + reserved + E > N, and every reservation then
    // settles at exactly E, so the final spend exceeds N - E: the budget is used to within one
    // request's estimate. (With N a multiple of E, exactly N / E requests succeed.)
    expect(served).toBeLessThanOrEqual(BUDGET);
    expect(served).toBeGreaterThan(BUDGET - estimate);
    expect(ok).toBe(Math.floor(BUDGET / estimate));
    expect(refused).toBe(300 - ok);
    for (const outcome of outcomes.filter((o) => o.status === 429)) {
      expect(outcome.body.error?.code).toBe('insufficient_quota');
      expect(outcome.body.error?.type).toBe('insufficient_quota');
      expect(outcome.headers.get('x-should-retry')).toBe('false');
    }

    // What the gateways recorded agrees with what the upstream served, and nothing stays reserved.
    const store = new RedisStore({ target: { url: database.url } });
    try {
      // Settles land just after their responses (each gateway's own): read until they have.
      const budget = await pollUntil(
        async () => {
          const [status] = await store.quota.status(
            teamId,
            [
              {
                id: `team:${teamId}`,
                budgets: [{ period: 'day', periodKey: utcDay(Date.now()), maxTokens: BUDGET }],
              },
            ],
            Date.now(),
          );
          return status?.budgets[0];
        },
        (read) => read?.reservedTokens === 0 && read.spentTokens === served,
      );
      expect(budget).toMatchObject({ spentTokens: served, reservedTokens: 0 });
    } finally {
      await store.close();
    }
  });

  it('an estimate above the real usage never lets spend pass the budget either', async () => {
    if (!upstream) throw new Error('not set up');
    upstream.delayMs = 30;
    const BUDGET = 2_000;
    // E = 100 reserved, 40 settled: each grant is checked against spent + reserved + E <= N and
    // every settle only lowers the charge, so spend <= N. A refusal means spent + reserved > N - E
    // with spent + reserved <= (grants so far) × E, so at least ceil(N / E) - 1 = 19 were granted
    // before any refusal (here N / E = 20 exactly, so more than 19: at least 20).
    const estimate = 100;
    const maxTokens = estimate - estimateChatPromptTokens(messages);
    const { key } = await teamWithKey(
      'budget-over',
      { budgets: [{ period: 'day', max_tokens: BUDGET }] },
      {},
    );
    const outcomes = await burst(300, key, maxTokens);
    const { ok, refused, other } = tally(outcomes);
    const served = upstream.served * USAGE.total_tokens;
    process.stdout.write(
      `[quota-multi] budget N=${BUDGET} E=${estimate} (usage 40): ${ok} x 200, ${refused} x 429, served ${served} tokens\n`,
    );
    expect(other).toEqual([]);
    expect(upstream.served).toBe(ok);
    expect(served).toBeLessThanOrEqual(BUDGET);
    expect(ok).toBeGreaterThanOrEqual(BUDGET / estimate);
    for (const outcome of outcomes.filter((o) => o.status === 429)) {
      expect(outcome.body.error?.code).toBe('insufficient_quota');
      expect(outcome.headers.get('x-should-retry')).toBe('false');
    }
  });

  it('max_concurrent C on a key holds over three instances: the upstream never serves more than C at once', async () => {
    if (!upstream) throw new Error('not set up');
    upstream.delayMs = 100;
    const C = 3;
    const { key } = await teamWithKey('concurrency', {}, { limits: { max_concurrent: C } });
    const outcomes = await burst(60, key, 10);
    const { ok, refused, other } = tally(outcomes);
    process.stdout.write(
      `[quota-multi] concurrency C=${C}: ${ok} x 200, ${refused} x 429, upstream max in flight ${upstream.maxInFlight}\n`,
    );
    expect(other).toEqual([]);
    expect(upstream.maxInFlight).toBeLessThanOrEqual(C);
    // At least the first C got slots (the burst is far shorter than one upstream answer).
    expect(ok).toBeGreaterThanOrEqual(C);
    expect(upstream.served).toBe(ok);
    expect(refused).toBe(60 - ok);
    for (const outcome of outcomes.filter((o) => o.status === 429)) {
      expect(outcome.body.error?.code).toBe('rate_limit_exceeded');
      expect(outcome.body.error?.type).toBe('rate_limit_error');
      expect(Number(outcome.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(outcome.headers.get('x-should-retry')).not.toBe('false');
    }

    // Every slot is given back (a settle may land just after its response): C more at once pass.
    const again = await pollUntil(
      async () => (await burst(C, key, 10)).map((o) => o.status),
      (statuses) => statuses.every((status) => status === 200),
    );
    expect(again).toEqual(Array.from({ length: C }, () => 200));
    expect(upstream.maxInFlight).toBeLessThanOrEqual(C);
  });

  // A day's window, not a minute's: the three processes run on the real clock, and a burst that a
  // busy machine stretched past a minute would open a second window and admit more (the minute's
  // own arithmetic is covered with an injected clock in quota-contract). The Lua path is the same.
  it('requests_per_day R on a key admits exactly R of 60 spread over three instances', async () => {
    if (!upstream) throw new Error('not set up');
    upstream.delayMs = 20;
    const R = 25;
    const { key } = await teamWithKey('rpd', {}, { limits: { requests_per_day: R } });
    const outcomes = await burst(60, key, 10);
    const { ok, refused, other } = tally(outcomes);
    process.stdout.write(
      `[quota-multi] rpd R=${R}: ${ok} x 200, ${refused} x 429, upstream served ${upstream.served}\n`,
    );
    expect(other).toEqual([]);
    expect(ok).toBe(R);
    expect(refused).toBe(60 - R);
    expect(upstream.served).toBe(R);
    for (const outcome of outcomes.filter((o) => o.status === 429)) {
      expect(outcome.body.error?.code).toBe('rate_limit_exceeded');
      const retryAfter = Number(outcome.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(86_400);
      expect(outcome.headers.get('x-ratelimit-limit-requests')).toBe(String(R));
      expect(outcome.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    }
  });
});
