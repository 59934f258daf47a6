import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * Threads per evaluation, by default the cores this process may use. More threads than cores
 * is the one setting that must never happen: llama.cpp's threads spin while they wait for each
 * other, and measured on a 2-core machine, 4 threads made generation about 1000x slower than 2.
 * On a machine with SMT, the number of physical cores is often faster still; set it then.
 */
const DEFAULT_THREADS = availableParallelism();

function kindOf(path: string): 'file' | 'folder' | 'missing' {
  try {
    return statSync(path).isDirectory() ? 'folder' : 'file';
  } catch {
    return 'missing';
  }
}

/** Only files count: a folder named `x.gguf` is not a model (it failed to load after boot). */
function hasGguf(folder: string): boolean {
  try {
    return readdirSync(folder).some(
      (name) => name.toLowerCase().endsWith('.gguf') && kindOf(join(folder, name)) === 'file',
    );
  } catch {
    return false;
  }
}

/**
 * An in-process GGUF model run by node-llama-cpp (an optional dependency, loaded only when a
 * backend of this type is configured). Paths are relative to the working directory.
 */
export const llamaCppBackendSchema = z
  .object({
    type: z.literal('llama-cpp'),
    /** One .gguf file; its model id is the file name without `.gguf`. */
    model: z.string().min(1).optional(),
    /** Or a folder: each `.gguf` file in it becomes a model, named like its file. */
    models: z.string().min(1).optional(),
    /** Tokens each slot can hold (prompt + answer); capped at what the model was trained on. */
    contextSize: z.number().int().min(64).default(4096),
    /** Layers offloaded to a GPU; 0 runs on the CPU only (the gateway loads llama.cpp without GPU support). */
    gpuLayers: z.number().int().nonnegative().default(0),
    threads: z.number().int().positive().max(1024).default(DEFAULT_THREADS),
    /** Requests generated at the same time per model (parallel sequences of one context). */
    slots: z.number().int().positive().max(256).default(1),
    /** Requests waiting for a slot beyond which the next one is refused with a 429. */
    queue: z.number().int().nonnegative().max(100_000).default(16),
    /** Answer length when a request sets no max_tokens; by default, up to the end of the context. */
    maxTokens: z.number().int().positive().optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    if ((config.model === undefined) === (config.models === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'takes model (a .gguf file) or models (a folder of .gguf files), exactly one of them',
      });
      return;
    }
    if (config.model !== undefined) {
      const kind = kindOf(config.model);
      if (kind !== 'file')
        ctx.addIssue({
          code: 'custom',
          path: ['model'],
          message:
            kind === 'missing'
              ? `the model file ${config.model} does not exist`
              : `${config.model} is a folder: use models for a folder of .gguf files`,
        });
    }
    if (config.models !== undefined) {
      const kind = kindOf(config.models);
      if (kind !== 'folder')
        ctx.addIssue({
          code: 'custom',
          path: ['models'],
          message:
            kind === 'missing'
              ? `the models folder ${config.models} does not exist`
              : `${config.models} is a file: use model for one .gguf file`,
        });
      else if (!hasGguf(config.models))
        ctx.addIssue({
          code: 'custom',
          path: ['models'],
          message: `the models folder ${config.models} holds no .gguf file`,
        });
    }
  });

export type LlamaCppConfig = z.output<typeof llamaCppBackendSchema>;
