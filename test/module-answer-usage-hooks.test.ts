import { describe, expect, expectTypeOf, it } from 'vitest';
import type { BackendCall } from '../src/backends/backend.js';
import { ContainedBackend } from '../src/backends/module/contained-backend.js';
import type { ModuleBackendResponse } from '../src/backends/module/module-backend-api.js';

/**
 * The gateway's usage hooks on a backend's answer (`usageCounted`, `partialUsage`) are not part of
 * a module's answer: the containment rebuilds the answer from what a module may give (status,
 * content type, headers, body), and a module's usage is what its answer says, else the gateway's
 * count. The type a module author writes against says so: before, it offered both fields, which
 * the gateway dropped without a word.
 */

const logger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

const call: BackendCall = {
  kind: 'json',
  endpoint: 'chat.completions',
  model: 'm',
  publicModel: 'm',
  body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true },
  stream: true,
  signal: new AbortController().signal,
  requestId: 'req-1',
};

describe("a module's answer", () => {
  it('has no usage hooks in its type', () => {
    expectTypeOf<ModuleBackendResponse>().not.toHaveProperty('partialUsage');
    expectTypeOf<ModuleBackendResponse>().not.toHaveProperty('usageCounted');
    expectTypeOf<ModuleBackendResponse>().toHaveProperty('status');
    expectTypeOf<ModuleBackendResponse>().toHaveProperty('contentType');
  });

  it('given them anyway (plain JavaScript), is answered without them: the gateway never calls a module there', async () => {
    let asked = 0;
    const backend = new ContainedBackend(
      'mine',
      {
        supports: () => true,
        send: () =>
          ({
            status: 200,
            contentType: 'text/event-stream',
            body: ['data: {"choices":[]}\n\n', 'data: [DONE]\n\n'],
            partialUsage: () => {
              asked += 1;
              throw new Error('a module hook that throws');
            },
            usageCounted: () => {
              asked += 1;
              return true;
            },
          }) as ModuleBackendResponse,
      },
      { timeoutMs: 5_000, idleTimeoutMs: 5_000, logger },
    );
    const response = await backend.send(call);
    expect(response.partialUsage).toBeUndefined();
    expect(response.usageCounted).toBeUndefined();
    const chunks: string[] = [];
    for await (const chunk of response.body) chunks.push(chunk.toString());
    expect(chunks.join('')).toContain('[DONE]');
    expect(asked).toBe(0);
  });
});
