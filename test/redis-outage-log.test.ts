import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisConnection } from '../src/store/redis-connection.js';
import { RedisRegistryStore } from '../src/store/redis-registry-store.js';
import { StoreUnavailableError } from '../src/store/store-unavailable.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';

/**
 * What a Redis outage writes to the log: every request it refuses gets its 503, its request line
 * and a `request failed` line, as any failed request does, but that line is a warning; the
 * outage itself is one error line when it starts and one line when it is over. Any other 5xx
 * (a backend failure, Redis refusing while connected) stays an error line each. Always a
 * redis-server of this suite's own (it is killed and started again).
 */

const available = hasRedisServerBinary();
if (!available) {
  process.stderr.write('\n!!! REDIS OUTAGE LOG SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
}

const WARN = 40;
const ERROR = 50;
const OUTAGE_STARTS = 'store unavailable: requests that need it are answered 503 until it is back';
const OUTAGE_ENDS = 'store available again';

type LogLine = Record<string, unknown>;

let redis: RestartableRedis;
let gw: TestGateway;
let admin: AdminHttp;
let key: string;

beforeAll(async () => {
  if (!available) return;
  redis = await startRestartableRedisServer();
  gw = await startGateway({
    // Nothing listens on port 1: a backend failure, the kind of 5xx nobody expects.
    backends: { mock: { type: 'mock' }, gone: { type: 'openai', baseUrl: 'http://127.0.0.1:1/v1' } },
    models: { mock: { backend: 'mock' }, gone: { backend: 'gone' } },
    redis: { url: redis.url },
    admin: { key: TEST_ADMIN_KEY },
    // Every request asks the store for its key, and gets through on the last answer while Redis
    // is away: what refuses it then is its quota, which needs Redis.
    auth: { cacheTtlMs: 0, staleOkSeconds: 600 },
  });
  admin = new AdminHttp(gw.url);
  const team = await admin.createTeam({
    name: 'outage-log',
    budgets: [{ period: 'day', max_tokens: 1_000_000 }],
  });
  key = (await admin.createKey({ team_id: team.id, name: 'k' })).key;
});

afterAll(async () => {
  await gw?.close();
  await redis?.stop();
});

function chat(model: string): Promise<Response> {
  return fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
  });
}

function listTeams(): Promise<Response> {
  return fetch(`${gw.url}/admin/teams`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
}

/** The status and request id of each answer (its body read, so its connection is done). */
async function answered(responses: Array<Promise<Response>>): Promise<Array<{ status: number; id: string }>> {
  return Promise.all(
    responses.map(async (pending) => {
      const response = await pending;
      await response.arrayBuffer();
      return { status: response.status, id: String(response.headers.get('x-request-id')) };
    }),
  );
}

function lines(msg: string): LogLine[] {
  return gw.logs.filter((line) => line.msg === msg);
}

function linesOf(id: string): LogLine[] {
  return gw.logs.filter((line) => line.request_id === id);
}

/** Waits for the request line of each of `ids`: written once the response is finished. */
async function requestLinesOf(ids: string[]): Promise<LogLine[]> {
  const found = () => ids.map((id) => linesOf(id).find((line) => line.msg === 'request'));
  const all = await pollUntil(
    async () => found(),
    (each) => each.every((line) => line !== undefined),
  );
  return all.filter((line): line is LogLine => line !== undefined);
}

async function outageEnds(count: number): Promise<LogLine[]> {
  return pollUntil(
    async () => lines(OUTAGE_ENDS),
    (ends) => ends.length >= count,
  );
}

describe.skipIf(!available)('a Redis outage in the log', () => {
  it('is one error line when it starts and one when it is over; each refused request only warns', async () => {
    expect((await answered([chat('mock')]))[0]?.status).toBe(200);
    await redis.kill();

    const refused = await answered([listTeams(), chat('mock'), listTeams(), chat('mock'), listTeams()]);
    expect(refused.map((answer) => answer.status)).toEqual([503, 503, 503, 503, 503]);
    const ids = refused.map((answer) => answer.id);
    // Each keeps its own lines: the request line (as for any request) and a `request failed` warning.
    const requestLines = await requestLinesOf(ids);
    expect(requestLines.map((line) => [line.status, line.level])).toEqual(ids.map(() => [503, 30]));
    for (const id of ids) {
      const failed = linesOf(id).filter((line) => line.msg === 'request failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ level: WARN, error: { type: 'StoreUnavailableError' } });
    }
    // The outage is the error, once, saying which Redis and why.
    const starts = lines(OUTAGE_STARTS);
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({
      level: ERROR,
      error: { message: expect.stringContaining(`cannot reach Redis at ${redis.url}: `) },
    });
    expect(gw.logs.filter((line) => line.level === ERROR)).toEqual(starts);
    expect(lines(OUTAGE_ENDS)).toEqual([]);

    await redis.restart();
    const [ends] = await outageEnds(1);
    expect(ends).toMatchObject({ level: WARN, refused: 5 });
    expect(ends?.unavailable_ms).toBeTypeOf('number');
    expect((await answered([chat('mock')]))[0]?.status).toBe(200);
  });

  it('says a later outage again, as its own', async () => {
    await redis.kill();
    const [refused] = await answered([listTeams()]);
    expect(refused?.status).toBe(503);
    await requestLinesOf([refused?.id ?? '']);
    expect(lines(OUTAGE_STARTS)).toHaveLength(2);
    await redis.restart();
    const ends = await outageEnds(2);
    expect(ends[1]).toMatchObject({ level: WARN, refused: 1 });
    expect(lines(OUTAGE_STARTS)).toHaveLength(2);
  });

  it('answers Redis refusing while connected (out of memory, in a MULTI) with 503, each an error line: no outage end to say', async () => {
    const direct = new Redis(redis.url);
    try {
      await direct.config('SET', 'maxmemory', '1');
      const created = await fetch(`${gw.url}/admin/teams`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'no-room' }),
      });
      await created.arrayBuffer();
      expect(created.status).toBe(503);
      const id = String(created.headers.get('x-request-id'));
      await requestLinesOf([id]);
      const failed = linesOf(id).filter((line) => line.msg === 'request failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ level: ERROR, error: { type: 'StoreUnavailableError' } });
      expect(lines(OUTAGE_STARTS)).toHaveLength(2);
    } finally {
      await direct.config('SET', 'maxmemory', '0');
      await direct.quit();
    }
  });

  it('keeps a 5xx that is no outage at error level', async () => {
    const [failed] = await answered([chat('gone')]);
    expect(failed?.status).toBeGreaterThanOrEqual(500);
    await requestLinesOf([failed?.id ?? '']);
    const lines = linesOf(failed?.id ?? '').filter((line) => line.msg === 'request failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe(ERROR);
  });
});

describe.skipIf(!available)('the outage of a connection that stops answering', () => {
  let paused: RestartableRedis;
  let connection: RedisConnection;

  beforeAll(async () => {
    if (!available) return;
    paused = await startRestartableRedisServer();
    // A short deadline, so the test sees a command go unanswered past it.
    connection = new RedisConnection({ url: paused.url }, 1_000);
    await connection.ready();
  });

  afterEach(() => paused?.resume());

  afterAll(async () => {
    paused?.resume();
    await connection?.close();
    await paused?.stop();
  });

  it('is one outage for every refusal until Redis answers again, saying it stopped answering', async () => {
    const registry = new RedisRegistryStore(connection);
    await registry.getTeam('none');
    paused.pause();
    const first = await registry.getTeam('none').catch((error: unknown) => error);
    const second = await registry.getTeam('none').catch((error: unknown) => error);
    expect(first).toBeInstanceOf(StoreUnavailableError);
    expect(second).toBeInstanceOf(StoreUnavailableError);
    const outage = (first as StoreUnavailableError).outage;
    expect(outage?.reason).toBe(
      `Redis at ${paused.url} stopped answering: a command went unanswered past its deadline`,
    );
    expect((second as StoreUnavailableError).outage).toBe(outage);
    paused.resume();
    await outage?.over;
    expect(connection.usable).toBe(true);
    await registry.getTeam('none');
  });
});
