import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exit-codes.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { exitCodeOf, type GatewayProcess, startGatewayProcess } from './support/gateway-process.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';

/**
 * A gateway process that stops while Redis is unreachable, with the settles and usage records of
 * requests it served still kept for a retry: it gives them up, and its exit code says so
 * (ExitCode.lostWrites), since a supervisor reads the code, not the logs. A stop with nothing
 * lost stays 0. Always a redis-server of this suite's own (it is killed).
 */

const available = hasRedisServerBinary();
const IN_FLIGHT = 2;
const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An upstream that holds every answer until `release`; `reached(n)` resolves once n wait. */
function heldUpstream() {
  let waiting = 0;
  const arrivals: Array<() => void> = [];
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const server = new FakeUpstream().on('POST', '/v1/chat/completions', async (_request, res) => {
    waiting++;
    for (const arrived of arrivals.splice(0)) arrived();
    await opened;
    sendJson(res, 200, {
      id: 'chatcmpl-held',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      usage: USAGE,
    });
  });
  return {
    server,
    release: () => open(),
    reached: async (count: number) => {
      while (waiting < count) await new Promise<void>((resolve) => arrivals.push(resolve));
    },
  };
}

/** Resolves once the gateway's output holds `count` lines with `text` (as it writes them, no polling). */
function logged(gateway: GatewayProcess, text: string, count: number): Promise<void> {
  const seen = () => gateway.output().split(text).length - 1 >= count;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!seen()) return;
      gateway.child.stdout?.off('data', check);
      gateway.child.stderr?.off('data', check);
      resolve();
    };
    gateway.child.stdout?.on('data', check);
    gateway.child.stderr?.on('data', check);
    gateway.child.once('exit', () => {
      if (!seen()) reject(new Error(`exited before logging ${count} × '${text}':\n${gateway.output()}`));
    });
    check();
  });
}

interface Subject {
  redis: RestartableRedis;
  gateway: GatewayProcess;
  upstream: ReturnType<typeof heldUpstream>;
  key: string;
}

async function start(workers: number): Promise<Subject> {
  const redis = await startRestartableRedisServer();
  cleanups.push(() => redis.stop());
  const upstream = heldUpstream();
  const base = await upstream.server.start();
  cleanups.push(() => upstream.server.stop());
  cleanups.push(() => upstream.release());
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-lost-writes-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'tollgate.yaml');
  writeFileSync(
    config,
    [
      `server: { shutdownGraceMs: 300, workers: ${workers} }`,
      `backends: { up: { type: openai, baseUrl: "${base}/v1", apiKey: k } }`,
      'models: { m: { backend: up } }',
      '',
    ].join('\n'),
  );
  const gateway = await startGatewayProcess({
    TOLLGATE_ADMIN_KEY: TEST_ADMIN_KEY,
    TOLLGATE_CONFIG: config,
    REDIS_URL: redis.url,
  });
  cleanups.push(() => gateway.stop());
  const admin = new AdminHttp(gateway.url);
  const team = await admin.createTeam({ name: 'lost', budgets: [{ period: 'day', max_tokens: 100_000 }] });
  const { key } = await admin.createKey({ team_id: team.id, name: 'lost' });
  return { redis, gateway, upstream, key };
}

function chat({ gateway, key }: Subject, content: string): Promise<Response> {
  return fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content }], max_tokens: 20 }),
  });
}

/** Requests admitted while Redis is up end after it died: their settles and usage are kept. */
async function endWhileRedisIsDown(s: Subject): Promise<void> {
  const answers = Array.from({ length: IN_FLIGHT }, (_, i) => chat(s, `in flight ${i}`));
  await s.upstream.reached(IN_FLIGHT);
  await s.redis.kill();
  s.upstream.release();
  for (const answer of await Promise.all(answers)) expect(answer.status).toBe(200);
  await logged(s.gateway, 'could not settle a quota reservation yet', IN_FLIGHT);
}

describe.skipIf(!available)('a gateway process that stops while Redis is unreachable', () => {
  it('exits with ExitCode.lostWrites once it gave up on the writes kept for Redis', async () => {
    const s = await start(1);
    await endWhileRedisIsDown(s);

    const exit = exitCodeOf(s.gateway);
    s.gateway.child.kill('SIGTERM');
    expect(await exit).toBe(ExitCode.lostWrites);
    expect(s.gateway.output()).toContain('lost usage records');
    expect(s.gateway.output()).toContain("lost a quota reservation's end");
    expect(s.gateway.output()).toContain('"exit_code":6');
  }, 30_000);

  it('exits 0 when Redis is unreachable but nothing was kept for it', async () => {
    const s = await start(1);
    await s.redis.kill();

    const exit = exitCodeOf(s.gateway);
    s.gateway.child.kill('SIGTERM');
    expect(await exit).toBe(0);
  }, 30_000);

  it('with server.workers, the primary exits with the code of the worker that lost writes', async () => {
    const s = await start(2);
    await endWhileRedisIsDown(s);

    const exit = exitCodeOf(s.gateway);
    s.gateway.child.kill('SIGTERM');
    expect(await exit).toBe(ExitCode.lostWrites);
    expect(s.gateway.output()).toContain('stopped: exiting with a failure code');
  }, 30_000);
});
