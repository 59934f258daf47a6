import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * Only the package's own errors thrown by a module reach the client as they are: they carry its
 * brand, also from another copy of the package (here the built dist/, which the gateway running
 * from src/ in these tests does not share classes with). An error that merely looks like one (a
 * `status` and a `type`: the official `openai` SDK's APIError, say) is a module failure like
 * any other: a 502 naming the backend, its message (an upstream's words, a key's prefix) in the
 * log only. And the log line says which backend once, not twice.
 */

const DIST = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
const SECRET = 'sk-proj-SECRET-module-key';

/** A service answering 401 as OpenAI does, for a module calling it with the official SDK. */
let refusing: Server;
let refusingURL: string;
beforeAll(async () => {
  refusing = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          error: {
            message: `Incorrect API key provided: ${SECRET.slice(0, 12)}*****abcd.`,
            type: 'invalid_request_error',
            param: null,
            code: 'invalid_api_key',
          },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  refusingURL = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await new Promise((resolve) => refusing.close(resolve));
});

let folder: string;
beforeAll(() => {
  folder = mkdtempSync(join(tmpdir(), 'tollgate-module-error-brand-'));
  // As an author writes it: the SDK against its service, no try/catch.
  writeFileSync(
    join(folder, 'sdk-proxy.mjs'),
    `import OpenAI from ${JSON.stringify(pathToFileURL(fileURLToPath(import.meta.resolve('openai'))).href)};
export default function createBackend(name, options) {
  const client = new OpenAI({ baseURL: options.baseURL, apiKey: options.apiKey, maxRetries: 0 });
  return {
    supports: (endpoint) => endpoint === 'chat.completions',
    async send(call) {
      const completion = await client.chat.completions.create({ ...call.body, stream: false }, { signal: call.signal });
      return { status: 200, contentType: 'application/json', body: JSON.stringify(completion) };
    },
  };
}
`,
  );
  // The package's errors from its built copy, and errors that only look like them.
  writeFileSync(
    join(folder, 'throwing.mjs'),
    `import { InvalidRequestError, ServiceUnavailableError, UpstreamClientError } from ${JSON.stringify(DIST)};
function lookalike(message, fields) {
  return Object.assign(new Error(message), fields);
}
export default function createBackend() {
  return {
    supports: () => true,
    async send({ body }) {
      switch (body.messages.at(-1).content) {
        case 'invalid': throw new InvalidRequestError('This backend takes at most 4 messages.', 'messages');
        case 'unavailable': throw new ServiceUnavailableError('The local model is loading.', 12);
        case 'client': throw new UpstreamClientError(404, Buffer.from('{"error":{"message":"no such model","type":"invalid_request_error","param":null,"code":"model_not_found"}}'), 'application/json', {});
        case 'teapot': throw lookalike('${SECRET} teapot', { status: 418, type: 'invalid_request_error' });
        case 'auth': throw lookalike('${SECRET} rejected', { status: 401, type: 'authentication_error', code: 'invalid_api_key' });
      }
      throw new Error('unexpected');
    },
  };
}
`,
  );
});

let gateway: TestGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

async function chat(target: TestGateway, model: string, content: string) {
  const response = await fetch(`${target.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }] }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: JSON.parse(text) as unknown };
}

async function gatewayWithModules(): Promise<TestGateway> {
  gateway = await startGateway({
    backends: {
      sdk: {
        type: 'module',
        module: join(folder, 'sdk-proxy.mjs'),
        options: { baseURL: refusingURL, apiKey: SECRET },
      },
      throwing: { type: 'module', module: join(folder, 'throwing.mjs') },
    },
    models: {
      sdk: { backend: 'sdk', retry: { attempts: 1 }, circuit: { enabled: false } },
      throwing: { backend: 'throwing', retry: { attempts: 1 }, circuit: { enabled: false } },
    },
  });
  return gateway;
}

describe('errors that only look like the gateway’s', () => {
  it('the openai SDK’s APIError (a 401 from the module’s own service) is a 502, its words in the log only', async () => {
    const target = await gatewayWithModules();
    const failed = await chat(target, 'sdk', 'hi');
    expect(failed.status).toBe(502);
    const error = expectEnvelope(failed.json, { type: 'server_error', code: 'upstream_error', param: null });
    expect(error.message).toMatch(/^Backend 'sdk' failed: its module threw an error \(request /);
    expect(failed.text).not.toContain('Incorrect API key');
    expect(failed.text).not.toContain(SECRET.slice(0, 12));
    const logged = target.logs.find((line) => line.msg === 'backend module failed');
    expect(JSON.stringify(logged)).toContain('Incorrect API key');
    // The SDK's error it was, for the record (not a gateway error from some copy of ours).
    expect(new OpenAI.APIError(401, undefined, 'x', new Headers())).toMatchObject({ status: 401 });
  });

  for (const content of ['teapot', 'auth']) {
    it(`a plain Error with a status and a type (${content}) is a 502`, async () => {
      const target = await gatewayWithModules();
      const failed = await chat(target, 'throwing', content);
      expect(failed.status).toBe(502);
      expectEnvelope(failed.json, { type: 'server_error', code: 'upstream_error', param: null });
      expect(failed.text).not.toContain(SECRET);
    });
  }
});

describe('the package’s own errors, from another copy of it', () => {
  it('InvalidRequestError: its 400, message and param', async () => {
    const target = await gatewayWithModules();
    const refused = await chat(target, 'throwing', 'invalid');
    expect(refused.status).toBe(400);
    const error = expectEnvelope(refused.json, {
      type: 'invalid_request_error',
      code: null,
      param: 'messages',
    });
    expect(error.message).toBe('This backend takes at most 4 messages.');
  });

  it('ServiceUnavailableError: its 503 and retry-after', async () => {
    const target = await gatewayWithModules();
    const refused = await chat(target, 'throwing', 'unavailable');
    expect(refused.status).toBe(503);
    expectEnvelope(refused.json, { type: 'server_error', code: 'service_unavailable', param: null });
    expect(refused.headers.get('retry-after')).toBe('12');
  });

  it('UpstreamClientError: the upstream’s status and body', async () => {
    const target = await gatewayWithModules();
    const refused = await chat(target, 'throwing', 'client');
    expect(refused.status).toBe(404);
    expect(refused.json).toMatchObject({ error: { message: 'no such model', code: 'model_not_found' } });
  });
});

describe('the log line of a module’s failure', () => {
  it('names the backend once', async () => {
    const target = await gatewayWithModules();
    await chat(target, 'throwing', 'teapot');
    const line = target
      .rawLogs()
      .split('\n')
      .find((raw) => raw.includes('"msg":"backend module failed"'));
    expect(line).toBeDefined();
    expect(line?.match(/"backend":/g)).toHaveLength(1);
    expect(line).toContain('"backend":"throwing"');
  });
});
