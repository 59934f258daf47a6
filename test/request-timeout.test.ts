import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load-config.js';
import { expectEnvelope, expectNoInternals } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * server.requestTimeoutMs bounds how long a client may take to send its whole request: one that
 * sends its headers and part of a body, then nothing (or a byte now and then), no longer holds
 * its connection forever. Raw sockets send exactly the bytes under test; every wait is for the
 * connection's close, never a fixed time.
 */

const REQUEST_TIMEOUT_MS = 500;

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({
    server: { requestTimeoutMs: REQUEST_TIMEOUT_MS },
    // The answer takes longer than the request may take to arrive: only the arrival is bounded.
    backends: { mock: { type: 'mock', latencyMs: REQUEST_TIMEOUT_MS * 3 } },
    models: { mock: { backend: 'mock' } },
  });
});

afterAll(async () => {
  await gw?.close();
});

async function open(): Promise<Socket> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Everything the gateway writes on `socket` until the connection closes. */
async function untilClosed(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

function expectTimeoutAnswer(raw: string): void {
  const headEnd = raw.indexOf('\r\n\r\n');
  expect(headEnd, raw).toBeGreaterThan(0);
  const [statusLine = '', ...lines] = raw.slice(0, headEnd).split('\r\n');
  expect(statusLine).toBe('HTTP/1.1 408 Request Timeout');
  expect(lines).toContain('Connection: close');
  expect(lines.find((line) => /^content-type:/i.test(line))).toMatch(/application\/json/);
  expectNoInternals(raw);
  const body = JSON.parse(raw.slice(headEnd + 4)) as unknown;
  expectEnvelope(body, { type: 'invalid_request_error', code: null, param: null });
}

const partialRequest =
  'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{';

describe('server.requestTimeoutMs', () => {
  it('answers 408 and closes a connection whose body stops arriving', async () => {
    const socket = await open();
    const started = Date.now();
    socket.write(partialRequest);
    const raw = await untilClosed(socket);
    expect(Date.now() - started).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS);
    expectTimeoutAnswer(raw);
    // Its request line (and metrics) say what the client got, not the 200 node:http began with.
    await vi.waitFor(() => {
      const line = gw.logs.find((entry) => entry.msg === 'request' && entry.method === 'POST');
      expect(line).toMatchObject({ status: 408, aborted: true });
    });
  });

  it('counts from the request, not from the last byte: a body trickling in is cut too', async () => {
    const socket = await open();
    socket.write(partialRequest);
    const trickle = setInterval(() => socket.writable && socket.write(' '), REQUEST_TIMEOUT_MS / 10);
    try {
      expectTimeoutAnswer(await untilClosed(socket));
    } finally {
      clearInterval(trickle);
    }
  });

  it("answers a request to Anthropic's Messages API in Anthropic's shape", async () => {
    const socket = await open();
    socket.write(
      'POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
    );
    const raw = await untilClosed(socket);
    const headEnd = raw.indexOf('\r\n\r\n');
    expect(raw.slice(0, raw.indexOf('\r\n'))).toBe('HTTP/1.1 408 Request Timeout');
    const requestId = /\r\nRequest-Id: (req_\w+)\r\n/.exec(raw.slice(0, headEnd))?.[1];
    expect(requestId).toBeDefined();
    expect(JSON.parse(raw.slice(headEnd + 4))).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.any(String) },
      request_id: requestId,
    });
  });

  it('closes a connection that never sends a byte', async () => {
    const socket = await open();
    const raw = await untilClosed(socket);
    // Node's headers timeout (never above the request timeout) covers it; any answer is a 408.
    if (raw !== '') expectTimeoutAnswer(raw);
  });

  it('leaves a request that arrived in time alone, however long its answer takes', async () => {
    const started = Date.now();
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock', messages: [{ role: 'user', content: 'hello' }] }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { choices: Array<{ message: { content: string } }> };
    expect(body.choices[0]?.message.content).toContain('hello');
    // The mock's latency put the answer past the request timeout.
    expect(Date.now() - started).toBeGreaterThan(REQUEST_TIMEOUT_MS);
  });
});

describe('server.requestTimeoutMs in the config', () => {
  function problemsOf(value: string): string[] {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-request-timeout-'));
    const path = join(dir, 'tollgate.yaml');
    writeFileSync(
      path,
      `server:\n  requestTimeoutMs: ${value}\nbackends:\n  mock: { type: mock }\nmodels:\n  mock: { backend: mock }\n`,
    );
    try {
      loadConfig({ path, env: {} });
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  }

  it('defaults to 120 s', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-request-timeout-'));
    const path = join(dir, 'tollgate.yaml');
    writeFileSync(path, 'backends:\n  mock: { type: mock }\nmodels:\n  mock: { backend: mock }\n');
    expect(loadConfig({ path, env: {} }).server.requestTimeoutMs).toBe(120_000);
  });

  it.each([
    ['0', 'server.requestTimeoutMs: must be greater than 0'],
    ['-5', 'server.requestTimeoutMs: must be greater than 0'],
    ['1.5', 'server.requestTimeoutMs: expected a whole number, got a fraction'],
    ['30s', 'server.requestTimeoutMs: expected a number, got text'],
  ])('refuses %s at boot, saying why', (value, problem) => {
    expect(problemsOf(value)).toEqual([problem]);
  });
});
