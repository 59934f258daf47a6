import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/store/memory-store.js';
import { RedisStore } from '../src/store/redis-store.js';
import type { Store } from '../src/store/store.js';
import { redisForTests, type TestRedis } from './support/redis.js';

let redis: TestRedis | undefined;
beforeAll(async () => {
  redis = await redisForTests();
});
afterAll(async () => {
  await redis?.stop();
});

const implementations: Array<{ name: string; make: () => Store | Promise<Store> | undefined }> = [
  { name: 'MemoryStore', make: () => MemoryStore.open() },
  { name: 'RedisStore', make: () => (redis ? new RedisStore({ target: { url: redis.url } }) : undefined) },
];

/** One contract for every Store; features add their cases here as they land. */
describe.each(implementations)('Store contract: $name', ({ name, make }) => {
  it('answers ping while open and refuses once closed', async (context) => {
    const store = await make();
    if (!store) {
      context.skip(`${name}: no Redis available (see the notice above)`);
      return;
    }
    await expect(store.ping()).resolves.toBeUndefined();
    await store.close();
    await expect(store.ping()).rejects.toThrow();
  });
});

describe('RedisStore when Redis is unreachable', () => {
  it('fails ping quickly instead of queueing behind reconnects', async () => {
    const store = new RedisStore({ target: { url: 'redis://127.0.0.1:1' } });
    try {
      await expect(store.ping()).rejects.toThrow();
    } finally {
      await store.close();
    }
  });
});
