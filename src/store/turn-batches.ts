/**
 * Work asked for during one turn of the event loop, grouped by a key (a team) and handed over at
 * the turn's end (setImmediate) in chunks of at most `maxBatch`, in the order it was asked for.
 * The Redis quota store sends each chunk as one script call: callers in one turn share a call
 * instead of paying one each.
 */
export class TurnBatches<T> {
  private readonly pending = new Map<string, T[]>();
  private scheduled = false;

  constructor(
    private readonly maxBatch: number,
    private readonly send: (key: string, items: T[]) => void,
  ) {}

  add(key: string, item: T): void {
    const batch = this.pending.get(key);
    if (batch) batch.push(item);
    else this.pending.set(key, [item]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Whether something is waiting for `key`'s next hand-over. */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  private flush(): void {
    const batches = [...this.pending];
    this.pending.clear();
    this.scheduled = false;
    for (const [key, items] of batches) {
      for (let from = 0; from < items.length; from += this.maxBatch) {
        this.send(key, items.slice(from, from + this.maxBatch));
      }
    }
  }
}
