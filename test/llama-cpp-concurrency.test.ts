import { afterEach, describe, expect, it } from 'vitest';
import { expectErrorResponse } from './support/spec-validator.js';
import { writeTinyGguf } from './support/tiny-gguf.js';
import { startTinyModelGateway, type TinyModelGateway } from './support/tiny-gguf-gateway.js';

/**
 * Slots and the queue, observed through events (the first chunk of a stream, the queue's own
 * change notifications), never through timing. A request "holding" its slot is a stream asked
 * for almost the whole context (16k tokens) whose client reads only its first chunk: it keeps
 * generating, then stalls on backpressure, until the test lets it go.
 */
const ADMIN_KEY = 'llama-cpp-admin-key-0123';
const LONG = 16_000;
const modelPath = writeTinyGguf();
let gw: TinyModelGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function start(slots: number, queue: number): Promise<TinyModelGateway> {
  gw = await startTinyModelGateway({
    backend: { model: modelPath, contextSize: 16_384, slots, queue },
    extra: { admin: { key: ADMIN_KEY } },
  });
  await gw.backend.loaded;
  return gw;
}

function queueOf(gateway: TinyModelGateway) {
  return gateway.backend.model('tiny').queue;
}

/** Resolves once `holds()` is true, checked now and on every change of the queue. */
function until(gateway: TinyModelGateway, holds: () => boolean): Promise<void> {
  const queue = queueOf(gateway);
  return new Promise((resolve) => {
    if (holds()) return resolve();
    const stop = queue.onChange(() => {
      if (holds()) {
        stop();
        resolve();
      }
    });
  });
}

function post(gateway: TinyModelGateway, body: Record<string, unknown>, signal?: AbortSignal) {
  return fetch(`${gateway.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hello world' }], ...body }),
    ...(signal ? { signal } : {}),
  });
}

function stoppedGenerations(gateway: TinyModelGateway): number {
  return gateway.backendLogs().filter((line) => line.msg === 'llama-cpp generation stopped: the client left')
    .length;
}

/** A stream that holds a slot: resolves once its first chunk has arrived. */
async function holdingStream(gateway: TinyModelGateway): Promise<AbortController> {
  const controller = new AbortController();
  const response = await post(gateway, { stream: true, max_tokens: LONG, temperature: 0 }, controller.signal);
  expect(response.status).toBe(200);
  const reader = response.body?.getReader();
  const first = await reader?.read();
  expect(new TextDecoder().decode(first?.value)).toContain('chat.completion.chunk');
  return controller;
}

describe('slots and the queue', () => {
  it('queues beyond the slots, refuses beyond the queue with 429, serves the queued one when a slot frees', async () => {
    const gateway = await start(1, 1);
    const holder = await holdingStream(gateway);
    expect(queueOf(gateway).busy).toBe(1);

    const queued = post(gateway, { max_tokens: 3, temperature: 0 });
    await until(gateway, () => queueOf(gateway).waiting === 1);

    const refused = await post(gateway, { max_tokens: 3 });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    const error = (await refused.json()) as { error: { code: string; type: string; message: string } };
    expectErrorResponse(error);
    expect(error.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });

    // The holder's client leaves: its slot goes to the queued request at once.
    holder.abort();
    const served = await queued;
    expect(served.status).toBe(200);
    const body = (await served.json()) as { usage: { completion_tokens: number } };
    expect(body.usage.completion_tokens).toBe(3);
    await until(gateway, () => queueOf(gateway).busy === 0);

    const waited = gateway.backendLogs().filter((line) => line.msg === 'llama-cpp request waited for a slot');
    expect(waited).toHaveLength(1);
    expect(waited[0]?.queue_wait_ms).toBeGreaterThan(0);
    expect(gateway.backendLogs().some((line) => line.msg === 'llama-cpp queue full: request refused')).toBe(
      true,
    );

    const metrics = await fetch(`${gateway.url}/admin/metrics`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    const text = await metrics.text();
    expect(text).toContain('# TYPE tollgate_backend_queue_wait_seconds histogram');
    expect(text).toContain('tollgate_backend_queue_wait_seconds_count{backend="local",model="tiny"} 2');
    expect(text).toContain('tollgate_backend_queue_rejected_total{backend="local",model="tiny"} 1');
  });

  it('a client that leaves while queued leaves the queue; one that leaves mid-stream frees its slot', async () => {
    const gateway = await start(1, 4);
    const holder = await holdingStream(gateway);
    const leaving = new AbortController();
    const queued = post(gateway, { max_tokens: 3 }, leaving.signal).catch((error: Error) => error);
    await until(gateway, () => queueOf(gateway).waiting === 1);
    leaving.abort();
    await until(gateway, () => queueOf(gateway).waiting === 0);
    expect(await queued).toBeInstanceOf(Error);
    // Still held by the stream: the queued request that left did not take or free anything.
    expect(queueOf(gateway).busy).toBe(1);

    holder.abort();
    await until(gateway, () => queueOf(gateway).busy === 0);
    expect(stoppedGenerations(gateway)).toBe(1);
    const next = await post(gateway, { max_tokens: 5, temperature: 0 });
    expect(next.status).toBe(200);
    expect(((await next.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(5);
  });

  it('a JSON request whose client leaves stops generating and frees its slot', async () => {
    const gateway = await start(1, 1);
    const leaving = new AbortController();
    const pending = post(gateway, { max_tokens: LONG }, leaving.signal).catch((error: Error) => error);
    await until(gateway, () => queueOf(gateway).busy === 1);
    leaving.abort();
    await until(gateway, () => queueOf(gateway).busy === 0);
    expect(await pending).toBeInstanceOf(Error);
    // Stopped, not run to its end (16k tokens) before the slot came back.
    expect(stoppedGenerations(gateway)).toBe(1);
    const next = await post(gateway, { max_tokens: 2 });
    expect(next.status).toBe(200);
  });

  it('runs as many requests at once as it has slots', async () => {
    const gateway = await start(2, 1);
    const first = await holdingStream(gateway);
    const second = await holdingStream(gateway);
    expect(queueOf(gateway).busy).toBe(2);
    const third = post(gateway, { max_tokens: 2 });
    await until(gateway, () => queueOf(gateway).waiting === 1);
    first.abort();
    expect((await third).status).toBe(200);
    second.abort();
    await until(gateway, () => queueOf(gateway).busy === 0);
  });
});
