import type { FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Cluster, Redis } from 'ioredis';
import { RedisCacheStore } from './redis-cache-store.js';
import type { RedisTarget } from './redis-client.js';
import { RedisConnection } from './redis-connection.js';
import { RedisHealthStore } from './redis-health-store.js';
import { RedisQuotaStore } from './redis-quota-store.js';
import { redisRateLimitStore } from './redis-rate-limit-store.js';
import { RedisRegistryStore } from './redis-registry-store.js';
import { RedisUsageStore } from './redis-usage-store.js';
import type { Store } from './store.js';
import { failClosedOnOutage } from './store-unavailable.js';

export interface RedisStoreOptions {
  target: RedisTarget;
  /** See RedisQuotaStoreOptions. */
  settleHoldMs?: number;
}

/** Shared state in Redis, so several gateway instances behave as one: every sub-store on one connection. */
export class RedisStore implements Store {
  readonly kind = 'redis';
  private readonly connection: RedisConnection;
  readonly registry: RedisRegistryStore;
  readonly quota: RedisQuotaStore;
  readonly usage: RedisUsageStore;
  readonly cache: RedisCacheStore;
  readonly health: RedisHealthStore;

  constructor(options: RedisStoreOptions) {
    this.connection = new RedisConnection(options.target);
    this.registry = new RedisRegistryStore(this.connection);
    this.quota = new RedisQuotaStore(this.connection, options);
    this.usage = new RedisUsageStore(this.connection);
    this.cache = new RedisCacheStore(this.connection);
    this.health = new RedisHealthStore(this.connection);
    failClosedOnOutage(this, this.connection.client);
  }

  /** The connection's client, for tests that look at keys directly. */
  get client(): Redis | Cluster {
    return this.connection.client;
  }

  async ping(): Promise<void> {
    await this.connection.ready();
    const answer = await this.connection.client.ping();
    if (answer !== 'PONG') throw new Error(`unexpected PING answer: ${answer}`);
  }

  async close(): Promise<void> {
    // Held settles go before QUIT, and the cache gives up the claims it holds: both take the connection.
    await this.quota.flush();
    await this.cache.close();
    await this.connection.close();
  }

  rateLimitStore(prefix: string): FastifyRateLimitStoreCtor {
    return redisRateLimitStore(this.connection, prefix);
  }
}
