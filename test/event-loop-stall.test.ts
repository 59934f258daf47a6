import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminHttp } from './support/admin-http.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A request never stalls everyone else: the largest body the gateway admits (just under its 20 MiB
 * body limit, base64-looking text, the costliest kind to tokenize) on a key WITH limits, so its
 * prompt estimate runs, while a small request on another team's key must be served meanwhile.
 * Before the token count was bounded, the big one held the event loop for minutes.
 */
const ADMIN = 'test-admin-key-0123456789';
const BODY_LIMIT = 20 * 1024 * 1024;
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

function keyFor(team: Record<string, unknown>): Promise<string> {
  return new AdminHttp(gw?.url ?? '', ADMIN).teamKey(team);
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends `body`; `flushed` resolves once every byte of it has been handed to the socket. */
function send(path: string, key: string, body: string) {
  let flushed!: () => void;
  const sent = new Promise<void>((resolve) => {
    flushed = resolve;
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    const url = new URL(path, gw?.url);
    const req = httpRequest(
      url,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body, flushed);
  });
  return { sent, answer };
}

describe('a request never stalls everyone else', () => {
  it('the largest admitted body, estimated on a limited key, leaves a small request on another key served meanwhile', async () => {
    gw = await startGateway({
      auth: {},
      admin: { key: ADMIN },
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
    });
    const limitedKey = await keyFor({ limits: { tokens_per_minute: 1_000_000 } });
    const otherKey = await keyFor({});

    const envelope = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: '' }] });
    const text = randomBytes(BODY_LIMIT)
      .toString('base64')
      .slice(0, BODY_LIMIT - envelope.length - 1024);
    const bigBody = JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: text }] });
    expect(bigBody.length).toBeLessThan(BODY_LIMIT);
    expect(bigBody.length).toBeGreaterThan(BODY_LIMIT - 2048);

    const big = send('/v1/chat/completions', limitedKey, bigBody);
    await big.sent;

    const started = performance.now();
    const small = send(
      '/v1/chat/completions',
      otherKey,
      JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hi' }] }),
    );
    const smallAnswer = await small.answer;
    const smallMs = performance.now() - started;

    expect(smallAnswer.status).toBe(200);
    // A generous bound, not a benchmark: before the fix this waited minutes behind the big one.
    expect(smallMs).toBeLessThan(1_000);

    // The big one is answered too: ~20 MB of base64 can never fit 1M tokens a minute.
    const answer = await big.answer;
    expect(answer.status).toBe(429);
    expect(answer.headers['x-should-retry']).toBe('false');
    expect(answer.headers['retry-after']).toBeUndefined();
    const error = (JSON.parse(answer.body) as { error: Record<string, unknown> }).error;
    expect(error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded', param: null });
    expect(error.message).toMatch(
      /^Request too large for mock on your team's tokens per min \(TPM\): Limit 1000000, Requested \d+\./,
    );
  }, 60_000);
});
