import { afterAll, beforeAll } from 'vitest';
import { redisForTests, type TestRedis } from './redis.js';

/** One store a gateway test runs on: `url` is its Redis (undefined: the embedded store). */
export interface GatewayStore {
  name: string;
  url: () => string | undefined;
  available: () => boolean;
}

/**
 * The embedded store and a real Redis, for `describe.each`: the Redis is started (or REDIS_URL's
 * used) before the file's tests and stopped after them.
 */
export function gatewayStores(): GatewayStore[] {
  let redis: TestRedis | undefined;
  beforeAll(async () => {
    redis = await redisForTests();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  return [
    { name: 'embedded store', url: () => undefined, available: () => true },
    { name: 'Redis', url: () => redis?.url, available: () => redis !== undefined },
  ];
}
