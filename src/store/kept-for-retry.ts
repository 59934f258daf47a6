import type { RedisConnection } from './redis-connection.js';
import { StoreUnavailableError } from './store-unavailable.js';

/** How often kept writes are tried again besides when the connection becomes usable. */
const RETRY_EVERY_MS = 1_000;

/** A write kept for a retry: until when it is worth making, and how its caller learns it was lost. */
export interface KeptWrite {
  /** performance.now() past which it is not sent again. */
  until: number;
  lost: (error: Error) => void;
}

export interface KeptForRetryOptions<T> {
  /** The most kept at once, counted by `weightOf` (1 each by default); the oldest go first. */
  limit: number;
  weightOf?: ((write: T) => number) | undefined;
  /** Why one dropped for the limit is lost. */
  overLimit: string;
  /** Why one past its `until` is lost. */
  expired: string;
  /** Makes a kept write again (the connection is usable); one that fails again is kept again. */
  resend: (write: T) => void;
}

/**
 * Writes a Redis sub-store could not make for an outage (settles and releases, usage batches),
 * kept in memory, bounded and oldest first, and handed back to `resend` once the connection is
 * usable again: on its own signal (onUsable), and every RETRY_EVERY_MS besides, since some outages
 * end without one (an answer of BUSY or LOADING on a connection that stayed up). Every write kept
 * here must count once however often it is made.
 */
export class KeptForRetry<T extends KeptWrite> {
  private kept: T[] = [];
  private weight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** giveUp has run: nothing is retried any more. */
  private closed = false;
  private readonly weightOf: (write: T) => number;

  constructor(
    private readonly connection: RedisConnection,
    private readonly options: KeptForRetryOptions<T>,
  ) {
    this.weightOf = options.weightOf ?? (() => 1);
    connection.onUsable(() => this.retry());
  }

  keep(write: T): void {
    // A retry that failed again after the last attempt (closing) would wait for nothing.
    if (this.closed) {
      write.lost(new Error('the gateway stopped before Redis answered again'));
      return;
    }
    this.kept.push(write);
    this.weight += this.weightOf(write);
    while (this.weight > this.options.limit) {
      const dropped = this.kept.shift() as T;
      this.weight -= this.weightOf(dropped);
      dropped.lost(new Error(this.options.overLimit));
    }
    this.retryLater();
  }

  /** Hands every kept write to `resend` once the connection is usable; those past `until` are lost. */
  retry(): void {
    if (this.kept.length === 0) return;
    if (!this.connection.usable) {
      this.retryLater();
      return;
    }
    const kept = this.kept;
    this.kept = [];
    this.weight = 0;
    const now = performance.now();
    for (const write of kept) {
      if (write.until <= now) write.lost(new Error(this.options.expired));
      else this.options.resend(write);
    }
  }

  /** Closing, once the last retry has been answered: whatever is still kept is lost. */
  giveUp(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const lost = this.kept;
    this.kept = [];
    this.weight = 0;
    for (const write of lost) write.lost(new Error('the gateway stopped before Redis answered again'));
  }

  private retryLater(): void {
    if (this.timer !== undefined || this.connection.shuttingDown) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.retry();
    }, RETRY_EVERY_MS);
    this.timer.unref();
  }
}

/** Kept writes this process has given up on so far (see lostKeptWrites). */
let lostWrites = 0;

/**
 * How many writes kept for a retry this process has given up on so far, whatever the reason:
 * what `serve` compares across its stop to exit with ExitCode.lostWrites. Per process, not per
 * store, as that exit code is (a process runs one gateway; tests that run several never read it).
 */
export function lostKeptWrites(): number {
  return lostWrites;
}

/**
 * A write the store could not make now, for an outage, and keeps to make once Redis answers
 * again (a settle, a release, a usage batch): the caller is not kept waiting for that, and
 * `retried` says how it ends, resolving once it is made and rejecting when it is given up (too
 * many kept, kept too long, or the gateway stopping first), with the reason. Nobody need listen.
 * To a client it is any other StoreUnavailableError (an admit whose reservation is released
 * later is one).
 */
export class KeptForRetryError<T = unknown> extends StoreUnavailableError {
  constructor(
    cause: unknown,
    readonly retried: Promise<T>,
  ) {
    super(cause);
    // Every path that gives a kept write up rejects this promise: the one place all losses pass.
    retried.then(undefined, () => {
      lostWrites++;
    });
  }
}
