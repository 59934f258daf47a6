import pino from 'pino';
import type { Backend } from '../backends/backend.js';
import { createModuleBackend } from '../backends/module/load-module-backend.js';
import { parseConfig } from '../config/load-config.js';
import type { ModuleBackendConfig } from '../config/module-backend-schema.js';

export interface LoadModuleSettings {
  /** The backend's name (what the factory gets, what errors say); default `module-under-test`. */
  name?: string;
  options?: Record<string, unknown>;
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** Where a relative `module` resolves; default the working directory. */
  configDir?: string;
}

/**
 * A backend module loaded exactly as the gateway loads it for `type: module` (its factory
 * called, its result checked and wrapped in the containment), for runBackendContract's `make`:
 *
 *   make: () => loadModuleBackend(new URL('./mine.mjs', import.meta.url).href, { options: {...} })
 */
export async function loadModuleBackend(module: string, settings: LoadModuleSettings = {}): Promise<Backend> {
  const name = settings.name ?? 'module-under-test';
  const config = parseConfig(
    {
      backends: {
        [name]: {
          type: 'module',
          module,
          options: settings.options ?? {},
          ...(settings.timeoutMs === undefined ? {} : { timeoutMs: settings.timeoutMs }),
          ...(settings.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: settings.idleTimeoutMs }),
        },
      },
      models: {},
    },
    {},
    'loadModuleBackend',
    settings.configDir,
  );
  return createModuleBackend(name, config.backends[name] as ModuleBackendConfig, {
    config,
    logger: pino({ level: 'silent' }),
  });
}
