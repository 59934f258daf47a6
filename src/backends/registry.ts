import type { BackendConfig, Config } from '../config/schema.js';
import type { Backend } from './backend.js';
import { MockBackend } from './mock/mock-backend.js';
import { OpenAICompatibleBackend } from './openai-compatible/openai-compatible-backend.js';

type BackendFactory = (name: string, config: BackendConfig) => Backend;

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

  static fromConfig(config: Config): BackendRegistry {
    return new BackendRegistry(
      Object.entries(config.backends).map(([name, backendConfig]) =>
        FACTORIES[backendConfig.type](name, backendConfig),
      ),
    );
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
