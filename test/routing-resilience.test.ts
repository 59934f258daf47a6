import type { ServerResponse } from 'node:http';
import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { AdminHttp, TEST_ADMIN_KEY } from './support/admin-http.js';
import { expectEnvelope } from './support/error-envelope.js';
import {
  FakeUpstream,
  openaiError,
  type RecordedRequest,
  sendJson,
  sendSse,
} from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import { pollUntil } from './support/poll.js';
import { CHAT, chunk, completion, type UpstreamHandler } from './support/routing-fixtures.js';

/*
 * ⑤ attempts where they were missing: a stream whose first event is an error, the attempts kept
 * on the usage record, deployment token limits corrected to actual usage, uploads that fail
 * over, embedding batches partly answered from the cache, and audio holding its slot to the end.
 */

const FAST_RETRY = { attempts: 3, backoffMs: 1, maxBackoffMs: 5, maxRetryAfterMs: 200, deadlineMs: 30_000 };
const TRANSCRIBE = '/v1/audio/transcriptions';
const SPEECH = '/v1/audio/speech';
const TRANSLATE = '/v1/audio/translations';
const EMBED = '/v1/embeddings';

let servers: FakeUpstream[] = [];
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  await Promise.all(servers.map((server) => server.stop()));
  servers = [];
  gw = undefined;
});

const answers: UpstreamHandler = (req, res) => {
  if (req.json?.stream) return sendSse(res, [chunk('one'), chunk('two')]);
  sendJson(res, 200, completion(String(req.json?.model)));
};
const fails500: UpstreamHandler = (_req, res) => sendJson(res, 500, openaiError('boom', 'server_error'));

/** A 200 stream whose first event is this error object. */
const inBand =
  (error: Record<string, unknown>): UpstreamHandler =>
  (_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(`data: ${JSON.stringify({ error })}\n\n`);
  };

type Paths = typeof CHAT | typeof TRANSCRIBE | typeof TRANSLATE | typeof SPEECH | typeof EMBED;

/** Upstreams `a` and `b`, each with a swappable handler per path (chat answers by default). */
async function setup(
  models: ConfigInput['models'],
  extra: Partial<ConfigInput> = {},
  deps: { store?: MemoryStore; clock?: () => number } = {},
) {
  const handlers = {
    a: new Map<Paths, UpstreamHandler>([[CHAT, answers]]),
    b: new Map<Paths, UpstreamHandler>([[CHAT, answers]]),
  };
  const upstream = (name: 'a' | 'b') => {
    const server = new FakeUpstream();
    for (const path of [CHAT, TRANSCRIBE, TRANSLATE, SPEECH, EMBED] as const)
      server.on('POST', path, (req, res, raw) => {
        const handler = handlers[name].get(path);
        if (!handler) return sendJson(res, 404, openaiError(`no ${path} here`, 'invalid_request_error'));
        return handler(req, res, raw);
      });
    return server;
  };
  const a = upstream('a');
  const b = upstream('b');
  servers.push(a, b);
  const [baseA, baseB] = await Promise.all([a.start(), b.start()]);
  gw = await startGateway(
    {
      ...extra,
      backends: {
        a: { type: 'openai', baseUrl: `${baseA}/v1`, apiKey: 'ka' },
        b: { type: 'openai', baseUrl: `${baseB}/v1`, apiKey: 'kb' },
      },
      models,
    },
    {},
    deps,
  );
  const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
  return { a, b, handlers, gw, client };
}

/** `a` first, then `b`. */
const duo = (options: Record<string, unknown> = {}) => ({
  deployments: [
    { backend: 'a', model: 'up' },
    { backend: 'b', model: 'up', priority: 1 },
  ],
  strategy: 'priority' as const,
  retry: FAST_RETRY,
  ...options,
});

const ask = { model: 'duo', messages: [{ role: 'user' as const, content: 'hi' }] };

async function post(url: string, path: string, body: unknown) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: (await response.json()) as unknown };
}

/** The request log lines once there are `count` of them (written as each response ends). */
async function requestLines(gateway: TestGateway, count: number) {
  const lines = async () => gateway.logs.filter((entry) => entry.msg === 'request');
  return pollUntil(lines, (found) => found.length >= count);
}

describe('a stream whose first event is an error', () => {
  it('is a failed attempt: the next deployment serves the stream, whole', async () => {
    const { a, b, handlers, client, gw } = await setup({ duo: duo() });
    handlers.a.set(CHAT, inBand({ message: 'overloaded', type: 'server_error', code: null }));
    const { data: stream, response } = await client.chat.completions
      .create({ ...ask, stream: true })
      .withResponse();
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.choices[0]?.delta.content ?? '');
    expect(parts.join('')).toBe('onetwo');
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
    const [line] = await requestLines(gw, 1);
    expect(line?.attempts).toMatchObject([
      { deployment: 'a', status: 502 },
      { deployment: 'b', status: 200 },
    ]);
  });

  it("is relayed with its status when it is the client's (a 400, not retried), never as a 200", async () => {
    const { a, b, handlers, gw } = await setup({ duo: duo() });
    handlers.a.set(
      CHAT,
      inBand({
        message: 'bad temperature',
        type: 'invalid_request_error',
        code: 'invalid_value',
        param: 'x',
      }),
    );
    const response = await post(gw.url, CHAT, { ...ask, stream: true });
    expect(response.status).toBe(400);
    expectEnvelope(response.json, { type: 'invalid_request_error', code: 'invalid_value', param: 'x' });
    expect((response.json as { error: { message: string } }).error.message).toBe('bad temperature');
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
  });

  it('maps rate limits to 429 (retried) and unknown errors to 502', async () => {
    const { a, handlers, gw } = await setup({
      solo: { deployments: [{ backend: 'a', model: 'up' }], retry: { ...FAST_RETRY, attempts: 2 } },
    });
    handlers.a.set(
      CHAT,
      inBand({ message: 'slow down', type: 'rate_limit_error', code: 'rate_limit_exceeded' }),
    );
    const limited = await post(gw.url, CHAT, { ...ask, model: 'solo', stream: true });
    expect(limited.status).toBe(429);
    expectEnvelope(limited.json, { type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null });
    expect(limited.headers.get('x-tollgate-attempts')).toBe('2');
    expect(a.requests).toHaveLength(2);

    handlers.a.set(CHAT, inBand({ message: 'what?', type: 'mystery' }));
    const unknown = await post(gw.url, CHAT, { ...ask, model: 'solo', stream: true });
    expect(unknown.status).toBe(502);
    expectEnvelope(unknown.json, { type: 'server_error', code: 'upstream_error', param: null });
  });
});

describe('attempts on the usage record', () => {
  it('a request that failed over keeps both attempts on its record (admin API)', async () => {
    const { handlers, gw } = await setup({ duo: duo() }, {
      auth: {},
      admin: { key: TEST_ADMIN_KEY },
    } as Partial<ConfigInput>);
    handlers.a.set(CHAT, fails500);
    const key = await new AdminHttp(gw.url).teamKey();
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    const { response } = await client.chat.completions.create(ask).withResponse();
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    type Entry = {
      deployment: string;
      attempts: Array<{ deployment: string; status: number; duration_ms: number }>;
    };
    const log = await pollUntil(
      async () =>
        (
          (await (
            await fetch(`${gw.url}/admin/requests`, {
              headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
            })
          ).json()) as { data: Entry[] }
        ).data,
      (data) => data.length > 0,
    );
    expect(log).toHaveLength(1);
    expect(log[0]?.deployment).toBe('b');
    expect(log[0]?.attempts).toMatchObject([
      { deployment: 'a', status: 502 },
      { deployment: 'b', status: 200 },
    ]);
    for (const attempt of log[0]?.attempts ?? []) expect(attempt.duration_ms).toBeGreaterThanOrEqual(0);
  });
});

describe("a deployment's tokens per minute", () => {
  it('counts what the answer used, not the estimate: a request that would pass the limit goes elsewhere', async () => {
    const store = await MemoryStore.open();
    // Told when a correction has landed (it runs just after the answer went out).
    const corrections: number[] = [];
    let corrected: () => void = () => {};
    const adjust = store.health.adjustTokens.bind(store.health);
    store.health.adjustTokens = async (deployment, takenAtMs, delta, nowMs) => {
      await adjust(deployment, takenAtMs, delta, nowMs);
      corrections.push(delta);
      corrected();
    };
    const landed = new Promise<void>((resolve) => {
      corrected = resolve;
    });
    // Half way through a minute, and staying there: the window cannot roll over under the test.
    const midMinute = Date.parse('2026-12-04T12:00:30Z');
    const { a, b, handlers, gw } = await setup(
      {
        duo: duo({
          deployments: [
            { backend: 'a', model: 'up', limits: { tokensPerMinute: 1_000 } },
            { backend: 'b', model: 'up', priority: 1 },
          ],
        }),
      },
      {},
      { store, clock: () => midMinute },
    );
    // Estimated at a few tokens of prompt plus 10 of output; the answer used 900.
    const big = { prompt_tokens: 100, completion_tokens: 800, total_tokens: 900 };
    handlers.a.set(CHAT, (req, res) =>
      sendJson(res, 200, { ...completion(String(req.json?.model)), usage: big }),
    );
    const first = await post(gw.url, CHAT, { ...ask, max_tokens: 10 });
    expect(first.headers.get('x-tollgate-backend')).toBe('a');
    await landed;
    expect(corrections).toHaveLength(1);
    expect(corrections[0]).toBeGreaterThan(800);
    // 900 counted: another ~110 no longer fit in 1,000 (the estimate alone would have let it in).
    const second = await post(gw.url, CHAT, { ...ask, max_tokens: 100 });
    expect(second.status).toBe(200);
    expect(second.headers.get('x-tollgate-backend')).toBe('b');
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
    const line = (await requestLines(gw, 2)).at(-1);
    expect(line?.attempts).toMatchObject([
      { deployment: 'a', status: 'at-limit' },
      { deployment: 'b', status: 200 },
    ]);
  });
});

/** Bytes with multipart look-alikes inside, so a rewrite that looked inside the file would show. */
function audioBytes(size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  const tricky = Buffer.from('\r\n--\r\n\r\nContent-Disposition: form-data; name="model"\r\n\r\nfake\r\n--');
  for (let at = 0; at + tricky.length < size; at += 997) tricky.copy(bytes, at);
  return bytes;
}

async function formOf(request: RecordedRequest): Promise<FormData> {
  const contentType = String(request.headers['content-type']);
  return new Response(new Uint8Array(request.body), { headers: { 'content-type': contentType } }).formData();
}

describe('uploads over several deployments', () => {
  it('the first deployment fails: the second gets the same whole body and serves the transcription', async () => {
    const { a, b, handlers, client, gw } = await setup({ duo: duo() });
    handlers.a.set(TRANSCRIBE, fails500);
    handlers.b.set(TRANSCRIBE, async (req, res) => {
      const form = await formOf(req);
      const file = form.get('file') as Blob;
      sendJson(res, 200, {
        text: `${String(form.get('model'))}: ${(await file.arrayBuffer()).byteLength} bytes`,
      });
    });
    const audio = audioBytes(300 * 1024);
    const { data, response } = await client.audio.transcriptions
      .create({ model: 'duo', file: await toFile(audio, 'a.wav', { type: 'audio/wav' }), language: 'en' })
      .withResponse();
    expect(data.text).toBe(`up: ${audio.length} bytes`);
    expect(response.headers.get('x-tollgate-attempts')).toBe('2');
    expect(response.headers.get('x-tollgate-backend')).toBe('b');
    const [sentA, sentB] = [a.requests[0], b.requests[0]];
    if (!sentA || !sentB) throw new Error('expected one upload at each upstream');
    expect(sentB.body.equals(sentA.body)).toBe(true);
    const form = await formOf(sentB);
    expect(form.get('model')).toBe('up');
    expect(form.get('language')).toBe('en');
    expect(Buffer.from(await (form.get('file') as Blob).arrayBuffer()).equals(audio)).toBe(true);
    const [line] = await requestLines(gw, 1);
    expect(line?.attempts).toMatchObject([
      { deployment: 'a', status: 502 },
      { deployment: 'b', status: 200 },
    ]);
  });

  it('each attempt gets the model name of its own deployment, even with the file sent first', async () => {
    const { a, b, handlers, gw } = await setup({
      duo: duo({
        deployments: [
          { backend: 'a', model: 'whisper-a' },
          { backend: 'b', model: 'whisper-b', priority: 1 },
        ],
      }),
    });
    handlers.a.set(TRANSLATE, fails500);
    handlers.b.set(TRANSLATE, async (req, res) => {
      sendJson(res, 200, { text: String((await formOf(req)).get('model')) });
    });
    const audio = audioBytes(20_000);
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(audio)], { type: 'audio/wav' }), 'a.wav');
    form.append('model', 'duo');
    const response = await fetch(`${gw.baseURL}/audio/translations`, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { text: string }).text).toBe('whisper-b');
    expect((await formOf(a.requests[0] as RecordedRequest)).get('model')).toBe('whisper-a');
    const sent = await formOf(b.requests[0] as RecordedRequest);
    expect(Buffer.from(await (sent.get('file') as Blob).arrayBuffer()).equals(audio)).toBe(true);
  });

  it('a route with one attempt streams the upload through to one deployment, as before', async () => {
    const { a, b, handlers, gw } = await setup({
      single: { deployments: [{ backend: 'a', model: 'whisper' }], retry: { attempts: 1 } },
    });
    handlers.a.set(TRANSCRIBE, fails500);
    const form = new FormData();
    form.append('model', 'single');
    form.append('file', new Blob([new Uint8Array(audioBytes(1_000))], { type: 'audio/wav' }), 'a.wav');
    const response = await fetch(`${gw.baseURL}/audio/transcriptions`, { method: 'POST', body: form });
    expect(response.status).toBe(502);
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
  });
});

describe('embedding batches partly answered from the cache', () => {
  it('send their uncached inputs through the attempts: the second deployment answers', async () => {
    const { a, b, handlers, gw } = await setup({ duo: duo() }, {
      cache: { enabled: true, scope: 'global' },
    } as Partial<ConfigInput>);
    const embeds: UpstreamHandler = (req, res) => {
      const input = req.json?.input;
      const items = Array.isArray(input) ? input : [input];
      sendJson(res, 200, {
        object: 'list',
        model: 'up',
        data: items.map((item, index) => ({
          object: 'embedding',
          index,
          embedding: [String(item).length, 0.5],
        })),
        usage: { prompt_tokens: items.length, total_tokens: items.length },
      });
    };
    handlers.a.set(EMBED, embeds);
    handlers.b.set(EMBED, embeds);
    const body = { model: 'duo', encoding_format: 'float' };
    // Stored just after its answer went out: asked again until it is a hit.
    const cached = await pollUntil(
      () => post(gw.url, EMBED, { ...body, input: 'p' }),
      (response) => response.headers.get('x-tollgate-cache') === 'HIT',
    );
    expect(cached.headers.get('x-tollgate-cache')).toBe('HIT');
    const sentToA = a.requests.length;
    handlers.a.set(EMBED, fails500);
    const batch = await post(gw.url, EMBED, { ...body, input: ['p', 'qq'] });
    expect(batch.status).toBe(200);
    expect(batch.headers.get('x-tollgate-cache-items')).toBe('1/2');
    expect(batch.headers.get('x-tollgate-attempts')).toBe('2');
    expect(batch.headers.get('x-tollgate-backend')).toBe('b');
    expect(b.requests.at(-1)?.json?.input).toEqual(['qq']);
    expect(a.requests).toHaveLength(sentToA + 1);
    expect(
      (batch.json as { data: Array<{ embedding: number[] }> }).data.map((item) => item.embedding),
    ).toEqual([
      [1, 0.5],
      [2, 0.5],
    ]);
  });
});

describe('speech holds its concurrency slot until the audio is relayed', () => {
  it('a second request goes to the other deployment while the first audio still streams', async () => {
    const { a, b, handlers, gw } = await setup({
      speaker: duo({
        deployments: [
          { backend: 'a', model: 'tts', limits: { maxConcurrent: 1 } },
          { backend: 'b', model: 'tts', priority: 1 },
        ],
      }),
    });
    let finish: () => void = () => {};
    const rest = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const speech =
      (held: boolean): UpstreamHandler =>
      async (_req, res) => {
        res.writeHead(200, { 'content-type': 'audio/mpeg' });
        res.write(Buffer.from('ID3-first-part'));
        if (held) await rest;
        res.end(Buffer.from('-rest'));
      };
    handlers.a.set(SPEECH, speech(true));
    handlers.b.set(SPEECH, speech(false));
    const opened: Response[] = [];
    const say = async () => {
      const response = await fetch(`${gw.baseURL}/audio/speech`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'speaker', input: 'hello', voice: 'alloy' }),
      });
      opened.push(response);
      return response;
    };
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    // A failed expectation must not leave the held answer hanging (closing the gateway waits for it).
    try {
      const first = await say();
      expect(first.headers.get('x-tollgate-backend')).toBe('a');
      reader = (first.body as ReadableStream<Uint8Array>).getReader();
      const head = await reader.read();
      expect(Buffer.from(head.value ?? []).toString()).toContain('ID3');
      // The first answer was handed over and is still streaming: `a` is still busy.
      const second = await say();
      expect(second.headers.get('x-tollgate-backend')).toBe('b');
      expect(Buffer.from(await second.arrayBuffer()).toString()).toBe('ID3-first-part-rest');
      finish();
      let text = Buffer.from(head.value ?? []).toString();
      for (let part = await reader.read(); !part.done; part = await reader.read())
        text += Buffer.from(part.value).toString();
      expect(text).toBe('ID3-first-part-rest');
      // Relayed whole: the slot is free again.
      const third = await say();
      expect(third.headers.get('x-tollgate-backend')).toBe('a');
      await third.arrayBuffer();
    } finally {
      finish();
      await reader?.cancel().catch(() => {});
      for (const response of opened) if (!response.bodyUsed) await response.body?.cancel().catch(() => {});
    }
    expect([a.requests.length, b.requests.length]).toEqual([2, 1]);
  });
});
