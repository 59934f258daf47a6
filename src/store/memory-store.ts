import type { Store } from './store.js';

/** The embedded default: state lives in this process. */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  private closed = false;

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store is closed');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
