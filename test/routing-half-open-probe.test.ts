import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import type { GatewayProcess } from './support/gateway-process.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { startFailoverPair } from './support/routing-fixtures.js';

/*
 * A half-open circuit lets exactly one probe through across the whole fleet: two gateway
 * processes on one Redis, many concurrent requests while the probe is held open upstream.
 */

type Handler = Parameters<FakeUpstream['on']>[2];

let redis: TestRedis | undefined;
let client: Redis | undefined;
let failing: FakeUpstream;
let healthy: FakeUpstream;
let pair: Awaited<ReturnType<typeof startFailoverPair>> | undefined;
let first: GatewayProcess | undefined;
let second: GatewayProcess | undefined;
// Its own name per run: circuit state is keyed by model and deployment, and Redis outlives runs.
const MODEL = `probe-${crypto.randomUUID().slice(0, 8)}`;
/** The circuit hash of deployment `<model>/failing` (layout: src/store/redis-health-store.ts). */
const CIRCUIT_KEY = `tg:{h:${encodeURIComponent(`${MODEL}/failing`)}}:circuit`;

function completion(content: string) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

let failingHandler: Handler = (_req, res) => sendJson(res, 500, openaiError('boom', 'server_error'));

beforeAll(async () => {
  redis = await redisForTests();
  if (!redis) return;
  client = new Redis(redis.url);
  failing = new FakeUpstream().on('POST', '/v1/chat/completions', (req, res, raw) =>
    failingHandler(req, res, raw),
  );
  healthy = new FakeUpstream().on('POST', '/v1/chat/completions', (_req, res) =>
    sendJson(res, 200, completion('healthy')),
  );
  const [failingUrl, healthyUrl] = await Promise.all([failing.start(), healthy.start()]);
  pair = await startFailoverPair({ model: MODEL, failingUrl, healthyUrl, redisUrl: redis.url });
  ({ first, second } = pair);
});

afterAll(async () => {
  await pair?.stop();
  await Promise.all([failing?.stop(), healthy?.stop()]);
  await client?.del(CIRCUIT_KEY);
  client?.disconnect();
  await redis?.stop();
});

beforeEach((context) => {
  if (!redis) context.skip('no Redis available (see the notice above)');
});

async function chat(gateway: GatewayProcess) {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const body = (await response.json()) as { choices?: Array<{ message: { content: string } }> };
  return {
    status: response.status,
    backend: response.headers.get('x-tollgate-backend'),
    attempts: response.headers.get('x-tollgate-attempts'),
    content: body.choices?.[0]?.message.content,
  };
}

describe('the half-open probe across two gateway processes', () => {
  it('exactly one request reaches the failing deployment; its success closes the circuit', async () => {
    if (!first || !second || !client) throw new Error('gateways not started');
    // Open it from the first instance.
    for (let i = 0; i < 2; i++) expect((await chat(first)).backend).toBe('healthy');
    expect(failing.requests).toHaveLength(2);
    expect(await client.hget(CIRCUIT_KEY, 'st')).toBe('o');

    // The deployment recovers, but holds its answers until the test releases them.
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    failingHandler = async (_req, res) => {
      await released;
      sendJson(res, 200, completion('failing'));
    };
    // The cool-down is over: its end (`u`, on the instances' clock) moved into the past.
    await client.hset(CIRCUIT_KEY, 'u', '0');

    const requests = 20;
    let settled = 0;
    let allButOne!: () => void;
    const allButOneSettled = new Promise<void>((resolve) => {
      allButOne = resolve;
    });
    const answers = Array.from({ length: requests }, (_, i) =>
      chat(i % 2 === 0 ? first! : second!).finally(() => {
        settled += 1;
        if (settled === requests - 1) allButOne();
      }),
    );
    // Every request but the probe is answered while the probe is still held upstream.
    await allButOneSettled;
    expect(failing.requests).toHaveLength(3);
    expect(await client.hget(CIRCUIT_KEY, 'st')).toBe('h');

    release();
    const results = await Promise.all(answers);
    const probes = results.filter((result) => result.backend === 'failing');
    expect(probes).toEqual([{ status: 200, backend: 'failing', attempts: '1', content: 'failing' }]);
    for (const result of results.filter((r) => r.backend !== 'failing')) {
      expect(result).toEqual({ status: 200, backend: 'healthy', attempts: '1', content: 'healthy' });
    }
    expect(failing.requests).toHaveLength(3);

    // Closed for both instances: the failing deployment (priority 0) takes traffic again.
    expect(await client.hget(CIRCUIT_KEY, 'st')).toBeNull();
    expect(await chat(second)).toMatchObject({ backend: 'failing', attempts: '1' });
    expect(await chat(first)).toMatchObject({ backend: 'failing', attempts: '1' });
    expect(failing.requests).toHaveLength(5);
  });
});
