import { createHash } from 'node:crypto';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Cluster, Redis } from 'ioredis';

/**
 * A fixed window per key: the first hit starts it. A key that somehow lost its expiry gets
 * one again instead of counting forever.
 */
const INCR = `
local current = redis.call('INCR', KEYS[1])
local window = tonumber(ARGV[1])
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], window)
  return {current, window}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
return {current, ttl}
`;
const INCR_SHA = createHash('sha1').update(INCR).digest('hex');

/**
 * @fastify/rate-limit's counters in Redis, every key under `prefix` followed by what the
 * limiter's `keyGenerator` returns. The plugin's own Redis store names each limiter made with
 * `createRateLimit` after a route it does not have (`<nameSpace>undefinedundefined-<key>`);
 * here each limiter names its counters itself (`auth-failures:admin:<ip>`,
 * `requests_per_minute:key:<id>`...), so one prefix serves them all.
 */
export function redisRateLimitStore(
  client: Redis | Cluster,
  prefix: string,
  /**
   * Resolves once the client can take commands (the store's own first-connection wait). The
   * client queues nothing while disconnected, so without it the first counts after a start
   * would fail and go uncounted.
   */
  whenReady: () => Promise<void>,
): FastifyRateLimitStoreCtor {
  const incr = async (name: string, windowMs: number): Promise<{ current: number; ttl: number }> => {
    if (client.status !== 'ready') await whenReady();
    let result: unknown;
    try {
      // EVALSHA first: the hot path sends a hash; EVAL once where the script is not cached yet.
      result = await client.evalsha(INCR_SHA, 1, name, windowMs);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      result = await client.eval(INCR, 1, name, windowMs);
    }
    const [current, ttl] = result as [number, number];
    return { current, ttl };
  };
  return class RedisRateLimitStore implements FastifyRateLimitStore {
    incr(key: string, callback: Parameters<FastifyRateLimitStore['incr']>[1], timeWindow: number): void {
      incr(`${prefix}${key}`, timeWindow).then(
        (result) => callback(null, result),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    }

    /** Limiters are told apart by their keys, not by the route they are made for. */
    child(): FastifyRateLimitStore {
      return this;
    }
  };
}
