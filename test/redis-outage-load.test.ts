import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';
import { type HoldProxy, startHoldProxy } from './support/tcp-hold-proxy.js';

/**
 * Redis killed under load: every answer is a served 200 or a clean 503 with retry-after, never
 * a 500, whichever store call the outage hits. The hard case is a command already sent when
 * Redis dies: ioredis fails it only later, with its own error (MaxRetriesPerRequestError once
 * it gives up reconnecting), or never, when something keeps accepting connections meanwhile
 * (then only the gateway's command timeout ends the wait). A proxy between the gateway and
 * Redis holds what the gateway sends, so commands are provably in flight when Redis is killed,
 * on every run, with no timing.
 */

const available = hasRedisServerBinary();
if (!available) {
  process.stderr.write('\n!!! REDIS OUTAGE LOAD SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
}

interface Subject {
  redis: RestartableRedis;
  proxy: HoldProxy;
  gw: TestGateway;
  key: string;
}

/** A Redis of its own behind a hold proxy, a gateway on it, and a key that every stage limits. */
async function startSubject(): Promise<Subject> {
  const redis = await startRestartableRedisServer();
  const proxy = await startHoldProxy(redis.port);
  const gw = await startGateway({
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
    redis: { url: proxy.url },
    admin: { key: TEST_ADMIN_KEY },
    auth: {},
    cache: { enabled: true },
  });
  const admin = new AdminHttp(gw.url);
  // Every Redis-backed stage on the request path: request rates (@fastify/rate-limit), the
  // quota reservation (concurrency and budget), the response cache, usage records.
  const team = await admin.createTeam({
    name: 'outage-load',
    budgets: [{ period: 'day', max_tokens: 100_000_000 }],
    limits: { requests_per_minute: 100_000 },
  });
  const { key } = await admin.createKey({
    team_id: team.id,
    name: 'load',
    limits: { max_concurrent: 1_000, requests_per_minute: 100_000 },
  });
  return { redis, proxy, gw, key };
}

async function stopSubject(subject: Subject | undefined): Promise<void> {
  await subject?.gw.close();
  await subject?.proxy.close();
  await subject?.redis.stop();
}

interface Answer {
  what: string;
  status: number;
  headers: Headers;
  body: unknown;
}

async function send(url: string, what: string, path: string, init: RequestInit): Promise<Answer> {
  const response = await fetch(`${url}${path}`, init);
  return { what, status: response.status, headers: response.headers, body: await response.json() };
}

/** Half chat completions (half of those cacheable), a quarter embeddings, a quarter admin reads. */
function load({ gw, key }: Subject, count: number): Array<Promise<Answer>> {
  const url = gw.url;
  return Array.from({ length: count }, (_, i) => {
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    if (i % 4 === 3)
      return send(url, 'GET /admin/teams', '/admin/teams', {
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
      });
    if (i % 4 === 2) {
      const body = JSON.stringify({ model: 'mock', input: `text ${i}` });
      return send(url, 'embeddings', '/v1/embeddings', { method: 'POST', headers, body });
    }
    const body = JSON.stringify({
      model: 'mock',
      messages: [{ role: 'user', content: `request ${i % 8}` }],
      ...(i % 2 === 0 ? { temperature: 0 } : {}),
    });
    return send(url, 'chat', '/v1/chat/completions', { method: 'POST', headers, body });
  });
}

function expectServedOrUnavailable(answers: Answer[]): void {
  for (const answer of answers) {
    const detail = `${answer.what}: ${answer.status} ${JSON.stringify(answer.body)}`;
    expect([200, 503], detail).toContain(answer.status);
    if (answer.status === 503) {
      expectEnvelope(answer.body, { type: 'server_error', code: 'service_unavailable', param: null });
      expect(Number(answer.headers.get('retry-after')), detail).toBeGreaterThan(0);
    }
  }
}

describe.skipIf(!available)('Redis killed under concurrent load', () => {
  let subject: Subject;
  beforeAll(async () => {
    subject = await startSubject();
  });
  afterAll(() => stopSubject(subject));

  it('while Redis is up, the load is served', async () => {
    const answers = await Promise.all(load(subject, 40));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
  });

  it('requests whose store commands are in flight when Redis dies get 503, never 500', async () => {
    subject.proxy.hold();
    const pending = load(subject, 80);
    // At least one store command has been sent and not answered...
    await subject.proxy.holding();
    // ...when Redis dies: its connections reset, new ones refused.
    await subject.proxy.close();
    await subject.redis.kill();
    const answers = await Promise.all(pending);
    expectServedOrUnavailable(answers);
    expect(answers.filter((a) => a.status === 503).length).toBeGreaterThan(0);
  });

  it('requests sent while Redis is down get 503, never 500', async () => {
    const answers = await Promise.all(load(subject, 80));
    expectServedOrUnavailable(answers);
    expect(answers.filter((a) => a.status === 503).length).toBeGreaterThan(0);
  });
});

describe.skipIf(!available)('Redis dies behind something that still accepts connections', () => {
  let subject: Subject;
  beforeAll(async () => {
    subject = await startSubject();
  });
  afterAll(() => stopSubject(subject));

  it('requests in flight get 503 too, rather than hanging', async () => {
    await Promise.all(load(subject, 8));
    subject.proxy.hold();
    const pending = load(subject, 40);
    await subject.proxy.holding();
    // The proxy keeps accepting (and then dropping) connections, like a load balancer or a
    // Redis coming back up: ioredis keeps in-flight commands for a resend that never comes.
    await subject.redis.kill();
    const answers = await Promise.all(pending);
    expectServedOrUnavailable(answers);
    expect(answers.filter((a) => a.status === 503).length).toBeGreaterThan(0);
  });
});
