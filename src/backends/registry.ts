import type { FastifyBaseLogger } from 'fastify';
import type { BackendConfig, Config } from '../config/schema.js';
import type { Backend } from './backend.js';
import { MockBackend } from './mock/mock-backend.js';
import { OpenAICompatibleBackend } from './openai-compatible/openai-compatible-backend.js';

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

/** Backend type -> factory. New adapters register here; routes never change. */
const FACTORIES: Record<BackendConfig['type'], BackendFactory> = {
  openai: (name, config) =>
    new OpenAICompatibleBackend(name, config as Extract<BackendConfig, { type: 'openai' }>),
  azure: (name, config) =>
    new OpenAICompatibleBackend(name, config as Extract<BackendConfig, { type: 'azure' }>),
  mock: (name, config) => new MockBackend(name, config as Extract<BackendConfig, { type: 'mock' }>),
};

export class BackendRegistry {
  private readonly backends = new Map<string, Backend>();

  constructor(backends: Iterable<Backend>) {
    for (const backend of backends) this.backends.set(backend.name, backend);
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
