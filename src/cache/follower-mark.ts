import { randomBytes } from 'node:crypto';
import type { CacheStore } from '../store/cache-store.js';

/**
 * How long a follower's mark holds without being renewed. A follower renews it every
 * FOLLOWER_MARK_MS / 5 while it follows, so only one that died (or lost Redis) lets it lapse;
 * a leader reading on for it then stops within about this long (see RemoteFollowers).
 */
export const FOLLOWER_MARK_MS = 5_000;
const RENEW_MS = FOLLOWER_MARK_MS / 5;

/**
 * A stream following another instance's live stream, marked in the store for as long as it
 * reads: the leader, whose own client may leave, keeps its upstream call going while any such
 * mark holds. Renewed on a timer, not per read, so a follower slowed down by its own client
 * (backpressure) still counts.
 */
export class FollowerMark {
  private readonly follower = randomBytes(8).toString('hex');
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: CacheStore,
    private readonly scope: string,
    private readonly hash: string,
  ) {}

  /**
   * Marks this follower; resolves once the mark is written, so a leader asking from then on sees
   * it. A store that fails leaves it unmarked: it still follows, only without holding the leader.
   */
  async start(): Promise<void> {
    await this.mark();
    // Stopped while marking: taken back again, in case the mark landed after stop()'s removal.
    if (this.stopped) {
      this.store.unfollow(this.scope, this.hash, this.follower).catch(() => {});
      return;
    }
    this.timer = setInterval(() => void this.mark(), RENEW_MS);
    this.timer.unref();
  }

  private async mark(): Promise<void> {
    try {
      await this.store.follow(this.scope, this.hash, this.follower, FOLLOWER_MARK_MS);
    } catch {
      // Renewed on the next tick, or lapses: the leader then no longer waits for this follower.
    }
  }

  /** Done following (the end, an error, or its client left): the mark goes now. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.store.unfollow(this.scope, this.hash, this.follower).catch(() => {});
  }
}
