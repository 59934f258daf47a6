import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisClient } from '../src/store/redis-client.js';
import { redisTargetName } from '../src/store/redis-failure.js';

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

describe('a Redis named in a message', () => {
  it('never shows a password, in the URL or in its query', () => {
    const named = redisTargetName({ url: 'redis://user:s3cret@10.0.0.5:6379/2?password=q7secret&db=2' });
    expect(named).not.toContain('s3cret');
    expect(named).not.toContain('q7secret');
    expect(named).toContain('10.0.0.5:6379');
    expect(redisTargetName({ url: 'redis://10.0.0.5:6379/0' })).toBe('redis://10.0.0.5:6379/0');
  });
});
