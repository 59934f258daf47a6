import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisClient } from '../src/store/redis-client.js';

/** Addresses given without a port get the port of what they address: Redis's, or Sentinel's. */
describe('Redis addresses', () => {
  it('a sentinel without a port is on 26379; one with a port keeps it', () => {
    const client = createRedisClient({
      sentinel: { name: 'mymaster', sentinels: ['127.0.0.1', '127.0.0.2:26380'] },
    }) as Redis;
    try {
      expect(client.options.sentinels).toEqual([
        { host: '127.0.0.1', port: 26379 },
        { host: '127.0.0.2', port: 26380 },
      ]);
    } finally {
      client.disconnect();
    }
  });
});
