import type { Config } from '../config/schema.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

export async function createStore(config: Config): Promise<Store> {
  if (config.redis) return new RedisStore({ target: config.redis });
  return MemoryStore.open({ dataDir: config.dataDir });
}
