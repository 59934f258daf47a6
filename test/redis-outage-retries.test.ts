import { afterEach, describe, expect, it } from 'vitest';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { hasRedisServerBinary } from './support/redis.js';
import { type RestartableRedis, startRestartableRedisServer } from './support/restartable-redis.js';

/**
 * Redis dies while requests are in flight and comes back (a crash and restart, data kept): what
 * those requests end with (their settles, their usage records) cannot be written while it is
 * gone. It is kept and written once Redis is back, so nothing is leaked (slots, reservations)
 * and nothing is lost (spend, usage); a gateway that stops first tries once more and says what
 * it could not write. Always a redis-server of this suite's own (it is killed).
 */

const available = hasRedisServerBinary();
if (!available) {
  process.stderr.write('\n!!! REDIS OUTAGE RETRIES SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
}

const USAGE = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };
const IN_FLIGHT = 3;

/** An upstream whose answers wait until the test opens the gate; counts who is waiting. */
class HeldUpstream {
  waiting = 0;
  private arrivals: Array<() => void> = [];
  private open: () => void = () => {};
  private readonly opened = new Promise<void>((resolve) => {
    this.open = resolve;
  });
  readonly server = new FakeUpstream().on('POST', '/v1/chat/completions', async (_request, res) => {
    this.waiting++;
    for (const arrived of this.arrivals) arrived();
    await this.opened;
    sendJson(res, 200, {
      id: 'chatcmpl-held',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
      usage: USAGE,
    });
  });

  async reached(count: number): Promise<void> {
    while (this.waiting < count) await new Promise<void>((resolve) => this.arrivals.push(resolve));
  }

  release(): void {
    this.open();
  }
}

interface Subject {
  redis: RestartableRedis;
  upstream: HeldUpstream;
  gw: TestGateway;
  admin: AdminHttp;
  teamId: string;
  keyId: string;
  key: string;
}

let subject: Subject | undefined;

async function start(): Promise<Subject> {
  const redis = await startRestartableRedisServer();
  const upstream = new HeldUpstream();
  const base = await upstream.server.start();
  const gw = await startGateway({
    auth: { staleOkSeconds: 60 },
    admin: { key: TEST_ADMIN_KEY },
    redis: { url: redis.url },
    backends: { up: { type: 'openai', baseUrl: `${base}/v1`, apiKey: 'k' } },
    models: { m: { backend: 'up' } },
  });
  const admin = new AdminHttp(gw.url);
  const team = await admin.createTeam({
    name: 'outage-retries',
    limits: { max_concurrent: IN_FLIGHT },
    budgets: [{ period: 'day', max_tokens: 100_000 }],
  });
  const issued = await admin.createKey({ team_id: team.id, name: 'k' });
  subject = { redis, upstream, gw, admin, teamId: team.id, keyId: issued.id, key: issued.key };
  return subject;
}

afterEach(async () => {
  const s = subject;
  subject = undefined;
  s?.upstream.release();
  await s?.gw.close();
  await s?.upstream.server.stop();
  await s?.redis.stop();
});

function chat({ gw, key }: Subject, content: string): Promise<Response> {
  return fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content }], max_tokens: 20 }),
  });
}

interface Standing {
  concurrency?: { inUse: number };
  budgets: Array<{ spent_tokens: number; reserved_tokens: number }>;
}

/** The team's standing; undefined while the gateway has not reconnected yet (503). */
async function standing({ admin, teamId }: Subject): Promise<Standing | undefined> {
  const response = await admin.call<{ standing: Standing }>('GET', `/teams/${teamId}`);
  return response.status === 200 ? response.body.standing : undefined;
}

/** Served requests in the usage report; -1 while the gateway has not reconnected yet (503). */
async function servedRequests({ admin, keyId }: Subject): Promise<number> {
  const response = await admin.call<{ data: Array<{ requests: number }> }>(
    'GET',
    `/usage?key_id=${keyId}&group_by=key`,
  );
  if (response.status !== 200) return -1;
  return response.body.data.reduce((sum, row) => sum + row.requests, 0);
}

/** Log lines whose message starts with `prefix`. */
function logged({ gw }: Subject, prefix: string): Array<Record<string, unknown>> {
  return gw.logs.filter((line) => String(line.msg).startsWith(prefix));
}

/** Sends IN_FLIGHT requests, kills Redis once the upstream holds all of them, then lets them end. */
async function endWhileRedisIsDown(s: Subject): Promise<void> {
  const answers = Array.from({ length: IN_FLIGHT }, (_, i) => chat(s, `in flight ${i}`));
  await s.upstream.reached(IN_FLIGHT);
  await s.redis.kill();
  s.upstream.release();
  // The clients got their answers, usage included: the gateway served them.
  for (const answer of await Promise.all(answers)) {
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { usage: unknown }).usage).toEqual(USAGE);
  }
  // Their settles and their usage batch have been tried, and failed, while Redis was down.
  await pollUntil(
    async () => ({
      settles: logged(s, 'could not settle a quota reservation').length,
      usage: logged(s, 'could not record usage').length,
    }),
    (tried) => tried.settles >= IN_FLIGHT && tried.usage >= 1,
  );
  expect(logged(s, 'could not settle a quota reservation')).toHaveLength(IN_FLIGHT);
}

describe.skipIf(!available)('requests that end while Redis is down', () => {
  it('are settled and recorded once Redis is back: no slot, reservation or usage record is lost', async () => {
    const s = await start();
    await endWhileRedisIsDown(s);
    await s.redis.restart();

    const settled = await pollUntil(
      () => standing(s),
      (now) => now?.concurrency?.inUse === 0 && now.budgets[0]?.reserved_tokens === 0,
    );
    expect(settled?.concurrency?.inUse).toBe(0);
    expect(settled?.budgets[0]).toMatchObject({
      spent_tokens: IN_FLIGHT * USAGE.total_tokens,
      reserved_tokens: 0,
    });
    expect(
      await pollUntil(
        () => servedRequests(s),
        (served) => served >= IN_FLIGHT,
      ),
    ).toBe(IN_FLIGHT);

    // The slots are free again: as many requests as the limit are served at once.
    const upstreamSeen = s.upstream.waiting;
    const again = Array.from({ length: IN_FLIGHT }, (_, i) => chat(s, `after ${i}`));
    await s.upstream.reached(upstreamSeen + IN_FLIGHT);
    expect((await Promise.all(again)).map((answer) => answer.status)).toEqual([200, 200, 200]);
    // Recorded once each, however many times they were tried.
    expect(
      await pollUntil(
        () => servedRequests(s),
        (served) => served >= 2 * IN_FLIGHT,
      ),
    ).toBe(2 * IN_FLIGHT);
    // Room for the polls above to give up and say what is missing, rather than time out.
  }, 60_000);

  it('a gateway that stops before Redis is back tries once more and logs what is lost', async () => {
    const s = await start();
    await endWhileRedisIsDown(s);
    await s.gw.close();
    const lostSettles = logged(s, 'lost a quota reservation');
    expect(lostSettles).toHaveLength(IN_FLIGHT);
    for (const line of lostSettles) expect(line.level).toBe(50);
    const lostUsage = logged(s, 'lost usage records');
    expect(lostUsage.length).toBeGreaterThan(0);
    expect(lostUsage.reduce((sum, line) => sum + Number(line.records), 0)).toBe(IN_FLIGHT);
  });
});
