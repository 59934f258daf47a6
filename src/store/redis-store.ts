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

  async ping(): Promise<void> {
    const answer = await this.client.ping();
    if (answer !== 'PONG') throw new Error(`unexpected PING answer: ${answer}`);
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
