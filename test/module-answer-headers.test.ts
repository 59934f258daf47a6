import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendCall } from '../src/backends/backend.js';
import type { ModuleBackend, ModuleBackendResponse } from '../src/backends/module/module-backend-api.js';
import { ServiceUnavailableError } from '../src/errors.js';
import { expectEnvelope } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * The headers of a module's answer reach the client only when they are the module's own (`x-`
 * names the gateway does not set) and HTTP can carry them. Before, a module could replace the
 * gateway's request id, backend and cache reports, rate limits, CORS and cookies, and a header
 * with a CR/LF or a space in its name made node refuse the answer: fastify's bare 500, not in
 * OpenAI's shape, recorded as a failure but charged.
 */

const HOOKS = Symbol.for('tollgate.test.header-scenarios');
type Scenario = () => ModuleBackend;
const scenarios = new Map<string, Scenario>();
(globalThis as Record<symbol, unknown>)[HOOKS] = scenarios;

let moduleFile: string;
beforeAll(() => {
  moduleFile = join(mkdtempSync(join(tmpdir(), 'tollgate-module-headers-')), 'scripted.mjs');
  writeFileSync(
    moduleFile,
    `const scenarios = globalThis[Symbol.for('tollgate.test.header-scenarios')];
export default function createBackend(name, options) {
  return scenarios.get(options.scenario)();
}
`,
  );
});

let gateway: TestGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

async function gatewayWith(scenario: Scenario, extra: Record<string, unknown> = {}): Promise<TestGateway> {
  const id = `s${scenarios.size}`;
  scenarios.set(id, scenario);
  gateway = await startGateway({
    backends: { mine: { type: 'module', module: moduleFile, options: { scenario: id } } },
    models: { m: { backend: 'mine', retry: { attempts: 1 }, circuit: { enabled: false } } },
    ...extra,
  });
  return gateway;
}

function completion(model: string): string {
  return JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'with headers', refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  });
}

function stream(model: string): string[] {
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model };
  return [
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'with headers' }, finish_reason: null }] })}\n\n`,
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
    `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } })}\n\n`,
    'data: [DONE]\n\n',
  ];
}

/** A module answering chat (JSON, or SSE for stream: true) with these headers. */
function answering(headers: Record<string, string>): Scenario {
  return () => ({
    supports: () => true,
    send: (call: BackendCall): ModuleBackendResponse => {
      const streamed = call.kind === 'json' && call.stream;
      return streamed
        ? { status: 200, contentType: 'text/event-stream', headers, body: stream(call.model) }
        : { status: 200, contentType: 'application/json', headers, body: completion(call.model) };
    },
  });
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Raw node:http, so every header the gateway sent is seen as it was sent (set-cookie included). */
function post(
  target: TestGateway,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      `${target.baseURL}/chat/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(parts).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }));
  });
}

const FORGED = {
  'X-Request-Id': 'forged',
  'x-tollgate-backend': 'forged',
  'x-tollgate-cache': 'HIT',
  'x-tollgate-attempts': '99',
  'x-ratelimit-remaining-requests': '999999',
  'x-should-retry': 'true',
  'access-control-allow-origin': 'https://evil.example',
  'access-control-allow-credentials': 'true',
  'set-cookie': 'session=forged; Path=/',
  'strict-transport-security': 'max-age=0',
  'cache-control': 'public, max-age=31536000',
  'retry-after': '3600',
  'x-module-note': 'kept',
};

describe("a module's headers never stand in for the gateway's", () => {
  for (const streamed of [false, true]) {
    it(`${streamed ? 'a stream' : 'a JSON answer'}: only the module's own x- headers are relayed`, async () => {
      const target = await gatewayWith(answering(FORGED), {
        server: { cors: { origins: ['https://app.example'] } },
      });
      const answer = await post(target, streamed ? { stream: true } : {}, {
        origin: 'https://app.example',
        'x-request-id': 'client-chosen-id',
      });
      expect(answer.status).toBe(200);
      expect(answer.text).toContain('with headers');
      const { headers } = answer;
      // The gateway's own, with its values.
      expect(headers['x-request-id']).toBe('client-chosen-id');
      expect(headers['x-tollgate-backend']).toBe('mine');
      expect(headers['x-tollgate-attempts']).toBe('1');
      expect(headers['access-control-allow-origin']).toBe('https://app.example');
      if (streamed) expect(headers['cache-control']).toBe('no-cache');
      else expect(headers['cache-control']).toBeUndefined();
      expect(headers['x-tollgate-cache']).not.toBe('HIT');
      // Nothing else of the module's but its own note.
      for (const name of [
        'x-ratelimit-remaining-requests',
        'x-should-retry',
        'access-control-allow-credentials',
        'set-cookie',
        'strict-transport-security',
        'retry-after',
      ])
        expect(headers[name], name).toBeUndefined();
      expect(headers['x-module-note']).toBe('kept');
    });
  }

  it("a GatewayError the module throws keeps its retry advice, not the gateway's headers", async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      send: () => {
        const error = new ServiceUnavailableError('The local model is loading.', 9);
        Object.assign(error.headers, {
          'x-request-id': 'forged',
          'set-cookie': 'a=b',
          'x-module-note': 'kept',
        });
        throw error;
      },
    }));
    const answer = await post(target, {});
    expect(answer.status).toBe(503);
    expectEnvelope(JSON.parse(answer.text), {
      type: 'server_error',
      code: 'service_unavailable',
      param: null,
    });
    expect(answer.headers['retry-after']).toBe('9');
    expect(answer.headers['x-module-note']).toBe('kept');
    expect(answer.headers['x-request-id']).not.toBe('forged');
    expect(answer.headers['set-cookie']).toBeUndefined();
  });
});

describe('a header HTTP cannot carry is dropped, the answer relayed', () => {
  const BAD = {
    'x-bad-value': 'line\r\nInjected: yes',
    'bad header': 'x',
    'x-fine': 'still here',
  };

  for (const streamed of [false, true]) {
    it(`${streamed ? 'a stream' : 'a JSON answer'}: 200 with the body, the bad headers left out and logged`, async () => {
      const target = await gatewayWith(answering(BAD));
      const answer = await post(target, streamed ? { stream: true } : {});
      expect(answer.status).toBe(200);
      expect(answer.text).toContain('with headers');
      expect(answer.headers['x-fine']).toBe('still here');
      expect(answer.headers['x-bad-value']).toBeUndefined();
      expect(answer.headers.injected).toBeUndefined();
      expect(answer.headers['bad header']).toBeUndefined();
      const warned = target.logs
        .filter(
          (line) => line.msg === 'backend module: dropped a header whose name or value HTTP cannot carry',
        )
        .map((line) => line.header);
      expect(warned).toEqual(['x-bad-value', 'bad header']);
    });
  }

  it('the OpenAI SDK gets its completion', async () => {
    const target = await gatewayWith(answering(BAD));
    const client = new OpenAI({ baseURL: target.baseURL, apiKey: 'unused', maxRetries: 0 });
    const answer = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(answer.choices[0]?.message.content).toBe('with headers');
  });
});
