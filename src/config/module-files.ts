import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isObject } from '../json-values.js';

/**
 * The file a `type: module` backend names by path (relative to the config's folder, absolute,
 * or a file: URL), as src/backends/module/load-module-backend.ts resolves it; undefined for a
 * package name, which only importing it can find.
 */
function moduleFile(module: string, configDir: string): string | undefined {
  if (module.startsWith('file:')) {
    try {
      return fileURLToPath(module);
    } catch {
      return undefined;
    }
  }
  if (isAbsolute(module) || /^\.\.?([/\\]|$)/.test(module)) return resolve(configDir, module);
  return undefined;
}

/**
 * Every module backend whose file is missing, at once: loading the backends stops at the first
 * that fails, so without this a second missing file would only show after fixing the first.
 */
export function moduleFileProblems(raw: Record<string, unknown>, configDir: string): string[] {
  const backends = isObject(raw.backends) ? Object.entries(raw.backends) : [];
  const problems: string[] = [];
  for (const [name, backend] of backends) {
    if (!isObject(backend) || backend.type !== 'module' || typeof backend.module !== 'string') continue;
    const file = moduleFile(backend.module, configDir);
    if (file !== undefined && !existsSync(file))
      problems.push(`backends.${name}.module: module '${backend.module}' not found (looked for ${file})`);
  }
  return problems;
}
