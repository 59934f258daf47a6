import { Redis } from 'ioredis';
import type { Store } from './store.js';

export interface RedisStoreOptions {
  url: string;
}

/** Shared state in Redis, so several gateway instances behave as one. */
export class RedisStore implements Store {
  readonly kind = 'redis';
  readonly client: Redis;

  constructor(options: RedisStoreOptions) {
    this.client = new Redis(options.url, {
      // Fail fast while Redis is down instead of queueing requests behind a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: false,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
    // ioredis reconnects on its own; without a listener an outage would crash the process.
    this.client.on('error', () => {});
  }

  /**
   * While ioredis is (re)connecting, wait briefly for it rather than failing at once; a
   * Redis that stays down still fails fast, which is what callers need.
   */
  private async connected(timeoutMs = 1_000): Promise<void> {
    if (this.client.status === 'ready') return;
    if (this.client.status === 'end' || this.client.status === 'close')
      throw new Error('redis connection is closed');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        reject(new Error(`redis is not reachable (status: ${this.client.status})`));
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
  }

  async ping(): Promise<void> {
    await this.connected();
    const answer = await this.client.ping();
    if (answer !== 'PONG') throw new Error(`unexpected PING answer: ${answer}`);
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
