import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { Llama, LlamaModel } from 'node-llama-cpp';
import OpenAI from 'openai';
import { pino } from 'pino';
import { LlamaCppBackend } from '../../src/backends/llama-cpp/llama-cpp-backend.js';
import { loadNodeLlamaCpp, type NodeLlamaCpp } from '../../src/backends/llama-cpp/load-node-llama-cpp.js';
import { LoadedModel } from '../../src/backends/llama-cpp/loaded-model.js';
import { modelFiles } from '../../src/backends/llama-cpp/model-files.js';
import { BackendRegistry } from '../../src/backends/registry.js';
import { type LlamaCppConfig, llamaCppBackendSchema } from '../../src/config/llama-cpp-schema.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startGateway, type TestGateway } from './gateway.js';
import { writeTinyGguf } from './tiny-gguf.js';

export interface TinyModelGateway extends TestGateway {
  backend: LlamaCppBackend;
  /** Every JSON line the backend logged. */
  backendLogs: () => Array<Record<string, unknown>>;
}

export interface TinyModelGatewayOptions {
  /** The llama-cpp backend's options besides its type (tests run 1 thread). */
  backend: Record<string, unknown>;
  /** Public models; by default `tiny` served by the backend. */
  models?: ConfigInput['models'];
  /** Model loading waits for this: a test sees the gateway while its model is still loading. */
  loadGate?: Promise<void>;
  extra?: Partial<ConfigInput>;
}

/**
 * A gateway whose `local` backend is the in-process llama-cpp adapter, built as the registry's
 * factory builds it, except that the test holds the backend (to await its loading and watch its
 * queue) and may hold its loading back.
 */
export async function startTinyModelGateway(options: TinyModelGatewayOptions): Promise<TinyModelGateway> {
  const lines: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    }),
  ) as unknown as FastifyBaseLogger;
  const config: LlamaCppConfig = llamaCppBackendSchema.parse({
    type: 'llama-cpp',
    threads: 1,
    ...options.backend,
  });
  const runtime = await loadNodeLlamaCpp(logger);
  const backend = new LlamaCppBackend('local', modelFiles(config), logger, async (file, signal) => {
    await options.loadGate;
    return LoadedModel.load(file, config, runtime, 'local', logger, signal);
  });
  const gateway = await startGateway(
    {
      readiness: { cacheMs: 0 },
      ...options.extra,
      backends: {
        local: { type: 'llama-cpp', threads: 1, ...options.backend } as ConfigInput['backends'][string],
      },
      models: options.models ?? { tiny: { backend: 'local' } },
    },
    {},
    { registry: new BackendRegistry([backend]) },
  );
  return {
    ...gateway,
    // The getter of `logs` must keep reading the live lines.
    get logs() {
      return gateway.logs;
    },
    backend,
    backendLogs: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    close: async () => {
      await gateway.close();
      await backend.close();
    },
  };
}

export interface TinyModelWithReference {
  /** A gateway whose `tiny` model is the tiny GGUF, loaded. */
  gw: TinyModelGateway;
  client: OpenAI;
  library: NodeLlamaCpp;
  llama: Llama;
  /** The same GGUF loaded apart from the gateway: the reference for its tokenizer and template. */
  reference: LlamaModel;
}

/** The tiny model behind a gateway, an OpenAI client for it, and the same model loaded apart. */
export async function startTinyModelWithReference(contextSize: number): Promise<TinyModelWithReference> {
  const path = writeTinyGguf();
  const gw = await startTinyModelGateway({ backend: { model: path, contextSize } });
  await gw.backend.loaded;
  const { library, llama } = await loadNodeLlamaCpp(gw.app.log);
  const reference = await llama.loadModel({ modelPath: path });
  return {
    gw,
    client: new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 }),
    library,
    llama,
    reference,
  };
}
