import type { CacheStore } from '../store/cache-store.js';

/**
 * A leading stream's blocks, copied to the shared store as they pass so identical streams on
 * other instances can follow it live. Blocks are batched every FLUSH_MS (one pipeline per batch,
 * never awaited by the leader's own client); the end is written after every block. Each write
 * answers how many followers elsewhere are marked (see CacheStore.follow), which goes to
 * `followersSeen`; a write that fails reports `lost` (nobody can follow from here any more).
 */
const FLUSH_MS = 20;

export class LiveMirror {
  private pending: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(
    private readonly store: CacheStore,
    private readonly scope: string,
    private readonly hash: string,
    /** How long the mirror outlives its last write (a follower that falls behind still reads it). */
    private readonly ttlMs: number,
    private readonly followersSeen: (count: number) => void = () => {},
    private readonly lost: () => void = () => {},
  ) {}

  push(block: Buffer): void {
    this.pending.push(block);
    this.timer ??= setTimeout(() => this.flush(undefined), FLUSH_MS);
  }

  /** Writes what is pending and the end; resolves once every write is done. */
  end(outcome: 'complete' | 'broken'): Promise<void> {
    this.flush(outcome);
    return this.writing;
  }

  private flush(end: 'complete' | 'broken' | undefined): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const blocks = this.pending;
    this.pending = [];
    // Writes stay in order: each waits for the one before. After a failed write the followers
    // cannot get a whole stream from here any more; they time out and go upstream themselves.
    this.writing = this.writing.then(async () => {
      if (this.failed) return;
      let followers: number;
      try {
        followers = await this.store.appendLive(this.scope, this.hash, blocks, end, this.ttlMs);
      } catch {
        this.failed = true;
        this.lost();
        return;
      }
      this.followersSeen(followers);
    });
  }
}
