import type { CachedAnswer } from '../store/cache-store.js';

/**
 * One cacheable request on its way upstream in this process, which identical requests join
 * instead of going upstream themselves. A streamed answer's SSE blocks are kept as they pass,
 * so a stream that joins late gets them from the start and then live.
 */
export class Flight {
  /** Raw SSE blocks (complete events) in the order the upstream sent them (joinable flights only). */
  readonly blocks: Buffer[] = [];
  /** True once the leader's answer turned out to be a stream. */
  streaming = false;
  /** Set when the leader is done: the answer it stored, or null when there is none to share. */
  outcome: CachedAnswer | null | undefined;
  private wake: Array<() => void> = [];

  private joinerCount = 0;
  private onIdle: Array<() => void> = [];

  /** `joinable: false` for a fill nobody can join (a refresh, coalescing off): keeps no blocks. */
  constructor(private readonly joinable = true) {}

  /** Requests in this process waiting on or following this one. */
  get joiners(): number {
    return this.joinerCount;
  }

  /** Counts a joiner in; the function returned counts it out (once). */
  join(): () => void {
    this.joinerCount++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.joinerCount > 0) return;
      const idle = this.onIdle;
      this.onIdle = [];
      for (const callback of idle) callback();
    };
  }

  /** Runs `callback` as soon as no joiner is left (at once if none is). */
  whenNoJoiners(callback: () => void): void {
    if (this.joinerCount === 0) callback();
    else this.onIdle.push(callback);
  }

  /** Resolves on the next block, on streaming being known, or on the outcome. */
  changed(): Promise<void> {
    if (this.outcome !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.wake.push(resolve));
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }

  startStream(): void {
    this.streaming = true;
    this.notify();
  }

  push(block: Buffer): void {
    if (!this.joinable) return;
    this.blocks.push(block);
    this.notify();
  }

  finish(answer: CachedAnswer | null): void {
    if (this.outcome !== undefined) return;
    this.outcome = answer;
    this.notify();
  }

  /** Waits until the leader's answer is known to be a stream, or is over. */
  async settled(): Promise<void> {
    while (!this.streaming && this.outcome === undefined) await this.changed();
  }

  /**
   * Every block from the first, then each new one as it comes; ends when the leader's stream
   * ended complete, throws when it broke off (the joiner's relay turns that into an error event).
   */
  async *tail(): AsyncGenerator<Buffer> {
    let next = 0;
    for (;;) {
      while (next < this.blocks.length) yield this.blocks[next++] as Buffer;
      if (this.outcome !== undefined) break;
      await this.changed();
    }
    if (this.outcome === null) throw new Error('The answer this request was waiting for broke off.');
  }
}

/** The flights of this process, by scope and hash. */
export class Flights {
  private readonly flights = new Map<string, Flight>();

  get(id: string): Flight | undefined {
    return this.flights.get(id);
  }

  start(id: string): Flight {
    const flight = new Flight();
    this.flights.set(id, flight);
    return flight;
  }

  end(id: string, flight: Flight, answer: CachedAnswer | null): void {
    flight.finish(answer);
    if (this.flights.get(id) === flight) this.flights.delete(id);
  }
}
