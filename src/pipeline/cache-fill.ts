import type { FastifyBaseLogger } from 'fastify';
import type { CacheableEndpoint } from '../cache/cache-policy.js';
import type { Flight, Flights } from '../cache/flight.js';
import { LiveMirror } from '../cache/live-mirror.js';
import { MessagesStreamAssembler } from '../cache/messages-stream-assembler.js';
import { RemoteFollowers } from '../cache/remote-followers.js';
import { StreamAssembler } from '../cache/stream-assembler.js';
import type { CacheConfig } from '../config/schema.js';
import type { CachedAnswer, CacheStore } from '../store/cache-store.js';
import type { CachePlan } from './cache.js';
import { isWholeObject } from './json-bytes.js';

/** Builds a streamed answer's whole JSON, in its endpoint's shape (OpenAI's or Anthropic's). */
export type AnswerAssembler = StreamAssembler | MessagesStreamAssembler;

export function assemblerFor(endpoint: CacheableEndpoint): AnswerAssembler {
  if (endpoint === 'messages') return new MessagesStreamAssembler();
  return new StreamAssembler(endpoint === 'completions' ? 'completions' : 'chat.completions');
}

/** What a fill uses of ③ cache: the stage hands these over when it makes this request the leader. */
export interface CacheFillDeps {
  store: CacheStore;
  config: CacheConfig;
  flights: Flights;
  log: FastifyBaseLogger;
  now: () => number;
  /** Keeps a fill's store-and-release in view until it is done (shutdown waits for it). */
  track: (work: Promise<void>) => Promise<void>;
}

/**
 * ③ cache, the request that fills an entry: identical requests in this process (and, through
 * the store, on other instances) wait for or follow its answer. The forward path tells it what
 * happens (the stream started, each block, the end); it keeps the answer, shares it, stores it
 * and always lets go of its claim.
 */
export class CacheFill {
  private assembler: AnswerAssembler | undefined;
  /** Copies the stream to the shared store for joiners on other instances. */
  private mirror: LiveMirror | undefined;
  /** The streams that follow the mirror from other instances (only with a mirror). */
  private remote: RemoteFollowers | undefined;
  private finished: Promise<void> | undefined;

  constructor(
    private readonly plan: CachePlan,
    private readonly flight: Flight,
    /** True when this instance holds the store's claim (so it must release it). */
    private readonly claimed: boolean,
    private readonly deps: CacheFillDeps,
  ) {}

  /**
   * The signal that ends the upstream call: the client leaving, unless requests are joined to it,
   * in this process or following its live mirror from other instances; then the call goes on
   * until the last of them is done.
   */
  upstreamSignal(client: AbortSignal): AbortSignal {
    const upstream = new AbortController();
    const stop = () => upstream.abort(client.reason);
    // The mirror (and so `remote`) exists only once the stream started: looked up when needed.
    const gone = () => this.flight.whenNoJoiners(() => (this.remote ? this.remote.whenNone(stop) : stop()));
    if (client.aborted) gone();
    else client.addEventListener('abort', gone, { once: true });
    return upstream.signal;
  }

  /** True while others follow the stream, here or elsewhere (read on for them if the client left). */
  hasJoiners(): boolean {
    return this.flight.joiners > 0 || this.remote?.holding === true;
  }

  /** The stream started (its first event is here): joiners in this process may now follow it. */
  streamStarted(): void {
    this.assembler = assemblerFor(this.plan.endpoint);
    this.flight.startStream();
    if (this.claimed && this.deps.store.shared) {
      const remote = new RemoteFollowers(this.deps.store, this.plan.scope, this.plan.hash);
      this.remote = remote;
      this.mirror = new LiveMirror(
        this.deps.store,
        this.plan.scope,
        this.plan.hash,
        this.deps.config.coalesce.waitMs,
        (count) => remote.seen(count),
        () => remote.lost(),
      );
    }
  }

  /** One block of the stream, raw (before anything is stripped for the leader's own client). */
  streamBlock(block: Buffer): void {
    this.assembler?.addBlock(block);
    this.flight.push(block);
    this.mirror?.push(block);
  }

  /**
   * The leader is done. `body` is its whole JSON answer (for a stream: undefined, the assembler
   * has it), or null when there is nothing to keep (an error, a cut stream, a client that left).
   * Stores it when complete, shares it with whoever waits, and always releases the claim. Only
   * the first call counts; it never rejects.
   */
  finish(body: Buffer | null | undefined): Promise<void> {
    this.finished ??= this.deps.track(this.complete(body)).catch(() => {});
    return this.finished;
  }

  private async complete(body: Buffer | null | undefined): Promise<void> {
    const { plan, flight } = this;
    let answer: CachedAnswer | null = null;
    this.remote?.close();
    // The flight ends last, after the claim is released: until then a new identical request here
    // joins this one instead of claiming anew while the old claim is still being let go.
    try {
      // JSON cut short is no answer to keep or to hand to requests waiting for this one (they go
      // upstream themselves). Told by its ends, not parsed: a parse of up to maxEntryBytes would
      // hold the event loop; an error object never gets here (the attempt failed on it).
      if (body && !isWholeObject(body)) body = null;
      if (body === undefined && this.assembler?.complete) {
        const assembled = this.assembler.answer();
        if (assembled) body = Buffer.from(JSON.stringify(assembled));
      }
      if (body) answer = { body, createdAt: this.deps.now(), model: plan.model };
      // Joiners elsewhere learn the end before the claim goes.
      await this.mirror?.end(answer ? 'complete' : 'broken');
      await this.storeAndRelease(answer);
    } finally {
      this.deps.flights.end(plan.id, flight, answer);
    }
  }

  private async storeAndRelease(answer: CachedAnswer | null): Promise<void> {
    const { plan, deps } = this;
    let stored = false;
    try {
      if (answer && plan.store && answer.body.length <= deps.config.maxEntryBytes) {
        await deps.store.set(plan.scope, plan.hash, answer, plan.ttlMs, answer.createdAt);
        stored = true;
      }
    } catch (error) {
      deps.log.warn(
        { error: { message: (error as Error).message } },
        'could not store an answer in the cache',
      );
    } finally {
      if (this.claimed)
        await deps.store.release(plan.scope, plan.hash, stored).catch((error: Error) => {
          deps.log.warn({ error: { message: error.message } }, 'could not release a cache claim');
        });
    }
  }
}
