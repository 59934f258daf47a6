import type { Config } from '../config/schema.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

export function createStore(config: Config): Store {
  return config.redis ? new RedisStore({ url: config.redis.url }) : new MemoryStore();
}
