import type { FastifyBaseLogger } from 'fastify';
import type { LocalServerConfig } from '../config/local-server-schema.js';
import type { BackendConfig, Config } from '../config/schema.js';
import { AnthropicBackend } from './anthropic/anthropic-backend.js';
import type { Backend } from './backend.js';
import { createLlamaCppBackend } from './llama-cpp/create-llama-cpp-backend.js';
import { LocalServerBackend } from './local-servers/local-server-backend.js';
import { withMessagesTranslation } from './messages-translation/with-messages-translation.js';
import { MockBackend } from './mock/mock-backend.js';
import { createModuleBackend } from './module/load-module-backend.js';
import { OpenAICompatibleBackend } from './openai-compatible/openai-compatible-backend.js';
import { withResponsesTranslation } from './responses-translation/responses-translation-backend.js';

/** What a factory may need besides its own config section. */
export interface BackendFactoryContext {
  config: Config;
  logger: FastifyBaseLogger;
}

/** May be async: a backend that loads a module or a model file does so before it is registered. */
type BackendFactory = (
  name: string,
  config: BackendConfig,
  context: BackendFactoryContext,
) => Backend | Promise<Backend>;

/** Ollama, vLLM, llama.cpp server, LM Studio: one adapter, a preset per type. */
const localServer: BackendFactory = (name, config, context) =>
  new LocalServerBackend(name, config as LocalServerConfig, context.logger);

/** Backend type -> factory. New adapters register here; routes never change. */
const FACTORIES: Record<BackendConfig['type'], BackendFactory> = {
  openai: (name, config) =>
    new OpenAICompatibleBackend(name, config as Extract<BackendConfig, { type: 'openai' }>),
  azure: (name, config) =>
    new OpenAICompatibleBackend(name, config as Extract<BackendConfig, { type: 'azure' }>),
  mock: (name, config) => new MockBackend(name, config as Extract<BackendConfig, { type: 'mock' }>),
  'llama-cpp': (name, config, { logger }) =>
    createLlamaCppBackend(name, config as Extract<BackendConfig, { type: 'llama-cpp' }>, logger),
  anthropic: (name, config) =>
    new AnthropicBackend(name, config as Extract<BackendConfig, { type: 'anthropic' }>),
  module: (name, config, context) =>
    createModuleBackend(name, config as Extract<BackendConfig, { type: 'module' }>, context),
  ollama: localServer,
  vllm: localServer,
  'llamacpp-server': localServer,
  lmstudio: localServer,
};

export class BackendRegistry {
  private readonly backends = new Map<string, Backend>();

  constructor(backends: Iterable<Backend>) {
    // Here, so every backend (configured, injected by tests or embedders) gets /v1/responses and
    // Anthropic's /v1/messages, translated to chat where it has no such endpoint of its own.
    for (const backend of backends)
      this.backends.set(backend.name, withResponsesTranslation(withMessagesTranslation(backend)));
  }

  static async fromConfig(config: Config, logger: FastifyBaseLogger): Promise<BackendRegistry> {
    const context: BackendFactoryContext = { config, logger };
    const settled = await Promise.allSettled(
      Object.entries(config.backends).map(([name, backendConfig]) =>
        FACTORIES[backendConfig.type](name, backendConfig, context),
      ),
    );
    const failed = settled.find((result) => result.status === 'rejected');
    if (failed) {
      // Backends that did start (a loaded model, a timer) must not keep the process alive.
      await Promise.allSettled(
        settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value.close()] : [])),
      );
      throw failed.reason;
    }
    return new BackendRegistry(settled.map((result) => (result as PromiseFulfilledResult<Backend>).value));
  }

  get(name: string): Backend {
    const backend = this.backends.get(name);
    // Config validation guarantees every model names a declared backend.
    if (!backend) throw new Error(`backend '${name}' is not registered`);
    return backend;
  }

  all(): Backend[] {
    return [...this.backends.values()];
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.all().map((backend) => backend.close()));
  }
}
