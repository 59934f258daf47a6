import { mkdirSync, mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createLlamaCppBackend } from '../src/backends/llama-cpp/create-llama-cpp-backend.js';
import type { LlamaCppBackend } from '../src/backends/llama-cpp/llama-cpp-backend.js';
import { modelFiles } from '../src/backends/llama-cpp/model-files.js';
import type { LlamaCppConfig } from '../src/config/llama-cpp-schema.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const cores = availableParallelism();
const started: LlamaCppBackend[] = [];

afterEach(async () => {
  // Closing gives back each model's threads: the next test starts from none.
  await Promise.all(started.splice(0).map((backend) => backend.close()));
});

/** A backend's config as the schema would give it, threads and folder as the test says. */
function configOf(source: { model: string } | { models: string }, threads: number): LlamaCppConfig {
  return { type: 'llama-cpp', ...source, contextSize: 256, gpuLayers: 0, threads, slots: 1, queue: 1 };
}

function recordingLogger(): { logger: FastifyBaseLogger; warnings: () => Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
          lines.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    }),
  ) as unknown as FastifyBaseLogger;
  return { logger, warnings: () => lines.filter((line) => line.level === 40) };
}

async function start(
  name: string,
  config: LlamaCppConfig,
  logger: FastifyBaseLogger,
): Promise<LlamaCppBackend> {
  const backend = await createLlamaCppBackend(name, config, logger);
  started.push(backend);
  await backend.loaded;
  return backend;
}

describe('a models folder', () => {
  it('serves only files: a folder named like a model is no model', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-models-'));
    writeTinyGguf('real', folder);
    mkdirSync(join(folder, 'dir.gguf'));
    expect(modelFiles(configOf({ models: folder }, 1)).map((file) => file.id)).toEqual(['real']);
    const { logger } = recordingLogger();
    const backend = await start('folder', configOf({ models: folder }, 1), logger);
    await expect(backend.checkHealth()).resolves.toBeUndefined();
    expect(await backend.listModels()).toEqual(['real']);
  });

  it('whose only .gguf is a folder fails the boot, rather than a backend never ready', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-models-'));
    mkdirSync(join(folder, 'x.gguf'));
    const { logger } = recordingLogger();
    await expect(createLlamaCppBackend('only-dir', configOf({ models: folder }, 1), logger)).rejects.toThrow(
      `llama-cpp backend 'only-dir': the models folder ${folder} holds no .gguf file.`,
    );
  });
});

describe('threads beyond the cores', () => {
  it("are a warning at load, naming the backend, when one model's threads exceed them", async () => {
    const { logger, warnings } = recordingLogger();
    await start('greedy', configOf({ model: writeTinyGguf() }, cores + 1), logger);
    expect(warnings()).toEqual([
      expect.objectContaining({
        backend: 'greedy',
        model: 'tiny',
        threads: cores + 1,
        cores,
        msg: `llama-cpp backend 'greedy' runs ${cores + 1} threads per model on ${cores} cores: generation slows down sharply with more threads than cores. Set its threads to at most ${cores}.`,
      }),
    ]);
  });

  it('are a warning when the models of the process together exceed them, and not before', async () => {
    const { logger, warnings } = recordingLogger();
    const folder = mkdtempSync(join(tmpdir(), 'tollgate-models-'));
    writeTinyGguf('alpha', folder, { seed: 1 });
    // One model with every core: as it should be.
    await start('one', configOf({ model: writeTinyGguf('solo') }, cores), logger);
    expect(warnings()).toEqual([]);
    // A models folder, its model with every core too (the default): two models that may run at once.
    await start('folder', configOf({ models: folder }, cores), logger);
    expect(warnings()).toEqual([
      expect.objectContaining({
        threads_total: 2 * cores,
        cores,
        models: { 'one/solo': cores, 'folder/alpha': cores },
        msg: `llama-cpp models of this process run ${2 * cores} threads in all on ${cores} cores: models generating at the same time slow each other down sharply. Lower their threads so that the sum stays within the cores.`,
      }),
    ]);
  });
});
