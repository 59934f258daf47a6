import type { FastifyBaseLogger } from 'fastify';
import type { Llama } from 'node-llama-cpp';

export type NodeLlamaCpp = typeof import('node-llama-cpp');

/** node-llama-cpp is missing or cannot load its native binding: a boot error in our words. */
export class NodeLlamaCppUnavailableError extends Error {
  constructor(reason: string, cause: unknown) {
    super(
      `A llama-cpp backend is configured but node-llama-cpp ${reason}. It is an optional dependency: ` +
        '`npm ci` installs it; otherwise install it with `npm install node-llama-cpp@3.21.1`.',
      { cause },
    );
    this.name = 'NodeLlamaCppUnavailableError';
  }
}

let loaded: Promise<{ library: NodeLlamaCpp; llama: Llama }> | undefined;

/**
 * Imports node-llama-cpp (only ever when a llama-cpp backend is configured) and its llama.cpp
 * binding, once per process. `build: 'never'` and `gpu: false`: use the prebuilt CPU binding
 * shipped with the package, never download or compile one at run time.
 */
export function loadNodeLlamaCpp(
  logger: FastifyBaseLogger,
): Promise<{ library: NodeLlamaCpp; llama: Llama }> {
  loaded ??= (async () => {
    let library: NodeLlamaCpp;
    try {
      library = await import('node-llama-cpp');
    } catch (error) {
      throw new NodeLlamaCppUnavailableError('is not installed', error);
    }
    try {
      const llama = await library.getLlama({
        gpu: false,
        build: 'never',
        progressLogs: false,
        logLevel: library.LlamaLogLevel.warn,
        logger: (level, message) => {
          const text = message.trim();
          if (text === '') return;
          if (level === library.LlamaLogLevel.error || level === library.LlamaLogLevel.fatal)
            logger.error({ llama_cpp: text }, 'llama.cpp error');
          else logger.warn({ llama_cpp: text }, 'llama.cpp warning');
        },
      });
      return { library, llama };
    } catch (error) {
      throw new NodeLlamaCppUnavailableError(
        `could not load its llama.cpp binding (${(error as Error).message})`,
        error,
      );
    }
  })();
  // A failed load is not cached: a later boot in the same process (tests) tries again.
  loaded.catch(() => {
    loaded = undefined;
  });
  return loaded;
}
