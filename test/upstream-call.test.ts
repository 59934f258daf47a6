import { getEventListeners, once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClientAbortedError } from '../src/backends/transport-failure.js';
import { callUpstream, type ReadWhole, type UpstreamBounds } from '../src/backends/upstream-call.js';
import { UpstreamError, UpstreamTimeoutError } from '../src/errors.js';
import { FakeUpstream } from './support/fake-upstream.js';

const PATH = '/v1/chat/completions';
const wholeUpTo =
  (limit: number): ReadWhole =>
  () =>
    limit;

/** Resolves the test's side of a step the fake upstream waits for. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

async function readAll(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

describe('callUpstream (one upstream request through undici dispatch)', () => {
  let upstream: FakeUpstream;
  let pool: Pool;
  let client: AbortController;

  const bounds = (totalMs = 60_000): UpstreamBounds => ({ backend: 'up', totalMs, signal: client.signal });
  const post = {
    method: 'POST' as const,
    path: PATH,
    headers: { 'content-type': 'application/json' },
    body: '{}',
  };
  const listeners = () => getEventListeners(client.signal, 'abort').length;

  beforeEach(async () => {
    upstream = new FakeUpstream();
    pool = new Pool(await upstream.start(), { connections: 2 });
    client = new AbortController();
  });

  afterEach(async () => {
    await pool.destroy();
    await upstream.stop();
  });

  it('reads an answer whole across its chunks before resolving, and lets go of the client signal', async () => {
    upstream.on('POST', PATH, async (_request, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Each part flushed before the next: usually one chunk each at the client.
      for (const part of ['{"a":', '1,"b":', '"two"}'])
        await new Promise((resolve) => res.write(part, resolve));
      res.end();
    });
    const answer = await callUpstream(pool, post, bounds(), wholeUpTo(1024));
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.whole?.cut).toBeUndefined();
    expect(answer.whole?.bytes.toString()).toBe('{"a":1,"b":"two"}');
    expect(await readAll(answer.chunks)).toHaveLength(0);
    expect(listeners()).toBe(0);
  });

  it('stops at the limit: the first bytes, cut "limit", without waiting for the rest (the connection goes)', async () => {
    upstream.on('POST', PATH, (_request, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Never ends: the call can only resolve by stopping at the limit.
      res.write('x'.repeat(1000));
    });
    const answer = await callUpstream(pool, post, bounds(), wholeUpTo(100));
    expect(answer.whole?.cut).toBe('limit');
    expect(answer.whole?.bytes.toString()).toBe('x'.repeat(100));
    await upstream.waitForAbort();
    expect(listeners()).toBe(0);
  });

  it('an answer that breaks off while read whole: what came, cut by the mapped transport failure', async () => {
    upstream.on('POST', PATH, (_request, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"partial":', () => res.destroy());
    });
    const answer = await callUpstream(pool, post, bounds(), wholeUpTo(1024));
    const cut = answer.whole?.cut;
    expect(cut).toBeInstanceOf(UpstreamError);
    expect(cut instanceof Error ? cut.message : '').toMatch(/backend 'up'/);
    expect(listeners()).toBe(0);
  });

  it('hands a streamed answer over at its headers and yields chunks as they arrive', async () => {
    const second = gate();
    upstream.on('POST', PATH, async (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      await second.opened;
      res.end('data: 2\n\n');
    });
    // The answer resolves while the upstream still waits for the test: handed over at the headers.
    const answer = await callUpstream(pool, post, bounds(), () => undefined);
    expect(answer.whole).toBeUndefined();
    const iterator = answer.chunks[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.toString()).toBe('data: 1\n\n');
    expect(listeners()).toBe(1);
    second.open();
    expect((await iterator.next()).value?.toString()).toBe('data: 2\n\n');
    expect((await iterator.next()).done).toBe(true);
    expect(listeners()).toBe(0);
  });

  it('pauses the upstream past 64 KiB unread, resumes as the reader catches up, and loses nothing', async () => {
    const total = 4 * 1024 * 1024;
    const pattern = (index: number) => Buffer.alloc(16 * 1024, index % 251);
    upstream.on('POST', PATH, async (_request, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let index = 0; index * 16 * 1024 < total; index += 1) {
        if (!res.write(pattern(index))) await once(res, 'drain');
      }
      res.end();
    });
    let paused!: () => void;
    const sawPause = new Promise<void>((resolve) => {
      paused = resolve;
    });
    // Watches the controller undici hands the exchange: paused once too much sits unread.
    const watched = pool.compose(
      (dispatch) => (options, handler) =>
        dispatch(options, {
          ...handler,
          onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
          onResponseStart: (controller, status, headers, message) =>
            handler.onResponseStart?.(controller, status, headers, message),
          onResponseData: (controller, chunk) => {
            handler.onResponseData?.(controller, chunk);
            if (controller.paused) paused();
          },
          onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
          onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
        }),
    );
    const answer = await callUpstream(watched, post, bounds(), () => undefined);
    // Nothing is read until the exchange has paused the connection.
    await sawPause;
    const body = await readAll(answer.chunks);
    expect(body.length).toBe(total);
    for (let index = 0; index * 16 * 1024 < total; index += 1) {
      expect(body.subarray(index * 16 * 1024, (index + 1) * 16 * 1024).equals(pattern(index))).toBe(true);
    }
    expect(listeners()).toBe(0);
  });

  it('a reader that leaves early ends the upstream request and lets go of the client signal', async () => {
    upstream.on('POST', PATH, (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    });
    const answer = await callUpstream(pool, post, bounds());
    for await (const chunk of answer.chunks) {
      expect(chunk.toString()).toBe('data: 1\n\n');
      break;
    }
    await upstream.waitForAbort();
    expect(listeners()).toBe(0);
  });

  it('a client that already left sends nothing upstream', async () => {
    upstream.on('POST', PATH, (_request, res) => {
      res.end('{}');
    });
    client.abort();
    await expect(callUpstream(pool, post, bounds())).rejects.toBeInstanceOf(ClientAbortedError);
    client = new AbortController();
    await callUpstream(pool, post, bounds(), wholeUpTo(100));
    // Requests on a pool of two are in order: the first would have arrived before the second.
    expect(upstream.requests).toHaveLength(1);
  });

  it("the client's abort before the answer: the request is ended and the call fails as the client's", async () => {
    const arrived = gate();
    upstream.on('POST', PATH, () => arrived.open());
    const call = callUpstream(pool, post, bounds());
    await arrived.opened;
    client.abort();
    await expect(call).rejects.toBeInstanceOf(ClientAbortedError);
    await upstream.waitForAbort();
    expect(listeners()).toBe(0);
  });

  it("the client's abort mid-stream: the next read fails as the client's and the request is ended", async () => {
    upstream.on('POST', PATH, (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    });
    const answer = await callUpstream(pool, post, bounds());
    const iterator = answer.chunks[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    client.abort();
    await expect(iterator.next()).rejects.toBeInstanceOf(ClientAbortedError);
    await upstream.waitForAbort();
    expect(listeners()).toBe(0);
  });

  it('the total timeout ends a call that never answers, and a stream that never ends, as timeouts', async () => {
    upstream.on('POST', PATH, () => {});
    await expect(callUpstream(pool, post, bounds(50))).rejects.toBeInstanceOf(UpstreamTimeoutError);
    upstream.on('POST', PATH, (_request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    });
    // Usually answered within the 200 ms and cut mid-stream; on a slow machine cut before: a timeout either way.
    const streamed = async () => readAll((await callUpstream(pool, post, bounds(200))).chunks);
    await expect(streamed()).rejects.toThrow(/exceeded its total timeout/);
    expect(listeners()).toBe(0);
  });
});
