import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import { FakeUpstream, sendJson, sendSse } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { CHAT, chunk, completion, type UpstreamHandler } from './support/routing-fixtures.js';

/*
 * ⑤ retry.attemptTimeoutMs: an attempt not ready to answer in time (no first event, no JSON
 * answer) is abandoned, its upstream request aborted, and the next candidate tried; once an
 * attempt is ready, the timeout no longer applies.
 */

/** Long enough that a local upstream answering at once is never cut, under any load. */
const ATTEMPT_TIMEOUT_MS = 1_500;

let servers: FakeUpstream[] = [];
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
  gw = undefined;
});

const answers: UpstreamHandler = (req, res) => {
  if (req.json?.stream) return sendSse(res, [chunk(String(req.json?.model))]);
  sendJson(res, 200, completion(String(req.json?.model)));
};
/** Accepts the request and never answers (until the gateway gives up on it). */
const stalls: UpstreamHandler = () => {};
/** Sends the stream's headers, then nothing. */
const stallsBeforeFirstEvent: UpstreamHandler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.flushHeaders();
};

async function setup(
  first: UpstreamHandler,
  retry: Record<string, unknown> = { attemptTimeoutMs: ATTEMPT_TIMEOUT_MS },
) {
  const a = new FakeUpstream().on('POST', CHAT, first);
  const b = new FakeUpstream().on('POST', CHAT, answers);
  servers.push(a, b);
  const [baseA, baseB] = await Promise.all([a.start(), b.start()]);
  gw = await startGateway({
    backends: {
      a: { type: 'openai', baseUrl: `${baseA}/v1`, apiKey: 'ka' },
      b: { type: 'openai', baseUrl: `${baseB}/v1`, apiKey: 'kb' },
    },
    models: {
      duo: {
        strategy: 'priority',
        deployments: [
          { backend: 'a', model: 'up-a' },
          { backend: 'b', model: 'up-b', priority: 1 },
        ],
        retry: { attempts: 2, backoffMs: 1, maxBackoffMs: 5, ...retry },
      },
    },
  });
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
  return { a, b, client };
}

const ask = { model: 'duo', messages: [{ role: 'user' as const, content: 'hi' }] };

describe('retry.attemptTimeoutMs', () => {
  it('a deployment that never answers is abandoned (its request aborted) and the next one answers', async () => {
    const { a, b, client } = await setup(stalls);
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices[0]?.message.content).toBe('up-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    await a.waitForAbort();
    expect(a.requests.map((request) => request.aborted)).toEqual([true]);
    expect(b.requests).toHaveLength(1);
    const line = gw?.logs.find((entry) => entry.msg === 'request');
    expect(line?.attempts).toMatchObject([
      { deployment: 'a', status: 504 },
      { deployment: 'b', status: 200 },
    ]);
  });

  it('a stream that sent its headers but no first event is abandoned; the next one serves it whole', async () => {
    const { a, client } = await setup(stallsBeforeFirstEvent);
    const { data: stream, response } = await client.chat.completions
      .create({ ...ask, stream: true })
      .withResponse();
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.choices[0]?.delta.content ?? '');
    expect(parts.join('')).toBe('up-b');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    await a.waitForAbort();
  });

  it('every deployment too slow: 504 upstream_timeout', async () => {
    const { a } = await setup(stalls, { attemptTimeoutMs: ATTEMPT_TIMEOUT_MS, attempts: 1 });
    const client = new OpenAI({ baseURL: gw?.baseURL, apiKey: 'k', maxRetries: 0 });
    const error = await client.chat.completions.create(ask).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_timeout');
    await a.waitForAbort();
  });

  it('does not cut a stream that is slow after its first event', async () => {
    const { a, b, client } = await setup((_req, res) =>
      sendSse(res, [chunk('first'), chunk('-second')], { delayMs: ATTEMPT_TIMEOUT_MS + 500 }),
    );
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.choices[0]?.delta.content ?? '');
    expect(parts.join('')).toBe('first-second');
    expect(a.requests.map((request) => request.aborted)).toEqual([false]);
    expect(b.requests).toHaveLength(0);
  });

  it('is optional and positive', () => {
    const models = (retry: unknown) => ({
      backends: { a: { type: 'mock' } },
      models: { m: { deployments: [{ backend: 'a' }], retry } },
    });
    expect(parseConfig(models({}), {}, 'test').models.m?.retry?.attemptTimeoutMs).toBeUndefined();
    expect(
      parseConfig(models({ attemptTimeoutMs: 2_000 }), {}, 'test').models.m?.retry?.attemptTimeoutMs,
    ).toBe(2_000);
    expect(() => parseConfig(models({ attemptTimeoutMs: 0 }), {}, 'test')).toThrow(/attemptTimeoutMs/);
  });
});
