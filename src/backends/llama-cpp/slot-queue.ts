import { ClientAbortedError } from '../transport-failure.js';

/** Thrown when every slot is busy and the queue is full: the caller answers 429. */
export class QueueFullError extends Error {
  constructor() {
    super('queue full');
    this.name = 'QueueFullError';
  }
}

interface Waiter<T> {
  resolve: (slot: T) => void;
  reject: (error: Error) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

/** A slot held by one request; `release` gives it to the next waiter (safe to call twice). */
export interface SlotLease<T> {
  slot: T;
  /** Milliseconds spent waiting in the queue. */
  waitedMs: number;
  release: () => void;
}

/**
 * A fixed set of slots (context sequences) handed out first come, first served, with at most
 * `capacity` requests waiting. A waiter whose client leaves is dropped from the queue at once.
 */
export class SlotQueue<T> {
  private readonly free: T[];
  private readonly waiters: Waiter<T>[] = [];
  private readonly listeners = new Set<() => void>();
  private held = 0;

  constructor(
    slots: readonly T[],
    private readonly capacity: number,
  ) {
    this.free = [...slots];
  }

  /** Requests waiting for a slot now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Slots in use now. */
  get busy(): number {
    return this.held;
  }

  /** Called on every change of `waiting` or `busy` (tests and metrics watch it, no polling). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  async acquire(signal: AbortSignal): Promise<SlotLease<T>> {
    if (signal.aborted) throw new ClientAbortedError();
    const started = performance.now();
    const slot = this.free.pop();
    if (slot !== undefined) {
      this.held++;
      this.changed();
      return this.lease(slot, 0);
    }
    if (this.waiters.length >= this.capacity) throw new QueueFullError();
    const taken = await new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.waiters.indexOf(waiter);
          if (index >= 0) this.waiters.splice(index, 1);
          reject(new ClientAbortedError());
          this.changed();
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
      this.changed();
    });
    return this.lease(taken, performance.now() - started);
  }

  private lease(slot: T, waitedMs: number): SlotLease<T> {
    let released = false;
    return {
      slot,
      waitedMs,
      release: () => {
        if (released) return;
        released = true;
        this.handOver(slot);
      },
    };
  }

  private handOver(slot: T): void {
    const next = this.waiters.shift();
    if (next) {
      next.signal.removeEventListener('abort', next.onAbort);
      next.resolve(slot);
    } else {
      this.held--;
      this.free.push(slot);
    }
    this.changed();
  }

  /** Refuses every waiter (the backend is closing). */
  rejectAll(error: Error): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
    this.changed();
  }
}
