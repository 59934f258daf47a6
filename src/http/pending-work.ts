/**
 * Requests not yet done with, including the work that outlives their response: a stream cut by
 * its client or by shutdown still settles its quota reservation and records its usage after
 * the connection is gone. Shutdown waits for all of it before the usage recorder flushes and
 * the store closes, so nothing charged goes unrecorded and no reservation is left to its ttl.
 */
export class PendingWork {
  private readonly pending = new Set<Promise<void>>();

  track(work: Promise<unknown>): void {
    const done: Promise<void> = work.then(
      () => {},
      () => {},
    );
    this.pending.add(done);
    void done.then(() => this.pending.delete(done));
  }

  /** Resolves once nothing tracked is left, including work tracked while waiting. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
