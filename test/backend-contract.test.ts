import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import type { Backend } from '../src/backends/backend.js';
import { MockBackend } from '../src/backends/mock/mock-backend.js';
import { OpenAICompatibleBackend } from '../src/backends/openai-compatible/openai-compatible-backend.js';
import { parseConfig } from '../src/config/load-config.js';
import type { BackendConfig, Config } from '../src/config/schema.js';
import { type BackendContractOptions, loadModuleBackend, runBackendContract } from '../src/testing/index.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import {
  expectChatCompletion,
  expectChatCompletionChunk,
  expectCompletion,
  expectCompletionChunk,
  expectEmbeddingResponse,
  expectResponse,
  expectResponseStreamEvent,
} from './support/spec-validator.js';

/**
 * One contract (src/testing/backend-contract.ts, shipped as `tollgate/testing`), every Backend:
 * what the gateway relies on from an adapter, validated against the OpenAI spec here. The
 * OpenAI-compatible adapter runs against a real HTTP upstream (a Tollgate serving the mock
 * model), and the module backend runs a user module that serves the mock model through the
 * containment, so all of them must produce the same, spec-valid answers.
 */
function parsed(input: Record<string, unknown>, configDir?: string): Config {
  return parseConfig({ backends: { b: input }, models: {} }, {}, 'test', configDir);
}

function backendConfig<T extends BackendConfig['type']>(config: Config): Extract<BackendConfig, { type: T }> {
  const backend = config.backends.b;
  if (!backend) throw new Error('no backend');
  return backend as Extract<BackendConfig, { type: T }>;
}

/** A user module in a folder of its own: a backend serving the mock model, as an author could write one. */
function mockModuleFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'tollgate-contract-module-'));
  const mock = pathToFileURL(join(import.meta.dirname, '../src/backends/mock/mock-backend.ts')).href;
  writeFileSync(
    join(folder, 'mock-module.mjs'),
    `import { MockBackend } from ${JSON.stringify(mock)};
export default function createBackend(name, options) {
  const mock = new MockBackend(name, { type: 'mock', latencyMs: 0, chunkDelayMs: 0, embeddingDimensions: 16, ...options });
  return {
    supports: (endpoint) => mock.supports(endpoint),
    send: (call) => mock.send(call),
    listModels: (signal) => mock.listModels(signal),
    checkHealth: (signal) => mock.checkHealth(signal),
    close: () => mock.close(),
  };
}
`,
  );
  return folder;
}

const validate = {
  chatCompletion: expectChatCompletion,
  chatCompletionChunk: expectChatCompletionChunk,
  completion: expectCompletion,
  completionChunk: expectCompletionChunk,
  embeddingResponse: expectEmbeddingResponse,
  response: expectResponse,
  responseStreamEvent: expectResponseStreamEvent,
};

/** The mock's scripted failures (see src/backends/mock/mock-directives.ts), reached through any adapter. */
const mockTriggers: BackendContractOptions['triggers'] = {
  clientError: { body: { messages: [{ role: 'user', content: '[[mock:error:429]]' }] }, status: 429 },
  serverError: { messages: [{ role: 'user', content: '[[mock:error:503]]' }] },
  slow: { messages: [{ role: 'user', content: '[[mock:delay:60000]]' }] },
};

let inner: TestGateway;
beforeAll(async () => {
  inner = await startGateway({
    backends: { m: { type: 'mock', chunks: 3 } },
    models: { 'echo-model': { backend: 'm' } },
  });
});
afterAll(async () => {
  await inner?.close();
});

const implementations: Array<{ name: string; make: () => Backend | Promise<Backend> }> = [
  {
    name: 'mock',
    make: () => new MockBackend('b', backendConfig<'mock'>(parsed({ type: 'mock', chunks: 3 }))),
  },
  {
    name: 'openai-compatible',
    make: () =>
      new OpenAICompatibleBackend(
        'b',
        backendConfig<'openai'>(parsed({ type: 'openai', baseUrl: inner.baseURL, apiKey: 'k' })),
      ),
  },
  {
    name: 'module (a user module serving the mock model)',
    // As an author's test loads it: the suite then also sees the module itself settle its calls.
    make: () =>
      loadModuleBackend('./mock-module.mjs', {
        name: 'b',
        options: { chunks: 3 },
        configDir: mockModuleFolder(),
      }),
  },
];

for (const { name, make } of implementations) {
  runBackendContract({ name, make, model: 'echo-model', echoes: true, triggers: mockTriggers, validate });
}
