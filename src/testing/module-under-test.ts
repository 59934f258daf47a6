import pino from 'pino';
import type { Backend, BackendCall } from '../backends/backend.js';
import { createModuleBackend } from '../backends/module/load-module-backend.js';
import { parseConfig } from '../config/load-config.js';
import type { ModuleBackendConfig } from '../config/module-backend-schema.js';
import { observe } from './observed-module.js';

export interface LoadModuleSettings {
  /** The backend's name (what the factory gets, what errors say); default `module-under-test`. */
  name?: string;
  options?: Record<string, unknown>;
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** Where a relative `module` resolves; default the working directory. */
  configDir?: string;
}

/** Stack lines shown of a logged error: where it was thrown, not the whole way there. */
const STACK_LINES = 6;

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

/** A pino line as a reader wants it: its message, the reason, and the error's stack. */
function readable(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.trim();
  }
  const level = entry.level === 50 || entry.level === 60 ? 'error' : 'warn';
  const { msg, operation, reason, err, header } = entry;
  const parts = [`[${level}] ${String(msg ?? '')}${typeof operation === 'string' ? ` (${operation})` : ''}`];
  if (typeof reason === 'string') parts.push(`: ${reason}`);
  if (typeof header === 'string') parts.push(`: ${JSON.stringify(header)}`);
  const error = record(err);
  if (error && typeof error.stack === 'string') {
    parts.push(`: ${error.stack.split('\n').slice(0, STACK_LINES).join('\n      ')}`);
  } else if (err !== undefined) {
    parts.push(`: ${JSON.stringify(err)}`);
  }
  return parts.join('');
}

/**
 * A backend module loaded exactly as the gateway loads it for `type: module` (its factory
 * called, its result checked and wrapped in the containment), for runBackendContract's `make`:
 *
 *   make: () => loadModuleBackend(new URL('./mine.mjs', import.meta.url).href, { options: {...} })
 *
 * The suite sees more of it than of another backend: the gateway's log of it (why a call got a
 * 502 goes there, not to the caller), shown when a test fails, and when the module itself, not
 * only the containment answering for it, settled a call.
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
  const logged: string[] = [];
  const work = new WeakMap<BackendCall, Array<Promise<unknown>>>();
  const backend = await createModuleBackend(
    name,
    config.backends[name] as ModuleBackendConfig,
    {
      config,
      logger: pino({ level: 'warn' }, { write: (line: string) => void logged.push(readable(line)) }),
    },
    {
      onWork: (call, promise) => {
        const promises = work.get(call) ?? [];
        promises.push(promise);
        work.set(call, promises);
      },
    },
  );
  return observe(backend, {
    settled: async (call) => {
      await Promise.allSettled(work.get(call) ?? []);
    },
    logged: () => logged,
  });
}
