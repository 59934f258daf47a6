/**
 * How long requests waited for a slot of an in-process model, as a Prometheus histogram per
 * backend and model, plus the requests a full queue refused. Live histograms sit in a
 * process-wide set (added when a model loads, removed when its backend closes) that
 * `plugins/metrics.ts` renders at scrape time, so the metrics need no reference to the backends.
 */
const BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const live = new Set<QueueWaitHistogram>();

function escaped(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

export class QueueWaitHistogram {
  private readonly counts = new Array<number>(BUCKETS_SECONDS.length).fill(0);
  private count = 0;
  private sum = 0;
  private rejected = 0;

  constructor(
    readonly backend: string,
    readonly model: string,
  ) {}

  observe(waitedMs: number): void {
    const seconds = waitedMs / 1_000;
    this.count++;
    this.sum += seconds;
    BUCKETS_SECONDS.forEach((bound, i) => {
      if (seconds <= bound) this.counts[i] = (this.counts[i] ?? 0) + 1;
    });
  }

  reject(): void {
    this.rejected++;
  }

  register(): void {
    live.add(this);
  }

  unregister(): void {
    live.delete(this);
  }

  private labels(extra = ''): string {
    return `backend="${escaped(this.backend)}",model="${escaped(this.model)}"${extra}`;
  }

  lines(): { wait: string[]; rejected: string } {
    const name = 'tollgate_backend_queue_wait_seconds';
    const wait = BUCKETS_SECONDS.map(
      (bound, i) => `${name}_bucket{${this.labels(`,le="${bound}"`)}} ${this.counts[i] ?? 0}`,
    );
    wait.push(`${name}_bucket{${this.labels(',le="+Inf"')}} ${this.count}`);
    wait.push(`${name}_sum{${this.labels()}} ${this.sum}`);
    wait.push(`${name}_count{${this.labels()}} ${this.count}`);
    return { wait, rejected: `tollgate_backend_queue_rejected_total{${this.labels()}} ${this.rejected}` };
  }
}

/** The Prometheus text of every live histogram; empty when no in-process model is configured. */
export function queueWaitMetricsText(): string {
  if (live.size === 0) return '';
  const wait = [
    '# HELP tollgate_backend_queue_wait_seconds Time requests waited for a slot of an in-process model.',
    '# TYPE tollgate_backend_queue_wait_seconds histogram',
  ];
  const rejected = [
    '# HELP tollgate_backend_queue_rejected_total Requests an in-process model refused with 429 because its queue was full.',
    '# TYPE tollgate_backend_queue_rejected_total counter',
  ];
  for (const histogram of live) {
    const lines = histogram.lines();
    wait.push(...lines.wait);
    rejected.push(lines.rejected);
  }
  return `${wait.join('\n')}\n\n${rejected.join('\n')}`;
}
