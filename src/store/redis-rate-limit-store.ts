import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import { loadLua } from './lua-script.js';
import type { RedisConnection } from './redis-connection.js';

const INCR = loadLua('rate-limit-incr');

/**
 * @fastify/rate-limit's counters in Redis, every key under `prefix` followed by what the
 * limiter's `keyGenerator` returns. The plugin's own Redis store names each limiter made with
 * `createRateLimit` after a route it does not have (`<nameSpace>undefinedundefined-<key>`);
 * here each limiter names its counters itself (`auth-failures:admin:<ip>`,
 * `requests_per_minute:key:<id>`...), so one prefix serves them all.
 *
 * Commands wait for the store's first connection: the client queues nothing while
 * disconnected, so without that wait the first counts after a start would fail and go uncounted.
 */
export function redisRateLimitStore(connection: RedisConnection, prefix: string): FastifyRateLimitStoreCtor {
  const incr = async (name: string, windowMs: number): Promise<{ current: number; ttl: number }> => {
    const [current, ttl] = (await connection.run(INCR, [name], [windowMs])) as [number, number];
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
