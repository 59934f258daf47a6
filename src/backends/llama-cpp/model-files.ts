import { readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { LlamaCppConfig } from '../../config/llama-cpp-schema.js';

export interface ModelFile {
  /** The file name without `.gguf`: what requests name (the upstream model). */
  id: string;
  path: string;
}

function idOf(path: string): string {
  return basename(path).replace(/\.gguf$/i, '');
}

/** A file, or a link to one: a folder named `x.gguf` is no model. */
function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The model file, or every `.gguf` file of the models folder (sorted, so ids are stable). */
export function modelFiles(config: LlamaCppConfig): ModelFile[] {
  if (config.model !== undefined) {
    const path = resolve(config.model);
    return [{ id: idOf(path), path }];
  }
  const folder = resolve(config.models ?? '.');
  return readdirSync(folder)
    .filter((name) => name.toLowerCase().endsWith('.gguf') && isFile(join(folder, name)))
    .sort()
    .map((name) => ({ id: idOf(name), path: join(folder, name) }));
}
