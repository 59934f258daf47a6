import type { FastifyBaseLogger } from 'fastify';
import type { QuotaTokenWindow } from '../quota/quota-types.js';
import { KeptForRetryError } from '../store/kept-for-retry.js';
import type { TokenUsage } from './usage.js';

/** What a reservation needs from ② quota to end: charge real usage, or refund. */
export interface ReservationEnds {
  /** `upstreamModel`: priced as this model (the deployment that answered) instead of the estimate's. */
  settle(usage: TokenUsage | undefined, upstreamModel?: string): Promise<void>;
  release(): Promise<void>;
}

/**
 * Logs how a settle or release the store kept for a retry (Redis was unreachable) ends: made
 * once Redis answered again, or lost (the reservation then lapses after its TTL; a settle's
 * spend goes uncharged). `end`: which it was.
 */
export function logKeptEnd(
  log: FastifyBaseLogger | undefined,
  error: KeptForRetryError,
  end: 'settle' | 'release',
): void {
  error.retried.then(
    () => log?.info({ end }, 'made a quota reservation end kept during a Redis outage'),
    (lost: Error) => log?.error({ end, error: { message: lost.message } }, "lost a quota reservation's end"),
  );
}

/**
 * ② quota, one request's hold on its tokens, concurrency slot and budget, from the reservation
 * to its end. Every path that reserves ends through this handle: `settle` charges what was
 * used, `release` refunds. Only the first end counts (a settle after a release, or a second
 * settle, does nothing), and neither ever rejects: an answer already on its way to the client
 * must not fail because the store could not be told. An end the store could not make for an
 * outage, it keeps and makes once Redis is back (KeptForRetryError), and what it gives up on is
 * logged as an error (the reservation then lapses after its TTL).
 */
export class Reservation {
  /** For requests with nothing to reserve (no key, no limits): ending it does nothing. */
  static readonly none = new Reservation(undefined, undefined, undefined);

  private ended: Promise<void> | undefined;

  constructor(
    private readonly ends: ReservationEnds | undefined,
    private readonly log: FastifyBaseLogger | undefined,
    private readonly counted:
      | {
          /** Counted before the request went: what an answer without usage is charged for its prompt. */
          promptTokens: number;
          /** The tightest tokens-per-minute window after this reservation, when one applies. */
          tokensPerMinute?: QuotaTokenWindow | undefined;
        }
      | undefined,
    /**
     * Whether ending waits for the store to have it. Not with quota.settleHoldMs: the store then
     * sends the end with the team's next admit, up to that long later, and the answers that end
     * their reservation before they go out (errors, audio) would wait as long. The same
     * instance's next admit still sends it first; other instances see it late, which is what the
     * setting trades. When it waits, a client that retries an error elsewhere finds its slot free.
     */
    private readonly waitsForStore = true,
  ) {}

  get promptTokens(): number | undefined {
    return this.counted?.promptTokens;
  }

  get tokensPerMinute(): QuotaTokenWindow | undefined {
    return this.counted?.tokensPerMinute;
  }

  /** The answer ended: charge its real usage (the estimate when there is none). */
  settle(usage: TokenUsage | undefined, upstreamModel?: string): Promise<void> {
    return this.end('settle', (ends) => ends.settle(usage, upstreamModel));
  }

  /** Nothing was served: nothing is charged. */
  release(): Promise<void> {
    return this.end('release', (ends) => ends.release());
  }

  private end(how: 'settle' | 'release', run: (ends: ReservationEnds) => Promise<void>): Promise<void> {
    if (!this.ended) {
      this.ended = this.ends
        ? run(this.ends).catch((error: Error) => {
            if (!(error instanceof KeptForRetryError)) {
              this.log?.warn({ error: { message: error.message } }, `could not ${how} a quota reservation`);
              return;
            }
            this.log?.warn(
              { error: { message: error.message } },
              `could not ${how} a quota reservation yet: kept, and sent once Redis answers again`,
            );
            logKeptEnd(this.log, error, how);
          })
        : Promise.resolve();
    }
    return this.waitsForStore ? this.ended : Promise.resolve();
  }
}
