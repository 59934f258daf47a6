import { availableParallelism } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';

export interface ThreadClaim {
  release(): void;
}

/**
 * The threads llama.cpp evaluates with, over every model the llama-cpp backends of this process
 * have loaded. Each model's context runs its own `threads` (its slots share them); two models
 * generating at once run both counts. More threads at once than cores makes generation
 * dramatically slower, since llama.cpp's threads spin while they wait for each other: the log
 * says so at load, as the config cannot (a models folder's size is only known then).
 * Embedding contexts are not counted: an embedding request holds one of its model's slots.
 */
export class ThreadBudget {
  private readonly claims = new Set<{ owner: string; threads: number }>();

  constructor(readonly cores: number) {}

  claim(backend: string, model: string, threads: number, logger: FastifyBaseLogger): ThreadClaim {
    const claim = { owner: `${backend}/${model}`, threads };
    this.claims.add(claim);
    if (threads > this.cores)
      logger.warn(
        { backend, model, threads, cores: this.cores },
        `llama-cpp backend '${backend}' runs ${threads} threads per model on ${this.cores} cores: generation slows down sharply with more threads than cores. Set its threads to at most ${this.cores}.`,
      );
    const total = [...this.claims].reduce((sum, each) => sum + each.threads, 0);
    if (this.claims.size > 1 && total > this.cores)
      logger.warn(
        {
          threads_total: total,
          cores: this.cores,
          models: Object.fromEntries([...this.claims].map((each) => [each.owner, each.threads])),
        },
        `llama-cpp models of this process run ${total} threads in all on ${this.cores} cores: models generating at the same time slow each other down sharply. Lower their threads so that the sum stays within the cores.`,
      );
    return { release: () => this.claims.delete(claim) };
  }
}

/** One per process: every llama-cpp backend's models share the machine's cores. */
export const threadBudget = new ThreadBudget(availableParallelism());
