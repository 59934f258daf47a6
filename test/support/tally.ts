/** A count a test can wait on: `reached(n)` resolves once it is at least n. */
export class Tally {
  private value = 0;
  private waiting: Array<{ at: number; resolve: () => void }> = [];

  get count(): number {
    return this.value;
  }

  add(): void {
    this.value++;
    const due = this.waiting.filter((waiter) => waiter.at <= this.value);
    this.waiting = this.waiting.filter((waiter) => waiter.at > this.value);
    for (const waiter of due) waiter.resolve();
  }

  reached(at: number): Promise<void> {
    if (this.value >= at) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push({ at, resolve }));
  }
}
