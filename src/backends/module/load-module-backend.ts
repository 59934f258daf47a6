import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ModuleBackendConfig } from '../../config/module-backend-schema.js';
import type { Backend } from '../backend.js';
import type { BackendFactoryContext } from '../registry.js';
import { boundedWait } from './bounded-wait.js';
import { ContainedBackend, type ContainmentOptions } from './contained-backend.js';
import { describeLoadFailure } from './load-failure.js';
import type { ModuleBackend, ModuleBackendFactory } from './module-backend-api.js';
import { loadedTogether } from './module-load-batch.js';
import { ModuleLoadError } from './module-load-error.js';

const REQUIRED_METHODS = ['send', 'supports'] as const;
const OPTIONAL_METHODS = ['listModels', 'checkHealth', 'close', 'unavailableForMs'] as const;

/** A path (relative to the config's folder, or absolute) or a file: URL as a URL; a package name as is. */
export function moduleSpecifier(module: string, configDir: string): string {
  if (module.startsWith('file:')) return module;
  if (isAbsolute(module) || /^\.\.?([/\\]|$)/.test(module))
    return pathToFileURL(resolve(configDir, module)).href;
  return module;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

async function importModule(
  name: string,
  module: string,
  specifier: string,
): Promise<Record<string, unknown>> {
  if (specifier.startsWith('file:')) {
    const path = fileURLToPath(specifier);
    if (!existsSync(path))
      throw new ModuleLoadError(name, `module '${module}' not found (looked for ${path})`);
  }
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' && !specifier.startsWith('file:')) {
      throw new ModuleLoadError(
        name,
        `module '${module}' not found: a package name is imported from the gateway's own folder (install it there), a path must start with ./, ../ or /`,
        { cause: error },
      );
    }
    throw new ModuleLoadError(
      name,
      `module '${module}' failed to load: ${await describeLoadFailure(error, specifier)}`,
      { cause: error },
    );
  }
}

function factoryOf(exports: Record<string, unknown>): ModuleBackendFactory | undefined {
  if (typeof exports.createBackend === 'function') return exports.createBackend as ModuleBackendFactory;
  const fallback = exports.default;
  if (typeof fallback === 'function') return fallback as ModuleBackendFactory;
  // A CommonJS module's `module.exports = { createBackend }` arrives as the default export.
  const nested = (fallback as { createBackend?: unknown } | null | undefined)?.createBackend;
  return typeof nested === 'function' ? (nested as ModuleBackendFactory) : undefined;
}

function checkShape(name: string, module: string, made: unknown): ModuleBackend {
  if (made === null || typeof made !== 'object') {
    throw new ModuleLoadError(
      name,
      `module '${module}': createBackend returned ${made === null ? 'null' : typeof made}, not a backend object`,
    );
  }
  const methods = made as Record<string, unknown>;
  const missing = REQUIRED_METHODS.filter((method) => typeof methods[method] !== 'function');
  const wrong = OPTIONAL_METHODS.filter(
    (method) => methods[method] !== undefined && typeof methods[method] !== 'function',
  );
  if (missing.length > 0 || wrong.length > 0) {
    const problems = [
      ...(missing.length > 0 ? [`lacks ${missing.map((method) => `${method}()`).join(' and ')}`] : []),
      ...(wrong.length > 0
        ? [`has ${wrong.join(', ')} that ${wrong.length > 1 ? 'are not functions' : 'is not a function'}`]
        : []),
    ];
    throw new ModuleLoadError(
      name,
      `module '${module}': the backend createBackend returned ${problems.join(' and ')} (a backend needs send() and supports(); listModels(), checkHealth() and close() are optional)`,
    );
  }
  return made as ModuleBackend;
}

/**
 * `type: module`: imports the user's module, calls its factory with the backend's options and
 * wraps what it returns in the containment (contained-backend.ts). Every way this can fail is a
 * ModuleLoadError at boot, naming the backend and the module; the module backends of a config
 * load side by side, and a boot that fails lists the problems of each (module-load-batch.ts).
 */
export function createModuleBackend(
  name: string,
  config: ModuleBackendConfig,
  context: BackendFactoryContext,
  containment: Pick<ContainmentOptions, 'onWork'> = {},
): Promise<Backend> {
  return loadedTogether(context.config, loadModuleBackend(name, config, context, containment));
}

async function loadModuleBackend(
  name: string,
  config: ModuleBackendConfig,
  { config: gatewayConfig, logger }: BackendFactoryContext,
  containment: Pick<ContainmentOptions, 'onWork'>,
): Promise<Backend> {
  const configDir = gatewayConfig.configDir ?? process.cwd();
  const exports = await importModule(name, config.module, moduleSpecifier(config.module, configDir));
  const factory = factoryOf(exports);
  if (!factory) {
    throw new ModuleLoadError(
      name,
      `module '${config.module}' exports no backend factory: export a function createBackend(name, options, context), as its default export or named createBackend`,
    );
  }
  const moduleLogger = logger.child({ backend: name });
  const giveUp = new AbortController();
  let outcome: Awaited<ReturnType<typeof boundedWait<ModuleBackend>>>;
  try {
    outcome = await boundedWait(
      new Promise<ModuleBackend>((resolve) =>
        resolve(
          factory(name, structuredClone(config.options), {
            logger: moduleLogger,
            configDir,
            signal: giveUp.signal,
          }),
        ),
      ),
      config.timeoutMs,
    );
  } catch (error) {
    throw new ModuleLoadError(name, `module '${config.module}': createBackend threw: ${firstLine(error)}`, {
      cause: error,
    });
  }
  if (outcome.kind !== 'value') {
    giveUp.abort();
    throw new ModuleLoadError(
      name,
      `module '${config.module}': createBackend did not return a backend within timeoutMs (${config.timeoutMs} ms)`,
    );
  }
  const backend = checkShape(name, config.module, outcome.value);
  return new ContainedBackend(name, backend, {
    timeoutMs: config.timeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    logger: moduleLogger,
    onWork: containment.onWork,
  });
}
