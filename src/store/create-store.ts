import type { Config } from '../config/schema.js';
import { settingName } from '../config/setting-name.js';
import { DataDirError } from './data-dir-error.js';
import { MemoryStore } from './memory-store.js';
import type { RedisTarget } from './redis-client.js';
import type { Store } from './store.js';
import { StoreStartError } from './store-start-error.js';
import { StoreUnavailableError } from './store-unavailable.js';

function redisSetting(target: RedisTarget): string {
  if ('url' in target) return 'redis.url';
  return 'sentinel' in target ? 'redis.sentinel' : 'redis.cluster';
}

export async function createStore(config: Config): Promise<Store> {
  if (config.redis) {
    // Loaded only when configured: ioredis and the Redis stores hold ~20 MB a gateway on the
    // embedded store never uses.
    const { RedisStore } = await import('./redis-store.js');
    const store = new RedisStore({ target: config.redis, settleHoldMs: config.quota.settleHoldMs });
    // Connected before the gateway starts, whatever it does first: a Redis it cannot use is said
    // now, which one and why, rather than as every request's 503 (or, with an admin key set,
    // not at all until the first request).
    try {
      await store.ping();
    } catch (error) {
      await store.close().catch(() => {});
      const cause =
        error instanceof StoreUnavailableError && error.cause instanceof Error ? error.cause : error;
      const why = cause instanceof Error ? cause.message : String(cause);
      throw new StoreStartError(`${settingName(config, redisSetting(config.redis))}: ${why}`, {
        cause: error,
      });
    }
    return store;
  }
  try {
    return await MemoryStore.open({ dataDir: config.dataDir });
  } catch (error) {
    if (!(error instanceof DataDirError)) throw error;
    throw new StoreStartError(`${settingName(config, 'dataDir')}: ${error.message}`, { cause: error });
  }
}
