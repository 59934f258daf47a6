/**
 * Time to first byte per deployment as an exponentially weighted moving average, for the
 * `lowest-latency` strategy. Per instance, not shared: latency is what this instance sees from
 * where it runs, and learning it costs no store traffic. A new instance knows nothing yet and
 * tries unmeasured deployments first, so each is measured.
 */
export class LatencyTracker {
  private readonly averages = new Map<string, number>();

  /** `alpha`: the weight of each new sample (0.3: the last few requests dominate). */
  constructor(private readonly alpha = 0.3) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${alpha}`);
  }

  observe(deployment: string, firstByteMs: number): void {
    if (!Number.isFinite(firstByteMs) || firstByteMs < 0) return;
    const previous = this.averages.get(deployment);
    this.averages.set(
      deployment,
      previous === undefined ? firstByteMs : previous + this.alpha * (firstByteMs - previous),
    );
  }

  /** The average, or undefined before the first sample. */
  get(deployment: string): number | undefined {
    return this.averages.get(deployment);
  }
}
