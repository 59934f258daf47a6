import type { AtomicWriteHooks } from './atomic-file.js';
import { MemoryCacheStore } from './memory-cache-store.js';
import { MemoryHealthStore } from './memory-health-store.js';
import { MemoryQuotaStore } from './memory-quota-store.js';
import { MemoryRegistryStore } from './memory-registry-store.js';
import { MemoryUsageStore } from './memory-usage-store.js';
import type { Store } from './store.js';

export interface MemoryStoreOptions {
  /** Where teams and keys persist; none keeps everything in memory only (tests). */
  dataDir?: string | undefined;
  writeHooks?: AtomicWriteHooks;
  /** The response cache's byte cap (default 64 MiB). */
  cacheMaxBytes?: number | undefined;
}

/**
 * The embedded default: state in this process. The registry (teams, keys, the audit log and
 * settings) persists to the data directory; counters, usage and cache entries live in memory only.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  private closed = false;
  readonly quota = new MemoryQuotaStore();
  readonly usage = new MemoryUsageStore();
  readonly health = new MemoryHealthStore();
  readonly cache: MemoryCacheStore;

  private constructor(
    readonly registry: MemoryRegistryStore,
    options: MemoryStoreOptions,
  ) {
    this.cache = new MemoryCacheStore({ maxBytes: options.cacheMaxBytes });
  }

  /** Opens the store, loading the data directory's file if there is one. */
  static async open(options: MemoryStoreOptions = {}): Promise<MemoryStore> {
    const registry = await MemoryRegistryStore.open({
      dataDir: options.dataDir,
      writeHooks: options.writeHooks,
    });
    return new MemoryStore(registry, options);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store is closed');
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.cache.close();
    await this.registry.flush();
  }

  /** Undefined: one process, so the limiter's own in-process counters are the shared ones. */
  rateLimitStore(): undefined {
    return undefined;
  }
}
