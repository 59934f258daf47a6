import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import OpenAI, { type APIError, toFile } from 'openai';
import { Client, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { FakeUpstream, type RecordedRequest, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import {
  expectErrorResponse,
  expectImagesResponse,
  expectModerationResponse,
  validateSchema,
} from './support/spec-validator.js';

/**
 * Pass-through endpoints (audio, images, moderations) and the Azure URL/auth layout, through
 * the real gateway to real HTTP upstreams on 127.0.0.1.
 */

const UPSTREAM_KEY = 'sk-upstream-secret-123';
const CLIENT_KEY = 'client-key-never-forwarded';
const SPEECH_BYTES = Buffer.from([
  0xff, 0xfb, 0x90, 0x64, 0x00, 0x0d, 0x0a, 0x00, 0x2d, 0x2d, 0x49, 0x44, 0x33, 0x80,
]);

/** Bytes that look like multipart syntax, to prove the file reaches the upstream intact. */
function audioBytes(size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  const tricky = Buffer.from('\r\n--\r\n\r\nContent-Disposition: form-data; name="model"\r\n\r\nfake\r\n--');
  for (let at = 0; at + tricky.length < size; at += 997) tricky.copy(bytes, at);
  return bytes;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The multipart body the upstream received, parsed by undici's own (spec-compliant) parser. */
async function parseMultipart(request: RecordedRequest): Promise<FormData> {
  const contentType = String(request.headers['content-type']);
  expect(contentType).toMatch(/^multipart\/form-data; *boundary=/i);
  return new Response(new Uint8Array(request.body), { headers: { 'content-type': contentType } }).formData();
}

async function fileBytes(form: FormData, name = 'file'): Promise<Buffer> {
  const file = form.get(name);
  if (!(file instanceof Blob)) throw new Error(`multipart field '${name}' is not a file`);
  return Buffer.from(await file.arrayBuffer());
}

/** A multipart body written by hand, fields in the order given. */
function multipart(
  boundary: string,
  fields: Array<{ name: string; value: string | Buffer; filename?: string }>,
) {
  const parts: Buffer[] = [];
  for (const field of fields) {
    const disposition = `form-data; name="${field.name}"${field.filename ? `; filename="${field.filename}"` : ''}`;
    const type = field.filename ? 'Content-Type: application/octet-stream\r\n' : '';
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`));
    parts.push(Buffer.from(field.value), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function expectEnvelope(response: Response, status: number): Promise<ErrorEnvelope['error']> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = JSON.parse(text) as ErrorEnvelope;
  expectErrorResponse(body);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  return body.error;
}

function moderationResult(flagged: boolean) {
  const categories = [
    'hate',
    'hate/threatening',
    'harassment',
    'harassment/threatening',
    'illicit',
    'illicit/violent',
    'self-harm',
    'self-harm/intent',
    'self-harm/instructions',
    'sexual',
    'sexual/minors',
    'violence',
    'violence/graphic',
  ];
  return {
    flagged,
    categories: Object.fromEntries(categories.map((c) => [c, flagged && c === 'violence'])),
    category_scores: Object.fromEntries(
      categories.map((c) => [c, c === 'violence' && flagged ? 0.91 : 0.001]),
    ),
    category_applied_input_types: Object.fromEntries(categories.map((c) => [c, ['text']])),
  };
}

let upstream: FakeUpstream;
let gw: TestGateway;
let client: OpenAI;
let gatewayConfig: (server?: ConfigInput['server']) => ConfigInput;

/** The last request the fake upstream saw on `path` (query string ignored). */
function lastRequest(path: string): RecordedRequest {
  const found = upstream.requests.filter((r) => r.url.split('?')[0] === path).at(-1);
  if (!found) throw new Error(`the upstream saw no request on ${path}`);
  return found;
}

// A second upstream that records the moment the first body byte arrives (FakeUpstream only calls
// handlers once the whole body is in), for the streamed-upload test.
let streamServer: Server;
let streamRequest: { firstBytes: Promise<void>; body: Promise<Buffer>; headers: IncomingMessage['headers'] };
let onStreamRequest: (request: typeof streamRequest) => void = () => {};

beforeAll(async () => {
  upstream = new FakeUpstream();
  for (const kind of ['transcriptions', 'translations']) {
    upstream.on('POST', `/v1/audio/${kind}`, async (request, res) => {
      const form = await parseMultipart(request);
      const file = await fileBytes(form);
      sendJson(res, 200, {
        text: `${kind} by ${String(form.get('model'))}`,
        x_upstream: { bytes: file.length, sha256: sha256(file) },
      });
    });
  }
  upstream.on('POST', '/v1/audio/speech', (_request, res) => {
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': String(SPEECH_BYTES.length) });
    res.end(SPEECH_BYTES);
  });
  upstream.on('POST', '/v1/images/generations', (request, res) => {
    sendJson(res, 200, {
      created: 1_713_833_628,
      data: [{ b64_json: Buffer.from(`image for ${String(request.json?.prompt)}`).toString('base64') }],
      x_upstream_extra: { kept: true },
    });
  });
  upstream.on('POST', '/v1/moderations', (request, res) => {
    sendJson(res, 200, {
      id: 'modr-123',
      model: typeof request.json?.model === 'string' ? request.json.model : 'omni-moderation-2024-09-26',
      results: [moderationResult(true)],
      x_upstream_extra: 1,
    });
  });
  upstream.on('POST', '/openai/deployments/my-deploy/chat/completions', (request, res) => {
    sendJson(res, 200, {
      id: 'chatcmpl-azure',
      object: 'chat.completion',
      created: 1_713_833_628,
      model: 'gpt-4o-2024-08-06',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: `azure saw ${JSON.stringify(request.json?.messages)}`,
            refusal: null,
          },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });
  upstream.on('POST', '/openai/deployments/my-deploy/audio/transcriptions', async (request, res) => {
    const form = await parseMultipart(request);
    sendJson(res, 200, { text: `azure heard ${(await fileBytes(form)).length} bytes` });
  });
  const base = await upstream.start();

  streamServer = createServer((req, res) => {
    let sawFirst: () => void = () => {};
    const firstBytes = new Promise<void>((resolve) => {
      sawFirst = resolve;
    });
    const chunks: Buffer[] = [];
    const body = new Promise<Buffer>((resolve, reject) => {
      req.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        sawFirst();
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
      req.on('close', () => {
        if (!req.complete) reject(new Error('the request was cut off before its body ended'));
      });
    });
    body.catch(() => {});
    streamRequest = { firstBytes, body, headers: req.headers };
    onStreamRequest(streamRequest);
    body.then(
      (all) => sendJson(res, 200, { text: 'streamed', x_upstream: { bytes: all.length } }),
      () => res.destroy(),
    );
  });
  streamServer.listen(0, '127.0.0.1');
  await once(streamServer, 'listening');
  const streamBase = streamBaseUrl();

  gatewayConfig = (server) =>
    upstreamConfig(base, {
      backends: {
        streamer: { type: 'openai', baseUrl: `${streamBase}/v1`, apiKey: 'sk-streamer' },
        az: { type: 'azure', baseUrl: base, apiKey: 'azure-key', apiVersion: '2024-10-21' },
      },
      models: {
        'omni-moderation-latest': { backend: 'upstream', model: 'omni-upstream' },
        'azure-gpt': { backend: 'az', model: 'my-deploy' },
        'stream-model': { backend: 'streamer', model: 'whisper-streamed' },
      },
      ...(server ? { server } : {}),
    });
  gw = await startGateway(gatewayConfig());
  client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.stop();
  streamServer?.closeAllConnections();
  await new Promise<void>((resolve) => (streamServer ? streamServer.close(() => resolve()) : resolve()));
});

describe('audio transcriptions and translations (multipart, streamed)', () => {
  it('forwards an SDK transcription with the model rewritten, the file intact and the upstream key', async () => {
    const audio = audioBytes(20_000);
    // The SDK writes fields in the order given: model first, so the file is streamed, never held.
    const transcription = await client.audio.transcriptions.create({
      model: 'gpt-test',
      file: await toFile(audio, 'a.wav', { type: 'audio/wav' }),
      language: 'en',
    });
    validateSchema('CreateTranscriptionResponseJson', transcription);
    expect(transcription.text).toBe('transcriptions by upstream-gpt');
    // Unknown fields of the upstream answer reach the client.
    expect((transcription as unknown as { x_upstream: unknown }).x_upstream).toEqual({
      bytes: audio.length,
      sha256: sha256(audio),
    });

    const seen = lastRequest('/v1/audio/transcriptions');
    const form = await parseMultipart(seen);
    expect(form.get('model')).toBe('upstream-gpt');
    expect(form.get('language')).toBe('en');
    const file = form.get('file');
    expect(file).toBeInstanceOf(Blob);
    expect((file as File).name).toBe('a.wav');
    expect((file as File).type).toBe('audio/wav');
    expect((await fileBytes(form)).equals(audio)).toBe(true);
    expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(JSON.stringify(seen.headers)).not.toContain(CLIENT_KEY);
  });

  it('forwards an SDK translation the same way', async () => {
    const audio = audioBytes(3_000);
    // File first this time: the gateway holds the bytes before the model (within the limit).
    const translation = await client.audio.translations.create({
      file: await toFile(audio, 'b.mp3', { type: 'audio/mpeg' }),
      model: 'org/model-a',
    });
    validateSchema('CreateTranslationResponseJson', translation);
    expect(translation.text).toBe('translations by model-a');
    const seen = lastRequest('/v1/audio/translations');
    const form = await parseMultipart(seen);
    expect(form.get('model')).toBe('model-a');
    expect((await fileBytes(form)).equals(audio)).toBe(true);
    expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });

  it('changes nothing but the model value: the upstream gets the client bytes otherwise verbatim', async () => {
    const boundary = 'verbatim-boundary-1';
    const audio = audioBytes(5_000);
    const fields = (model: string) => [
      { name: 'model', value: model },
      { name: 'file', value: audio, filename: 'a.wav' },
      { name: 'x_vendor_field', value: 'kept' },
    ];
    const response = await fetch(`${gw.baseURL}/audio/transcriptions`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        authorization: `Bearer ${CLIENT_KEY}`,
      },
      body: new Uint8Array(multipart(boundary, fields('gpt-test'))),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    expect(response.headers.get('x-tollgate-backend')).toBe('upstream');
    const seen = lastRequest('/v1/audio/transcriptions');
    expect(seen.body.equals(multipart(boundary, fields('upstream-gpt')))).toBe(true);
    expect(seen.headers['content-type']).toBe(`multipart/form-data; boundary=${boundary}`);
  });

  it('routes a model sent after the file (hand-built multipart)', async () => {
    const boundary = '----model-after-file-7Qx';
    const audio = audioBytes(30_000);
    const response = await fetch(`${gw.baseURL}/audio/transcriptions`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary="${boundary}"` },
      body: new Uint8Array(
        multipart(boundary, [
          { name: 'file', value: audio, filename: 'late.wav' },
          { name: 'response_format', value: 'json' },
          { name: 'model', value: 'gpt-test' },
        ]),
      ),
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ text: 'transcriptions by upstream-gpt' });
    const form = await parseMultipart(lastRequest('/v1/audio/transcriptions'));
    expect(form.get('model')).toBe('upstream-gpt');
    expect(form.get('response_format')).toBe('json');
    expect((await fileBytes(form)).equals(audio)).toBe(true);
  });

  it('answers 400 with param model when the multipart body has no model', async () => {
    const before = upstream.requests.length;
    const boundary = 'no-model-boundary';
    const response = await fetch(`${gw.baseURL}/audio/transcriptions`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: new Uint8Array(
        multipart(boundary, [{ name: 'file', value: audioBytes(2_000), filename: 'a.wav' }]),
      ),
    });
    const error = await expectEnvelope(response, 400);
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'model' });
    expect(upstream.requests.length).toBe(before);
  });

  it('answers 404 model_not_found for an unknown model, before anything goes upstream', async () => {
    const before = upstream.requests.length;
    const error = await client.audio.transcriptions
      .create({ file: await toFile(audioBytes(1_000), 'a.wav'), model: 'no-such-model' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });

    const boundary = 'unknown-model';
    const response = await fetch(`${gw.baseURL}/audio/translations`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: new Uint8Array(
        multipart(boundary, [
          { name: 'model', value: 'no-such-model' },
          { name: 'file', value: audioBytes(1_000), filename: 'a.wav' },
        ]),
      ),
    });
    expect(await expectEnvelope(response, 404)).toMatchObject({
      type: 'invalid_request_error',
      code: 'model_not_found',
    });
    expect(upstream.requests.length).toBe(before);
  });

  it('answers 413 request_too_large for an upload over server.uploadLimit, model after the file', async () => {
    await withGateway({ uploadLimit: '64kb' }, async (gateway) => {
      const before = upstream.requests.length;
      const boundary = 'too-large-late-model';
      const response = await fetch(`${gateway.baseURL}/audio/transcriptions`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: new Uint8Array(
          multipart(boundary, [
            { name: 'file', value: audioBytes(100 * 1024), filename: 'big.wav' },
            { name: 'model', value: 'gpt-test' },
          ]),
        ),
      });
      expect(await expectEnvelope(response, 413)).toMatchObject({
        type: 'invalid_request_error',
        code: 'request_too_large',
      });
      expect(upstream.requests.length).toBe(before);
    });
  });

  it('answers 413 request_too_large when a streamed upload (model first, SDK) outgrows the limit', async () => {
    // Model first: the upload is already on its way upstream when the limit is crossed. This uses
    // the stream-recording upstream, which copes with a request cut off in the middle of its body.
    const upstreamRequest = new Promise<typeof streamRequest>((resolve) => {
      onStreamRequest = resolve;
    });
    try {
      await withGateway({ uploadLimit: '64kb' }, async (_gateway, sdk) => {
        const error = await sdk.audio.transcriptions
          .create({ model: 'stream-model', file: await toFile(audioBytes(300 * 1024), 'big.wav') })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error).toBeInstanceOf(OpenAI.APIError);
        expect(error).toMatchObject({
          status: 413,
          code: 'request_too_large',
          type: 'invalid_request_error',
        });
        // The upstream never got a complete body: the gateway cut the forwarded request off.
        await expect((await upstreamRequest).body).rejects.toThrow();
      });
    } finally {
      onStreamRequest = () => {};
    }
  });

  it('answers 415 for a non-multipart body on the upload endpoints', async () => {
    const json = await fetch(`${gw.baseURL}/audio/transcriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test', file: 'not a file' }),
    });
    expect(await expectEnvelope(json, 415)).toMatchObject({
      type: 'invalid_request_error',
      code: 'unsupported_media_type',
    });
    const noBoundary = await fetch(`${gw.baseURL}/audio/translations`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data' },
      body: 'model=gpt-test',
    });
    expect((await expectEnvelope(noBoundary, 415)).code).toBe('unsupported_media_type');
  });

  it('streams a large upload: the upstream gets bytes while the client is still holding back the rest', async () => {
    const boundary = 'streamed-upload-boundary';
    const audio = audioBytes(5 * 1024 * 1024);
    const body = multipart(boundary, [
      { name: 'model', value: 'stream-model' },
      { name: 'file', value: audio, filename: 'long.wav' },
    ]);
    const half = Math.floor(body.length / 2);
    const upstreamSawBytes = new Promise<typeof streamRequest>((resolve) => {
      onStreamRequest = resolve;
    });
    let sentBeforeUpstreamSawBytes = -1;
    // A body that sends its first half, then waits until the upstream has received something.
    // A gateway that buffers the whole body deadlocks here (the guard turns that into a failure).
    async function* clientBody(): AsyncGenerator<Buffer> {
      for (let at = 0; at < half; at += 64 * 1024) yield body.subarray(at, Math.min(at + 64 * 1024, half));
      await withGuard(
        upstreamSawBytes.then((r) => r.firstBytes),
        'the upstream received nothing while the client held back half of the upload: it is buffered',
      );
      sentBeforeUpstreamSawBytes = half;
      for (let at = half; at < body.length; at += 64 * 1024)
        yield body.subarray(at, Math.min(at + 64 * 1024, body.length));
    }
    try {
      const response = await undiciRequest(`${gw.baseURL}/audio/transcriptions`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: Readable.from(clientBody()),
      });
      const answer = (await response.body.json()) as { text: string; x_upstream: { bytes: number } };
      expect(response.statusCode).toBe(200);
      expect(sentBeforeUpstreamSawBytes).toBe(half);
      expect(sentBeforeUpstreamSawBytes).toBeLessThan(body.length);
      const expected = multipart(boundary, [
        { name: 'model', value: 'whisper-streamed' },
        { name: 'file', value: audio, filename: 'long.wav' },
      ]);
      expect(answer).toEqual({ text: 'streamed', x_upstream: { bytes: expected.length } });
      const received = await streamRequest.body;
      expect(sha256(received)).toBe(sha256(expected));
      expect(streamRequest.headers.authorization).toBe('Bearer sk-streamer');
    } finally {
      onStreamRequest = () => {};
    }
  });
});

function streamBaseUrl(): string {
  return `http://127.0.0.1:${(streamServer.address() as AddressInfo).port}`;
}

/** Fails with `message` if `promise` has not settled within `ms`: turns a deadlock into a readable failure. */
async function withGuard<T>(promise: Promise<T>, message: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A gateway of its own (same backends and models, other server settings) for tests whose failure
 * could leave connections behind; its connections are cut before it closes, so a wedged one
 * cannot stall the rest of the file.
 */
async function withGateway(
  server: ConfigInput['server'],
  test: (gateway: TestGateway, sdk: OpenAI) => Promise<void>,
): Promise<void> {
  const gateway = await startGateway(gatewayConfig(server));
  try {
    await test(gateway, new OpenAI({ baseURL: gateway.baseURL, apiKey: CLIENT_KEY, maxRetries: 0 }));
  } finally {
    gateway.app.server.closeAllConnections();
    await gateway.close();
  }
}

describe('an upload rejected before its body was read', () => {
  const MB = 1024 * 1024;
  const cases: Array<{
    name: string;
    server: ConfigInput['server'];
    fields: Array<{ name: string; value: string | Buffer; filename?: string }>;
    status: number;
  }> = [
    {
      name: '404 unknown model',
      server: {},
      fields: [
        { name: 'model', value: 'no-such-model' },
        { name: 'file', value: audioBytes(MB), filename: 'a.wav' },
      ],
      status: 404,
    },
    {
      name: '400 unsupported endpoint (mock)',
      server: {},
      fields: [
        { name: 'model', value: 'mock' },
        { name: 'file', value: audioBytes(MB), filename: 'a.wav' },
      ],
      status: 400,
    },
    {
      name: '413 over the limit before the model',
      server: { uploadLimit: '64kb' },
      fields: [
        { name: 'file', value: audioBytes(MB), filename: 'a.wav' },
        { name: 'model', value: 'gpt-test' },
      ],
      status: 413,
    },
    {
      name: '413 over the limit while streaming upstream',
      server: { uploadLimit: '64kb' },
      fields: [
        { name: 'model', value: 'stream-model' },
        { name: 'file', value: audioBytes(MB), filename: 'a.wav' },
      ],
      status: 413,
    },
  ];

  for (const { name, server, fields, status } of cases) {
    it(`${name}: the client's connection still serves its next request`, async () => {
      await withGateway(server, async (gateway) => {
        // One connection, so the follow-up request must go where the rejected upload went.
        const connection = new Client(gateway.url);
        try {
          const boundary = 'wedge-test-boundary';
          const rejected = await connection.request({
            method: 'POST',
            path: '/v1/audio/transcriptions',
            headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
            body: multipart(boundary, fields),
          });
          expect(rejected.statusCode).toBe(status);
          await rejected.body.dump();
          // Either the gateway drains the unread body or it closes the connection (`connection:
          // close`); leaving it half-read makes the next request on that connection hang forever.
          const next = await withGuard(
            connection.request({ method: 'GET', path: '/v1/models' }),
            'the next request on the connection got no answer: the unread upload body wedged it',
            2_000,
          );
          expect(next.statusCode).toBe(200);
          await next.body.dump();
          await withGuard(
            gateway.close(),
            'the gateway could not close: a connection was left half-read',
            2_000,
          );
        } finally {
          await connection.destroy();
        }
      });
    });
  }
});

describe('audio speech (JSON in, bytes out)', () => {
  it('relays the exact audio bytes and content type to the SDK', async () => {
    const response = await client.audio.speech.create({
      model: 'gpt-test',
      input: 'Hello there',
      voice: 'alloy',
      response_format: 'mp3',
    });
    expect(response.headers.get('content-type')).toBe('audio/mpeg');
    expect(response.headers.get('x-tollgate-backend')).toBe('upstream');
    expect(Buffer.from(await response.arrayBuffer()).equals(SPEECH_BYTES)).toBe(true);
    const seen = lastRequest('/v1/audio/speech');
    expect(seen.json).toEqual({
      model: 'upstream-gpt',
      input: 'Hello there',
      voice: 'alloy',
      response_format: 'mp3',
    });
    expect(seen.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });
});

describe('images and moderations (JSON pass-through)', () => {
  it('passes images.generate through with the model rewritten and unknown fields untouched', async () => {
    const params: OpenAI.Images.ImageGenerateParamsNonStreaming & { x_vendor: unknown } = {
      model: 'gpt-test',
      prompt: 'a lighthouse',
      n: 1,
      size: '1024x1024',
      x_vendor: { seed: 7, tags: ['a', null] },
    };
    const images = await client.images.generate(params);
    expectImagesResponse(images);
    expect(images.data?.[0]?.b64_json).toBe(Buffer.from('image for a lighthouse').toString('base64'));
    expect((images as unknown as { x_upstream_extra: unknown }).x_upstream_extra).toEqual({ kept: true });
    expect(lastRequest('/v1/images/generations').json).toEqual({
      model: 'upstream-gpt',
      prompt: 'a lighthouse',
      n: 1,
      size: '1024x1024',
      x_vendor: { seed: 7, tags: ['a', null] },
    });
  });

  it('passes moderations.create through with the model rewritten and unknown fields untouched', async () => {
    const params: OpenAI.ModerationCreateParams & { x_vendor: string } = {
      model: 'gpt-test',
      input: ['kill the process', 'hello'],
      x_vendor: 'kept',
    };
    const moderation = await client.moderations.create(params);
    expectModerationResponse(moderation);
    expect(moderation.results[0]?.flagged).toBe(true);
    expect(moderation.model).toBe('upstream-gpt');
    expect((moderation as unknown as { x_upstream_extra: unknown }).x_upstream_extra).toBe(1);
    expect(lastRequest('/v1/moderations').json).toEqual({
      model: 'upstream-gpt',
      input: ['kill the process', 'hello'],
      x_vendor: 'kept',
    });
  });

  it("routes a moderation without a model by OpenAI's default; the route's rename is applied", async () => {
    const response = await client.moderations.create({ input: 'hello' }).withResponse();
    expectModerationResponse(response.data);
    expect(response.response.headers.get('x-tollgate-backend')).toBe('upstream');
    const seen = lastRequest('/v1/moderations');
    // This config maps omni-moderation-latest to another upstream model: leaving the field out
    // would let the upstream pick its own default and bypass that mapping.
    expect(seen.json).toEqual({ input: 'hello', model: 'omni-upstream' });
  });

  it('answers 400 for a moderation without input, naming the field', async () => {
    const response = await fetch(`${gw.baseURL}/moderations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-test' }),
    });
    expect(await expectEnvelope(response, 400)).toMatchObject({
      type: 'invalid_request_error',
      param: 'input',
    });
  });
});

describe('endpoints the mock backend does not serve', () => {
  const cases: Array<[string, () => Promise<unknown>]> = [
    ['images.generate', () => client.images.generate({ model: 'mock', prompt: 'x' })],
    ['moderations.create', () => client.moderations.create({ model: 'mock', input: 'x' })],
    ['audio.speech.create', () => client.audio.speech.create({ model: 'mock', input: 'x', voice: 'alloy' })],
    [
      'audio.transcriptions.create',
      async () =>
        client.audio.transcriptions.create({ model: 'mock', file: await toFile(audioBytes(500), 'a.wav') }),
    ],
    [
      'audio.translations.create',
      async () =>
        client.audio.translations.create({ model: 'mock', file: await toFile(audioBytes(500), 'a.wav') }),
    ],
  ];

  for (const [name, call] of cases) {
    it(`${name} on the mock model answers 400 unsupported_endpoint`, async () => {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({
        status: 400,
        type: 'invalid_request_error',
        code: 'unsupported_endpoint',
        param: 'model',
      });
      expect((error as APIError).message).toContain('mock');
    });
  }

  it('sends the unsupported_endpoint answer as the OpenAI error envelope', async () => {
    const response = await fetch(`${gw.baseURL}/images/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock', prompt: 'x' }),
    });
    expect(await expectEnvelope(response, 400)).toMatchObject({
      type: 'invalid_request_error',
      code: 'unsupported_endpoint',
    });
  });
});

describe('Azure OpenAI backend', () => {
  it('calls the deployment URL with api-version and the api-key header, never authorization', async () => {
    const completion = await client.chat.completions.create({
      model: 'azure-gpt',
      messages: [{ role: 'user', content: 'hi azure' }],
    });
    validateSchema('CreateChatCompletionResponse', completion);
    expect(completion.choices[0]?.message.content).toBe('azure saw [{"role":"user","content":"hi azure"}]');
    const seen = lastRequest('/openai/deployments/my-deploy/chat/completions');
    expect(seen.url).toBe('/openai/deployments/my-deploy/chat/completions?api-version=2024-10-21');
    expect(seen.headers['api-key']).toBe('azure-key');
    expect(seen.headers.authorization).toBeUndefined();
    expect(JSON.stringify(seen.headers)).not.toContain(CLIENT_KEY);
    expect(seen.json?.messages).toEqual([{ role: 'user', content: 'hi azure' }]);
  });

  it('sends uploads to the deployment URL too', async () => {
    const transcription = await client.audio.transcriptions.create({
      model: 'azure-gpt',
      file: await toFile(audioBytes(4_321), 'a.wav'),
    });
    expect(transcription.text).toBe('azure heard 4321 bytes');
    const seen = lastRequest('/openai/deployments/my-deploy/audio/transcriptions');
    expect(seen.url).toBe('/openai/deployments/my-deploy/audio/transcriptions?api-version=2024-10-21');
    expect(seen.headers['api-key']).toBe('azure-key');
    expect(seen.headers.authorization).toBeUndefined();
  });
});
