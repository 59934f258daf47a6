import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';

/**
 * A key the gateway cannot check because Redis is down is refused with 503 ("cannot check API
 * keys") as part of the outage: each refusal's `request failed` line is a warning, the outage
 * itself one error line when it starts, and its end counts these refusals. Always a
 * redis-server of this suite's own (it is killed and started again).
 */

const available = hasRedisServerBinary();
if (!available) {
  process.stderr.write('\n!!! REDIS OUTAGE KEY CHECK SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
}

const WARN = 40;
const ERROR = 50;
const OUTAGE_STARTS = 'store unavailable: requests that need it are answered 503 until it is back';
const OUTAGE_ENDS = 'store available again';

type LogLine = Record<string, unknown>;

let redis: RestartableRedis;
let gw: TestGateway;
let key: string;

beforeAll(async () => {
  if (!available) return;
  redis = await startRestartableRedisServer();
  gw = await startGateway({
    backends: { mock: { type: 'mock' } },
    models: { mock: { backend: 'mock' } },
    redis: { url: redis.url },
    admin: { key: TEST_ADMIN_KEY },
    // Every request asks the store for its key, and no earlier answer carries a key through an
    // outage: what refuses it then is the key check.
    auth: { cacheTtlMs: 0, staleOkSeconds: 0 },
  });
  const admin = new AdminHttp(gw.url);
  const team = await admin.createTeam({ name: 'outage-key-check' });
  key = (await admin.createKey({ team_id: team.id, name: 'k' })).key;
});

afterAll(async () => {
  await gw?.close();
  await redis?.stop();
});

async function chat(): Promise<{ status: number; id: string; retryAfter: string | null; body: unknown }> {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hello' }] }),
  });
  return {
    status: response.status,
    id: String(response.headers.get('x-request-id')),
    retryAfter: response.headers.get('retry-after'),
    body: await response.json(),
  };
}

const lines = (msg: string): LogLine[] => gw.logs.filter((line) => line.msg === msg);
const linesOf = (id: string): LogLine[] => gw.logs.filter((line) => line.request_id === id);

describe.skipIf(!available)('a key check refused by a Redis outage', () => {
  it('is a warning each, the outage one error line, and counted in its end', async () => {
    expect((await chat()).status).toBe(200);
    await redis.kill();

    const refused = [await chat(), await chat(), await chat()];
    for (const answer of refused) {
      expect(answer.status).toBe(503);
      expect(answer.retryAfter).toBe('1');
      expect(answer.body).toMatchObject({
        error: {
          message: 'The gateway cannot check API keys right now; retry shortly.',
          type: 'server_error',
          code: 'service_unavailable',
        },
      });
    }
    // The request line is written when the response is finished.
    await pollUntil(
      async () => refused.map(({ id }) => linesOf(id).some((line) => line.msg === 'request')),
      (done) => done.every(Boolean),
    );
    for (const { id } of refused) {
      const failed = linesOf(id).filter((line) => line.msg === 'request failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({
        level: WARN,
        error: { type: 'StoreUnavailableError', message: expect.stringContaining('cannot check API keys') },
      });
    }
    const starts = lines(OUTAGE_STARTS);
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({ level: ERROR });
    expect(gw.logs.filter((line) => line.level === ERROR)).toEqual(starts);

    await redis.restart();
    const [ends] = await pollUntil(
      async () => lines(OUTAGE_ENDS),
      (found) => found.length >= 1,
    );
    expect(ends).toMatchObject({ level: WARN, refused: 3 });
    expect((await chat()).status).toBe(200);
  });
});
