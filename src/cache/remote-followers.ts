import type { CacheStore } from '../store/cache-store.js';
import { FOLLOWER_MARK_MS } from './follower-mark.js';

/** How often a leader reading on only for remote followers asks whether any is left, through silences. */
const RECHECK_MS = FOLLOWER_MARK_MS / 5;

/**
 * A leading stream's view of the identical streams that follow its live mirror from other
 * instances (their marks in the store, see FollowerMark). Consulted only once the leader's own
 * client has left and no request in this process follows it any more: the leader then reads on
 * while a mark holds, exactly as it does for followers in this process. It asks the store at once,
 * then learns the count from each write of the mirror, and asks again every RECHECK_MS while the
 * upstream is silent; the first time none is left it stops, for good.
 */
export class RemoteFollowers {
  /** Set while the leader reads on for them: what stops it once none is left. */
  private stop: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** No more reading on: none was left, the mirror failed, or the stream is over. */
  private over = false;

  constructor(
    private readonly store: CacheStore,
    private readonly scope: string,
    private readonly hash: string,
  ) {}

  /** True while the leader reads on for followers elsewhere (also while it is still asking). */
  get holding(): boolean {
    return this.stop !== undefined;
  }

  /** Runs `stop` once no follower elsewhere is left (soon, when none is). */
  whenNone(stop: () => void): void {
    if (this.over) {
      stop();
      return;
    }
    if (this.stop) return;
    this.stop = stop;
    void this.check();
  }

  /** A write of the mirror found `count` followers marked. */
  seen(count: number): void {
    if (count === 0 && this.stop) this.none();
  }

  /** The mirror can no longer be written: nobody can follow the rest from the store. */
  lost(): void {
    if (this.stop) this.none();
    else this.close();
  }

  /** The stream is over: nothing more to read on for. */
  close(): void {
    this.over = true;
    this.stop = undefined;
    clearTimeout(this.timer);
  }

  private async check(): Promise<void> {
    let count = 0;
    try {
      count = await this.store.followers(this.scope, this.hash);
    } catch {
      // Without the store, nobody elsewhere can follow the rest either.
    }
    if (!this.stop) return;
    if (count === 0) {
      this.none();
      return;
    }
    this.timer = setTimeout(() => void this.check(), RECHECK_MS);
    this.timer.unref();
  }

  private none(): void {
    const stop = this.stop;
    this.close();
    stop?.();
  }
}
