import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { expect } from 'vitest';
import { expectErrorResponse } from './spec-validator.js';

/** The `error` object of OpenAI's error envelope. */
export interface ErrorObject {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export interface ExpectedError {
  type: string;
  code: string | null;
  param: string | null;
}

/**
 * Asserts a complete OpenAI error envelope: valid against the vendored spec, all four keys
 * present (null where absent, never missing), a non-empty message, and the given type/code/param.
 */
export function expectEnvelope(body: unknown, expected: ExpectedError): ErrorObject {
  expect(body, 'error body must be a JSON object').toBeTypeOf('object');
  expect(body).not.toBeNull();
  expectErrorResponse(body);
  const error = (body as { error?: unknown }).error as Record<string, unknown>;
  expect(error, 'body.error must be an object').toBeTypeOf('object');
  for (const key of ['message', 'type', 'param', 'code']) {
    expect(Object.hasOwn(error, key), `error.${key} must be present`).toBe(true);
  }
  expect(typeof error.message).toBe('string');
  expect((error.message as string).length).toBeGreaterThan(0);
  expect({ type: error.type, code: error.code, param: error.param }).toEqual(expected);
  return error as unknown as ErrorObject;
}

/** No stack frames, source paths or dependency paths in anything sent to a client. */
export function expectNoInternals(text: string): void {
  expect(text).not.toMatch(/\bat [\w.<>$]+ \(/); // `at fn (file:line:col)`
  expect(text).not.toMatch(/\n\s+at /);
  expect(text).not.toMatch(/\/src\//);
  expect(text).not.toMatch(/node_modules/);
  expect(text).not.toMatch(/\.ts:\d+/);
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: unknown;
}

/**
 * A real HTTP request with exactly the headers given (fetch would add a Content-Type of its
 * own to string bodies). `chunks` sends the body in pieces with chunked transfer encoding.
 */
export function rawRequest(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    chunks?: Array<string | Buffer>;
  },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = httpRequest(url, { method: options.method ?? 'POST', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    // The server may answer (413) and close before the whole body is written.
    req.on('error', reject);
    if (options.chunks) {
      for (const chunk of options.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}
