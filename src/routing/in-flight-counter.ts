/**
 * Requests under way per deployment, in this process, for the `least-in-flight` strategy. Per
 * instance on purpose: each instance balances what it sends itself, which needs no store round
 * trip per request; a fleet behind a fair load balancer evens out overall.
 */
export class InFlightCounter {
  private readonly counts = new Map<string, number>();

  /** Counts one request to `deployment` until the returned function is called (repeats do nothing). */
  start(deployment: string): () => void {
    this.counts.set(deployment, this.get(deployment) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = this.get(deployment) - 1;
      if (left > 0) this.counts.set(deployment, left);
      else this.counts.delete(deployment);
    };
  }

  get(deployment: string): number {
    return this.counts.get(deployment) ?? 0;
  }
}
