import type { FastifyBaseLogger } from 'fastify';
import type { StoreOutage } from '../store/store-outage.js';

/**
 * Says each store outage once at error level, when the first request is refused for it, and
 * once more when it is over, with how long it lasted and how many requests were refused. During
 * an outage every request that needs the store gets a 503: an error line each (the same words a
 * hundred times) would bury whatever else is at that level, so each refusal's own line is a
 * warning (see the error handler).
 */
export class StoreOutageLog {
  /** Requests refused so far in each outage that has been said and is not over yet. */
  private readonly refused = new Map<StoreOutage, number>();

  constructor(private readonly log: FastifyBaseLogger) {}

  /** A request was answered 503 because of `outage`. */
  refusal(outage: StoreOutage): void {
    const count = this.refused.get(outage);
    if (count !== undefined) {
      this.refused.set(outage, count + 1);
      return;
    }
    this.refused.set(outage, 1);
    this.log.error(
      { error: { message: outage.reason } },
      'store unavailable: requests that need it are answered 503 until it is back',
    );
    void outage.over.then(() => {
      const refused = this.refused.get(outage) ?? 0;
      this.refused.delete(outage);
      this.log.warn({ unavailable_ms: Date.now() - outage.since, refused }, 'store available again');
    });
  }
}
