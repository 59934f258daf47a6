import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import OpenAI, { type APIError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream, sendJson } from './support/fake-upstream.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';

/**
 * An upload the gateway refuses before it has read the body (unknown model, a backend without
 * audio, a body over server.uploadLimit) must reach the SDK as that answer: never as a
 * connection error (EPIPE / ECONNRESET) that the SDK then retries. Each case uses the real
 * openai SDK with its default retries and counts the requests the gateway received: exactly one.
 */

const MB = 1024 * 1024;
const SMALL_LIMIT = 256 * 1024;

let upstream: FakeUpstream;
let gw: TestGateway;
let small: TestGateway;
const received = new Map<TestGateway, number>();

function countRequests(gateway: TestGateway): void {
  received.set(gateway, 0);
  gateway.app.server.on('request', () => received.set(gateway, (received.get(gateway) ?? 0) + 1));
}

beforeAll(async () => {
  upstream = new FakeUpstream().on('POST', '/v1/audio/transcriptions', (request, res) => {
    sendJson(res, 200, { text: `heard ${request.body.length} bytes` });
  });
  const base = await upstream.start();
  gw = await startGateway(upstreamConfig(base));
  small = await startGateway(upstreamConfig(base, { server: { uploadLimit: SMALL_LIMIT } }));
  countRequests(gw);
  countRequests(small);
});

afterAll(async () => {
  await gw?.close();
  await small?.close();
  await upstream?.stop();
});

function fileOf(size: number): Promise<File> {
  const bytes = Buffer.alloc(size, 0x5a);
  return toFile(bytes, 'audio.wav');
}

/** One SDK call with the SDK's default retries; the error it ends with and how many requests arrived. */
async function transcribe(
  gateway: TestGateway,
  fields: { model: string; size: number; modelFirst: boolean },
): Promise<{ error: unknown; requests: number }> {
  const client = new OpenAI({ baseURL: gateway.baseURL, apiKey: 'sk-anything' });
  const file = await fileOf(fields.size);
  // The SDK writes multipart fields in the order of the object's keys.
  const body = fields.modelFirst ? { model: fields.model, file } : { file, model: fields.model };
  const before = received.get(gateway) ?? 0;
  const error = await client.audio.transcriptions.create(body).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, requests: (received.get(gateway) ?? 0) - before };
}

describe('an upload refused within the upload limit gets its answer on a connection that stays open', () => {
  const refusals = [
    { model: 'no-such-model', status: 404, errorClass: OpenAI.NotFoundError, code: 'model_not_found' },
    { model: 'mock', status: 400, errorClass: OpenAI.BadRequestError, code: 'unsupported_endpoint' },
  ];
  for (const refusal of refusals) {
    for (const size of [MB, 10 * MB]) {
      for (const modelFirst of [true, false]) {
        const order = modelFirst ? 'model before the file' : 'file before the model (held bytes)';
        it(`${refusal.status} ${refusal.code}: ${size / MB} MB, ${order}`, async () => {
          const before = upstream.requests.length;
          const { error, requests } = await transcribe(gw, { model: refusal.model, size, modelFirst });
          expect(error).toBeInstanceOf(refusal.errorClass);
          expect(error).toMatchObject({
            status: refusal.status,
            type: 'invalid_request_error',
            code: refusal.code,
            param: 'model',
          });
          expect(requests, 'the SDK made exactly one request').toBe(1);
          // The rest of the upload was read and dropped: the connection can carry the next request.
          expect((error as APIError).headers?.get('connection')).toBe('keep-alive');
          expect(upstream.requests.length, 'nothing went upstream').toBe(before);
        });
      }
    }
  }
});

describe('an upload over server.uploadLimit gets 413, and the connection closes only after the client has it', () => {
  const cases = [
    { name: 'unknown model before the file', model: 'no-such-model', modelFirst: true },
    { name: 'file before the model (held bytes)', model: 'gpt-test', modelFirst: false },
    { name: 'model before the file, streamed upstream', model: 'gpt-test', modelFirst: true },
  ];
  for (const { name, model, modelFirst } of cases) {
    for (const size of [MB, 10 * MB]) {
      it(`${name}: ${size / MB} MB`, async () => {
        const { error, requests } = await transcribe(small, { model, size, modelFirst });
        expect(error).toBeInstanceOf(OpenAI.APIError);
        expect(error).not.toBeInstanceOf(OpenAI.APIConnectionError);
        expect(error).toMatchObject({
          status: 413,
          type: 'invalid_request_error',
          code: 'request_too_large',
        });
        expect((error as APIError).message).toContain(String(SMALL_LIMIT));
        expect(requests, 'the SDK made exactly one request').toBe(1);
        expect((error as APIError).headers?.get('connection')).toBe('close');
      });
    }
  }

  it('the same gateway still serves an upload within the limit', async () => {
    const client = new OpenAI({ baseURL: small.baseURL, apiKey: 'sk-anything', maxRetries: 0 });
    const result = await client.audio.transcriptions.create({
      model: 'gpt-test',
      file: await fileOf(100 * 1024),
    });
    expect(result.text).toMatch(/^heard \d+ bytes$/);
  });
});

/** A hand-written multipart body: the model field and a file, in the order given. */
function multipartBody(boundary: string, model: string, fileSize: number, modelFirst: boolean): Buffer {
  const modelPart = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n`,
  );
  const filePart = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    Buffer.alloc(fileSize, 0x5a),
    Buffer.from('\r\n'),
  ]);
  const parts = modelFirst ? [modelPart, filePart] : [filePart, modelPart];
  return Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
}

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads one HTTP/1.1 answer with a content-length from a socket. */
async function readAnswer(socket: Socket): Promise<RawAnswer> {
  let buffered = Buffer.alloc(0);
  for await (const chunk of socket) {
    buffered = Buffer.concat([buffered, chunk as Buffer]);
    const headEnd = buffered.indexOf('\r\n\r\n');
    if (headEnd < 0) continue;
    const [statusLine = '', ...lines] = buffered.subarray(0, headEnd).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length']);
    if (buffered.length - headEnd - 4 < length) continue;
    return {
      status: Number(statusLine.split(' ')[1]),
      headers,
      body: buffered.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8'),
    };
  }
  throw new Error('the connection ended before a whole answer arrived');
}

/**
 * A client that sends its whole request before it reads anything (as Python's httpx does): a
 * gateway that closes the connection while bytes are still coming resets it, and this client
 * then fails to write, or finds no answer to read.
 */
async function sendAllThenRead(
  gateway: TestGateway,
  body: Buffer,
  target: { path: string; contentType: string } = {
    path: '/v1/audio/transcriptions',
    contentType: 'multipart/form-data; boundary=raw-boundary',
  },
): Promise<RawAnswer> {
  const { port } = new URL(gateway.url);
  const socket = connect(Number(port), '127.0.0.1');
  await once(socket, 'connect');
  const failed = once(socket, 'error').then(([error]) => {
    throw error;
  });
  const head =
    `POST ${target.path} HTTP/1.1\r\nHost: gateway\r\n` +
    `Content-Type: ${target.contentType}\r\n` +
    `Content-Length: ${body.length}\r\n\r\n`;
  const write = async () => {
    socket.write(head);
    for (let at = 0; at < body.length; at += 256 * 1024) {
      if (!socket.write(body.subarray(at, at + 256 * 1024))) await once(socket, 'drain');
    }
  };
  try {
    await Promise.race([write(), failed]);
    return await Promise.race([readAnswer(socket), failed]);
  } finally {
    socket.destroy();
  }
}

describe('a client that writes its whole upload before reading still gets the refusal', () => {
  it('404 for an unknown model, 10 MB, model first: answered on a connection kept alive', async () => {
    const answer = await sendAllThenRead(gw, multipartBody('raw-boundary', 'no-such-model', 10 * MB, true));
    expect(answer.status).toBe(404);
    expect(answer.headers.connection).toBe('keep-alive');
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'model_not_found', param: 'model' } });
  });

  it('413 for 10 MB over a 256 KB limit, model first', async () => {
    const answer = await sendAllThenRead(
      small,
      multipartBody('raw-boundary', 'no-such-model', 10 * MB, true),
    );
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'request_too_large' } });
  });

  it('413 for 10 MB over a 256 KB limit, file first', async () => {
    const answer = await sendAllThenRead(small, multipartBody('raw-boundary', 'gpt-test', 10 * MB, false));
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'request_too_large' } });
  });
});

describe('a JSON body over server.bodyLimit, from a client that writes it whole before reading', () => {
  it('gets 413, and the connection closes only after the client has it', async () => {
    const limited = await startGateway({
      backends: { mock: { type: 'mock' } },
      models: { mock: { backend: 'mock' } },
      server: { bodyLimit: '64kb' },
    });
    try {
      const body = Buffer.from(
        JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'x'.repeat(10 * MB) }] }),
      );
      const answer = await sendAllThenRead(limited, body, {
        path: '/v1/chat/completions',
        contentType: 'application/json',
      });
      expect(answer.status).toBe(413);
      expect(answer.headers.connection).toBe('close');
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'request_too_large' } });
    } finally {
      await limited.close();
    }
  });
});
