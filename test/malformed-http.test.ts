import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope, expectNoInternals } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * Every answer the gateway writes is an OpenAI error envelope, including the ones for requests
 * that never become requests: bytes node:http cannot parse, and OPTIONS that are not CORS
 * preflights. Raw sockets send exactly the bytes under test (no client library would).
 */

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ backends: { mock: { type: 'mock' } }, models: { mock: { backend: 'mock' } } });
});

afterAll(async () => {
  await gw?.close();
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers };
}

/** Writes `request` as is and reads the first answer: whole by its content-length, or up to the close. */
async function exchange(request: string | Buffer): Promise<RawAnswer> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  await once(socket, 'connect');
  socket.write(request);
  let buffered = Buffer.alloc(0);
  try {
    for await (const chunk of socket) {
      buffered = Buffer.concat([buffered, chunk as Buffer]);
      const headEnd = buffered.indexOf('\r\n\r\n');
      if (headEnd < 0) continue;
      const { status, headers } = parseHead(buffered.subarray(0, headEnd).toString('latin1'));
      const length = status === 204 ? 0 : Number(headers['content-length']);
      if (!Number.isFinite(length) || buffered.length - headEnd - 4 < length) continue;
      const body = buffered.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8');
      return { status, headers, body, raw: buffered.toString('latin1') };
    }
  } finally {
    socket.destroy();
  }
  const raw = buffered.toString('latin1');
  const headEnd = raw.indexOf('\r\n\r\n');
  const { status, headers } = parseHead(headEnd < 0 ? raw : raw.slice(0, headEnd));
  return { status, headers, body: headEnd < 0 ? '' : raw.slice(headEnd + 4), raw };
}

function expectEnvelopeAnswer(answer: RawAnswer, status: number, code: string | null = null): void {
  expect(answer.status, answer.raw).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expectNoInternals(answer.raw);
  expectEnvelope(JSON.parse(answer.body), { type: 'invalid_request_error', code, param: null });
}

describe('bytes node:http cannot parse get a 400 envelope', () => {
  const cases: Array<[string, string]> = [
    ['a bare CR inside a header value', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n'],
    ['a bare LF ending a header line', 'GET /healthz HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n'],
    [
      'an obs-fold (a header continued on the next line)',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n',
    ],
    ['a space before the colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n'],
    ['a NUL in a header value', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n'],
    ['a backslash path', 'GET \\v1\\models HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a space in the path', 'GET /v1/mo dels HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['an unknown HTTP version', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n'],
    ['a method that is not a token', 'G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    [
      'both Content-Length and Transfer-Encoding',
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'two different Content-Lengths',
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
    ],
    [
      'a chunk size that is not hex',
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    ],
    ['not HTTP at all', 'hello there\r\n\r\n'],
  ];
  for (const [name, request] of cases) {
    it(name, async () => {
      const answer = await exchange(request);
      expectEnvelopeAnswer(answer, 400);
      expect(answer.headers.connection).toBe('close');
      expect(answer.headers['x-request-id']).toMatch(/^req_[0-9a-f]{32}$/);
    });
  }

  it('an HTTP/1.1 request without Host (RFC 9112 §3.2)', async () => {
    const answer = await exchange('GET /healthz HTTP/1.1\r\n\r\n');
    expectEnvelopeAnswer(answer, 400);
    expect(JSON.parse(answer.body).error.message).toMatch(/Host/);
  });

  it('headers larger than the server takes -> 431', async () => {
    const answer = await exchange(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    expectEnvelopeAnswer(answer, 431);
  });

  it('an Expect the server does not meet -> 417', async () => {
    const answer = await exchange(
      'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nConnection: close\r\n\r\n',
    );
    expectEnvelopeAnswer(answer, 417);
  });

  it("the same on Anthropic's API -> 417 in Anthropic's shape, with its request-id header", async () => {
    const answer = await exchange(
      'POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\nExpect: foo\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    expect(answer.status).toBe(417);
    const body = JSON.parse(answer.body) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe('error');
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toContain("'Expect: foo'");
    expect(answer.headers['request-id']).toBe(answer.headers['x-request-id']);
  });

  it('CONNECT (taking the gateway for a proxy) -> 405 envelope', async () => {
    const answer = await exchange('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectEnvelopeAnswer(answer, 405, 'method_not_allowed');
    expect(answer.headers.allow).toContain('POST');
  });

  it('a malformed percent-encoding in the path -> 400 envelope with a request id', async () => {
    const answer = await exchange('GET /v1/models/%zz HTTP/1.1\r\nHost: x\r\n\r\n');
    expectEnvelopeAnswer(answer, 400);
    expect(answer.headers['x-request-id']).toMatch(/^req_[0-9a-f]{32}$/);
  });

  it('a backslash inside an absolute path is a path like any other: 404 envelope', async () => {
    const answer = await exchange('GET /v1\\models HTTP/1.1\r\nHost: x\r\n\r\n');
    expectEnvelopeAnswer(answer, 404, 'unknown_url');
  });

  it('the gateway keeps serving well-formed requests', async () => {
    const answer = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(answer.status).toBe(200);
  });
});

describe('OPTIONS that is not a CORS preflight', () => {
  it('without Origin on a known path -> 204 with allow', async () => {
    const answer = await exchange('OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(answer.status, answer.raw).toBe(204);
    expect(answer.headers.allow?.split(', ').sort()).toEqual(['OPTIONS', 'POST']);
    expect(answer.body).toBe('');
  });

  it('with Origin but no Access-Control-Request-Method on a known path -> 204 with allow', async () => {
    const answer = await exchange(
      'OPTIONS /admin/teams HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n',
    );
    expect(answer.status, answer.raw).toBe(204);
    expect(answer.headers.allow?.split(', ').sort()).toEqual(['GET', 'HEAD', 'OPTIONS', 'POST']);
  });

  it('without Origin on an unknown path -> 404 envelope', async () => {
    const answer = await exchange('OPTIONS /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n');
    expectEnvelopeAnswer(answer, 404, 'unknown_url');
    expect(JSON.parse(answer.body).error.message).toBe('Invalid URL (OPTIONS /v1/nope)');
  });

  it('a real preflight still gets the CORS answer', async () => {
    const answer = await exchange(
      'OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n' +
        'Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n\r\n',
    );
    expect(answer.status, answer.raw).toBe(204);
    expect(answer.headers['access-control-allow-origin']).toBe('*');
    expect(answer.headers['access-control-allow-methods']).toContain('POST');
  });
});
