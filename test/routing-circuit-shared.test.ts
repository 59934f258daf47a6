import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, openaiError, sendJson } from './support/fake-upstream.js';
import type { GatewayProcess } from './support/gateway-process.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { startFailoverPair } from './support/routing-fixtures.js';

/*
 * The circuit breaker is shared through Redis: failures seen by one gateway process open the
 * deployment's circuit for another process on the same Redis.
 */

let redis: TestRedis | undefined;
let failing: FakeUpstream;
let healthy: FakeUpstream;
let pair: Awaited<ReturnType<typeof startFailoverPair>> | undefined;
let first: GatewayProcess | undefined;
let second: GatewayProcess | undefined;
// Its own name per run: circuit state is keyed by model and deployment, and Redis outlives runs.
const MODEL = `shared-${crypto.randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  redis = await redisForTests();
  if (!redis) return;
  failing = new FakeUpstream().on('POST', '/v1/chat/completions', (_req, res) =>
    sendJson(res, 500, openaiError('boom', 'server_error')),
  );
  healthy = new FakeUpstream().on('POST', '/v1/chat/completions', (req, res) =>
    sendJson(res, 200, {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: String(req.json?.model),
      choices: [
        { index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop', logprobs: null },
      ],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    }),
  );
  const [failingUrl, healthyUrl] = await Promise.all([failing.start(), healthy.start()]);
  pair = await startFailoverPair({ model: MODEL, failingUrl, healthyUrl, redisUrl: redis.url });
  ({ first, second } = pair);
});

afterAll(async () => {
  await pair?.stop();
  await Promise.all([failing?.stop(), healthy?.stop()]);
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
  await response.arrayBuffer();
  return response;
}

describe('a circuit shared by two gateway processes on one Redis', () => {
  it("one instance's failures open the deployment for the other", async () => {
    if (!first || !second) throw new Error('gateways not started');
    for (let i = 0; i < 2; i++) {
      const response = await chat(first);
      expect(response.status).toBe(200);
      expect(response.headers.get('x-tollgate-backend')).toBe('healthy');
      expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    }
    expect(failing.requests).toHaveLength(2);
    const other = await chat(second);
    expect(other.status).toBe(200);
    expect(other.headers.get('x-tollgate-backend')).toBe('healthy');
    expect(other.headers.get('x-tollgate-attempts')).toBe('1');
    expect(failing.requests).toHaveLength(2);
  });
});
