import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendCall, BackendResponse } from '../src/backends/backend.js';
import type { ModuleBackend } from '../src/backends/module/module-backend-api.js';
import { InvalidRequestError } from '../src/errors.js';
import { expectEnvelope, expectNoInternals } from './support/error-envelope.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A module that throws, hangs or answers outside the Backend contract is contained: the client
 * gets an OpenAI-shaped 502 / 504 (or, once a stream started, an error event), the module's
 * words and stack stay in the log, and the gateway goes on answering. Each module here is a
 * real file the gateway imports; what it does is scripted by the test through a hook.
 */

type Scenario = (name: string, options: Record<string, unknown>) => ModuleBackend;
const HOOKS = Symbol.for('tollgate.test.module-scenarios');
const scenarios = new Map<string, Scenario>();
(globalThis as Record<symbol, unknown>)[HOOKS] = scenarios;

let moduleDir: string;
beforeAll(() => {
  moduleDir = mkdtempSync(join(tmpdir(), 'tollgate-module-containment-'));
  writeFileSync(
    join(moduleDir, 'scripted.mjs'),
    `const scenarios = globalThis[Symbol.for('tollgate.test.module-scenarios')];
export default function createBackend(name, options) {
  return scenarios.get(options.scenario)(name, options);
}
`,
  );
});

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

const SECRET = 'sk-module-internal-secret-42';

function chatJson(model: string, content: string): BackendResponse {
  const body = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
  return {
    status: 200,
    contentType: 'application/json',
    headers: {},
    body: [Buffer.from(JSON.stringify(body))],
  };
}

function chunk(model: string, content: string): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model,
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  })}\n\n`;
}

let gateway: TestGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

/** A gateway whose model `m` is served by a module behaving as `behaviour` says (one attempt, no circuit). */
async function gatewayWith(
  behaviour: Scenario,
  backend: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Promise<TestGateway> {
  const id = `s${scenarios.size}`;
  scenarios.set(id, behaviour);
  gateway = await startGateway({
    backends: {
      mine: {
        type: 'module',
        module: join(moduleDir, 'scripted.mjs'),
        options: { scenario: id },
        ...backend,
      },
      mock: { type: 'mock' },
    },
    models: {
      m: { backend: 'mine', retry: { attempts: 1 }, circuit: { enabled: false } },
      'mod/*': { backend: 'mine' },
      mock: { backend: 'mock' },
    },
    ...extra,
  });
  return gateway;
}

async function chat(
  target: TestGateway,
  body: Record<string, unknown> = {},
): Promise<{ status: number; text: string; json: unknown }> {
  const response = await fetch(`${target.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

const UPSTREAM_ERROR = { type: 'server_error', code: 'upstream_error', param: null };
const UPSTREAM_TIMEOUT = { type: 'server_error', code: 'upstream_timeout', param: null };

describe('a module that throws', () => {
  it('answers 502 in OpenAI’s shape, logs the module’s error, and the gateway answers the next request', async () => {
    let failing = true;
    const target = await gatewayWith(() => ({
      supports: () => true,
      async send(call) {
        if (failing) throw new Error(`database password ${SECRET} rejected`);
        return chatJson(call.model, 'recovered');
      },
    }));
    const failed = await chat(target);
    expect(failed.status).toBe(502);
    const error = expectEnvelope(failed.json, UPSTREAM_ERROR);
    expect(error.message).toMatch(/^Backend 'mine' failed: its module threw an error \(request /);
    expect(failed.text).not.toContain(SECRET);
    expectNoInternals(failed.text);
    // The operator finds it in the log, with the stack.
    const logged = target.logs.find((line) => line.msg === 'backend module failed');
    expect(JSON.stringify(logged)).toContain(SECRET);
    expect((logged?.err as { stack?: string } | undefined)?.stack).toMatch(/\n\s+at /);

    failing = false;
    const next = await chat(target);
    expect(next.status).toBe(200);
    expect(
      (next.json as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content,
    ).toBe('recovered');
  });

  it('a synchronous throw is contained the same way', async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      send() {
        throw new TypeError(`cannot read ${SECRET}`);
      },
    }));
    const failed = await chat(target);
    expect(failed.status).toBe(502);
    expectEnvelope(failed.json, UPSTREAM_ERROR);
    expect(failed.text).not.toContain(SECRET);
  });

  it('a GatewayError it throws on purpose reaches the client as it is', async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      async send() {
        throw new InvalidRequestError('This backend takes at most 4 messages.', 'messages');
      },
    }));
    const refused = await chat(target);
    expect(refused.status).toBe(400);
    const error = expectEnvelope(refused.json, {
      type: 'invalid_request_error',
      code: null,
      param: 'messages',
    });
    expect(error.message).toBe('This backend takes at most 4 messages.');
  });

  it('a GatewayError from another copy of the package (its author’s) is recognised too', async () => {
    // Another copy's class: not ours, but with the package's brand, which every copy sets.
    class ForeignGatewayError extends Error {
      get [Symbol.for('tollgate.gateway-error')]() {
        return true;
      }
      readonly status = 429;
      readonly type = 'rate_limit_error';
      readonly code = 'rate_limit_exceeded';
      readonly param = null;
      readonly headers = { 'retry-after': '7' };
    }
    const target = await gatewayWith(() => ({
      supports: () => true,
      async send() {
        throw new ForeignGatewayError('The local model is busy.');
      },
    }));
    const refused = await chat(target);
    expect(refused.status).toBe(429);
    expectEnvelope(refused.json, { type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null });
  });

  it('a throw in the middle of a stream ends it with the gateway’s error event', async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      async send(call) {
        async function* body() {
          yield chunk(call.model, 'first');
          throw new Error(`lost ${SECRET}`);
        }
        return { status: 200, contentType: 'text/event-stream', headers: {}, body: body() };
      },
    }));
    const streamed = await chat(target, { stream: true });
    expect(streamed.status).toBe(200);
    expect(streamed.text).toContain('"first"');
    expect(streamed.text).toContain('"code":"upstream_error"');
    expect(streamed.text).not.toContain(SECRET);
    expect(streamed.text).not.toContain('[DONE]');
  });
});

describe('a module that hangs', () => {
  it('answers 504 after timeoutMs, and the module’s signal tells it the gateway gave up', async () => {
    const gaveUp = deferred<unknown>();
    const never = deferred<BackendResponse>();
    const target = await gatewayWith(
      () => ({
        supports: () => true,
        send(call) {
          call.signal.addEventListener('abort', () => gaveUp.resolve(call.signal.reason));
          return never.promise;
        },
      }),
      { timeoutMs: 50 },
    );
    const timedOut = await chat(target);
    expect(timedOut.status).toBe(504);
    expectEnvelope(timedOut.json, UPSTREAM_TIMEOUT);
    await gaveUp.promise;
    // A late answer from the module is dropped, and the gateway still serves.
    never.resolve(chatJson('m', 'late'));
    expect((await chat(target, { model: 'mock' })).status).toBe(200);
  });

  it('a body that never sends its first chunk is a 504 too', async () => {
    const never = deferred<IteratorResult<Buffer>>();
    const target = await gatewayWith(
      () => ({
        supports: () => true,
        async send() {
          const body: AsyncIterable<Buffer> = {
            [Symbol.asyncIterator]: () => ({ next: () => never.promise }),
          };
          return { status: 200, contentType: 'application/json', headers: {}, body };
        },
      }),
      { timeoutMs: 50 },
    );
    const timedOut = await chat(target);
    expect(timedOut.status).toBe(504);
    expectEnvelope(timedOut.json, UPSTREAM_TIMEOUT);
  });

  it('a stream that stalls after it started ends with the gateway’s error event', async () => {
    const stalled = deferred();
    const target = await gatewayWith(
      () => ({
        supports: () => true,
        async send(call) {
          async function* body() {
            yield chunk(call.model, 'first');
            await stalled.promise;
          }
          return { status: 200, contentType: 'text/event-stream', headers: {}, body: body() };
        },
      }),
      { idleTimeoutMs: 50 },
    );
    const streamed = await chat(target, { stream: true });
    expect(streamed.status).toBe(200);
    expect(streamed.text).toContain('"first"');
    expect(streamed.text).toContain('"code":"upstream_timeout"');
    expect(streamed.text).toContain('went silent in the middle of its answer');
    stalled.resolve();
  });
});

describe('a module that answers outside the contract', () => {
  const malformed: Array<{
    what: string;
    answer: (call: BackendCall) => unknown;
    stream?: boolean;
    reason: RegExp;
  }> = [
    {
      what: 'a non-2xx status without an error',
      answer: () => ({ status: 404, contentType: 'application/json', headers: {}, body: ['{}'] }),
      reason: /status 404 without an error/,
    },
    {
      what: 'nothing at all',
      answer: () => undefined,
      reason: /send\(\) resolved without a response object/,
    },
    {
      what: 'a JSON body that is not JSON',
      answer: () => ({
        status: 200,
        contentType: 'application/json',
        headers: {},
        body: ['{"id": "chatcmpl-'],
      }),
      reason: /body that is not valid JSON/,
    },
    {
      what: 'a body that is not iterable',
      answer: () => ({ status: 200, contentType: 'application/json', headers: {}, body: 42 }),
      reason: /body that is not iterable/,
    },
    {
      what: 'chunks that are neither Buffers nor strings (JSON)',
      answer: () => ({ status: 200, contentType: 'application/json', headers: {}, body: [{ id: 1 }] }),
      reason: /a body chunk that is an object \(Object\), not a Buffer or a string/,
    },
    {
      what: 'chunks that are neither Buffers nor strings (stream)',
      answer: () => ({ status: 200, contentType: 'text/event-stream', headers: {}, body: [7] }),
      stream: true,
      reason: /a body chunk that is a number/,
    },
    {
      what: 'no content type',
      answer: () => ({ status: 200, headers: {}, body: ['{}'] }),
      reason: /without a contentType/,
    },
  ];

  for (const { what, answer, stream, reason } of malformed) {
    it(`${what}: 502`, async () => {
      const target = await gatewayWith(() => ({
        supports: () => true,
        send: async (call) => answer(call) as never,
      }));
      const failed = await chat(target, stream ? { stream: true } : {});
      expect(failed.status).toBe(502);
      const error = expectEnvelope(failed.json, UPSTREAM_ERROR);
      expect(error.message).toMatch(/^Backend 'mine' gave a malformed answer: /);
      expect(error.message).toMatch(reason);
      expect((await chat(target, { model: 'mock' })).status).toBe(200);
    });
  }

  it('string chunks are fine: they become UTF-8 bytes, and framing headers are dropped', async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      async send(call) {
        const json = JSON.stringify({
          id: 'chatcmpl-1',
          object: 'chat.completion',
          created: 1,
          model: call.model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'héllo ✓', refusal: null },
              logprobs: null,
              finish_reason: 'stop',
            },
          ],
          usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
        });
        return {
          status: 200,
          contentType: 'application/json',
          headers: { 'content-length': '3', 'x-module-note': 'kept' },
          body: [json.slice(0, 10), json.slice(10)],
        };
      },
    }));
    const response = await fetch(`${target.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-module-note')).toBe('kept');
    expect(
      ((await response.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message
        .content,
    ).toBe('héllo ✓');
  });

  it('supports() that throws means "not supported", not a crash', async () => {
    const target = await gatewayWith(() => ({
      supports: () => {
        throw new Error('oops');
      },
      send: async (call) => chatJson(call.model, 'never'),
    }));
    const refused = await chat(target);
    expect(refused.status).toBe(400);
    expectEnvelope(refused.json, {
      type: 'invalid_request_error',
      code: 'unsupported_endpoint',
      param: 'model',
    });
  });
});

describe('listModels and checkHealth are contained', () => {
  it('a listModels that throws leaves /v1/models answering', async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      send: async (call) => chatJson(call.model, 'x'),
      listModels: async () => {
        throw new Error(SECRET);
      },
    }));
    const response = await fetch(`${target.baseURL}/models`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('"mock"');
    expect(text).not.toContain(SECRET);
  });

  it('a listModels that answers lists its models under the wildcard route', async () => {
    const target = await gatewayWith(() => ({
      supports: () => true,
      send: async (call) => chatJson(call.model, 'x'),
      listModels: async () => ['tiny', 'small'],
    }));
    const ids = (
      (await (await fetch(`${target.baseURL}/models`)).json()) as { data: Array<{ id: string }> }
    ).data.map((model) => model.id);
    expect(ids).toEqual(expect.arrayContaining(['mod/tiny', 'mod/small']));
  });

  it('a checkHealth that throws, or never answers, is reported in /readyz in our words', async () => {
    const never = deferred();
    for (const checkHealth of [
      async () => {
        throw new Error(SECRET);
      },
      () => never.promise,
    ]) {
      const target = await gatewayWith(
        () => ({ supports: () => true, send: async (call) => chatJson(call.model, 'x'), checkHealth }),
        {},
        { readiness: { timeoutMs: 50, cacheMs: 0 } },
      );
      const response = await fetch(`${target.url}/readyz`);
      const report = (await response.json()) as { backends: Record<string, { ok: boolean; error?: string }> };
      expect(report.backends.mine?.ok).toBe(false);
      expect(report.backends.mine?.error).toMatch(/^Backend 'mine' /);
      expect(report.backends.mock?.ok).toBe(true);
      expect(JSON.stringify(report)).not.toContain(SECRET);
      await target.close();
      gateway = undefined;
    }
  });
});

describe('the client leaving reaches the module', () => {
  it('a JSON call: the module sees its signal aborted', async () => {
    const started = deferred();
    const aborted = deferred<boolean>();
    const target = await gatewayWith(() => ({
      supports: () => true,
      send(call) {
        call.signal.addEventListener('abort', () => aborted.resolve(call.signal.aborted));
        started.resolve();
        return new Promise<BackendResponse>(() => {});
      },
    }));
    const controller = new AbortController();
    const client = new OpenAI({ baseURL: target.baseURL, apiKey: 'unused', maxRetries: 0 });
    const pending = client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
      { signal: controller.signal },
    );
    await started.promise;
    controller.abort();
    await expect(pending).rejects.toThrow(/abort/i);
    expect(await aborted.promise).toBe(true);
  });

  it('a stream: the module’s signal aborts and its generator is closed', async () => {
    const aborted = deferred();
    const closed = deferred();
    let yieldedAfterAbort = 0;
    const target = await gatewayWith(() => ({
      supports: () => true,
      async send(call) {
        call.signal.addEventListener('abort', () => aborted.resolve());
        async function* body() {
          try {
            yield chunk(call.model, 'first');
            // A well-behaved module waits on its signal; then it would go on, but it is closed.
            await aborted.promise;
            for (;;) {
              yield chunk(call.model, 'more');
              yieldedAfterAbort++;
            }
          } finally {
            closed.resolve();
          }
        }
        return { status: 200, contentType: 'text/event-stream', headers: {}, body: body() };
      },
    }));
    const controller = new AbortController();
    const client = new OpenAI({ baseURL: target.baseURL, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create(
      { model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] },
      { signal: controller.signal },
    );
    for await (const part of stream) {
      expect(part.choices[0]?.delta.content).toBe('first');
      controller.abort();
      break;
    }
    await aborted.promise;
    // The gateway returned the module's iterator: its finally ran at its next yield.
    await closed.promise;
    expect(yieldedAfterAbort).toBe(0);
  });
});
