import type { Config } from '../config/schema.js';
import { MemoryStore } from './memory-store.js';
import type { Store } from './store.js';

export async function createStore(config: Config): Promise<Store> {
  if (config.redis) {
    // Loaded only when configured: ioredis and the Redis stores hold ~20 MB a gateway on the
    // embedded store never uses.
    const { RedisStore } = await import('./redis-store.js');
    return new RedisStore({ target: config.redis, settleHoldMs: config.quota.settleHoldMs });
  }
  return MemoryStore.open({ dataDir: config.dataDir });
}
