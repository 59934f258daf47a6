import type { FastifyBaseLogger } from 'fastify';
import type { LlamaCppConfig } from '../../config/llama-cpp-schema.js';
import { LlamaCppBackend } from './llama-cpp-backend.js';
import { loadNodeLlamaCpp } from './load-node-llama-cpp.js';
import { LoadedModel } from './loaded-model.js';
import { modelFiles } from './model-files.js';

/**
 * The registry's factory: node-llama-cpp must import (a boot error saying how to install it
 * otherwise) before the gateway starts; the models then load in the background.
 */
export async function createLlamaCppBackend(
  name: string,
  config: LlamaCppConfig,
  logger: FastifyBaseLogger,
): Promise<LlamaCppBackend> {
  const files = modelFiles(config);
  // Config validation saw a .gguf file; it may have gone since (or been a folder): said at boot,
  // not as a backend that stays unready for ever.
  if (files.length === 0)
    throw new Error(`llama-cpp backend '${name}': the models folder ${config.models} holds no .gguf file.`);
  const runtime = await loadNodeLlamaCpp(logger);
  return new LlamaCppBackend(name, files, logger, (file, signal) =>
    LoadedModel.load(file, config, runtime, name, logger, signal),
  );
}
