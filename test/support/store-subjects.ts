import { Cluster, type Redis } from 'ioredis';
import { MemoryStore } from '../../src/store/memory-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/store.js';
import { redisForTests, type TestRedis } from './redis.js';
import {
  deleteKeys,
  type LeasedDatabase,
  leaseRedisDatabase,
  startRedisCluster,
  type TestRedisCluster,
} from './redis-cluster.js';
import { startRedisSentinel, type TestRedisSentinel } from './redis-sentinel.js';

/**
 * The stores a contract suite runs against: MemoryStore, RedisStore on a standalone Redis (a
 * database of its own on REDIS_URL's server, or a throwaway redis-server), on a real 3-master
 * Cluster started for the suite and, where asked, through a real Sentinel. A backend that is
 * unavailable here opens as undefined (the suite skips it, with the notice redisForTests prints);
 * with REDIS_URL set a missing Redis fails. Each sub-store's contract suite takes the sub-store
 * it tests from the opened Store (`store.registry`, `store.quota`, ...).
 */
export interface StoreSubject {
  name: string;
  /** A store, or undefined where this backend is unavailable. */
  open: () => Promise<Store | undefined>;
  /** Another gateway instance on the same shared state; MemoryStore shares itself. */
  sibling: (store: Store) => Promise<Store>;
  /** The servers holding the keys, to check names and expiry; none for MemoryStore. */
  servers: () => Redis[];
}

export interface StoreSubjects {
  subjects: StoreSubject[];
  /** For beforeAll: starts or leases what the Redis subjects need. */
  start: () => Promise<void>;
  /** For afterAll: deletes this suite's `tg:*` keys (never FLUSHALL) and stops what it started. */
  stop: () => Promise<void>;
}

/**
 * `clearBeforeEach`: every open() starts from no `tg:*` keys (suites whose checks count keys).
 * `sentinel`: also run against a Redis reached through Sentinel (a throwaway master of the suite).
 * `settleHold`: also run against a standalone RedisStore whose settles wait for their team's next
 * admit (`quota.settleHoldMs`), for the quota suite.
 */
export function storeSubjects(
  options: { clearBeforeEach?: boolean; sentinel?: boolean; settleHold?: boolean } = {},
): StoreSubjects {
  let redis: TestRedis | undefined;
  let database: LeasedDatabase | undefined;
  let cluster: TestRedisCluster | undefined;
  let clusterAdmin: Cluster | undefined;
  let sentinel: TestRedisSentinel | undefined;
  let sentinelStore: RedisStore | undefined;

  const viaSentinel = (found: TestRedisSentinel) =>
    new RedisStore({ target: { sentinel: { name: found.name, sentinels: found.sentinels } } });

  const subjects: StoreSubject[] = [
    {
      name: 'MemoryStore',
      open: () => MemoryStore.open(),
      sibling: async (store) => store,
      servers: () => [],
    },
    {
      name: 'RedisStore (standalone)',
      open: async () => {
        if (!database) return undefined;
        if (options.clearBeforeEach) await deleteKeys(database.client, 'tg:*');
        return new RedisStore({ target: { url: database.url } });
      },
      sibling: async () => new RedisStore({ target: { url: (database as LeasedDatabase).url } }),
      servers: () => (database ? [database.client] : []),
    },
  ];
  if (options.settleHold) {
    // Long enough that a settle waits for a later admit in these tests, short enough to wait out.
    const held = () =>
      new RedisStore({ target: { url: (database as LeasedDatabase).url }, settleHoldMs: 20 });
    subjects.push({
      name: 'RedisStore (standalone, settles held)',
      open: async () => {
        if (!database) return undefined;
        if (options.clearBeforeEach) await deleteKeys(database.client, 'tg:*');
        return held();
      },
      sibling: async () => held(),
      servers: () => (database ? [database.client] : []),
    });
  }
  if (options.sentinel)
    subjects.push({
      name: 'RedisStore (sentinel)',
      open: async () => {
        if (!sentinel) return undefined;
        const store = viaSentinel(sentinel);
        await store.ping(); // resolves once the sentinel has handed over the master's address
        if (options.clearBeforeEach) await deleteKeys(store.client as Redis, 'tg:*');
        sentinelStore = store;
        return store;
      },
      sibling: async () => viaSentinel(sentinel as TestRedisSentinel),
      servers: () => (sentinelStore ? [sentinelStore.client as Redis] : []),
    });
  subjects.push({
    name: 'RedisStore (cluster)',
    open: async () => {
      if (!cluster || !clusterAdmin) return undefined;
      if (options.clearBeforeEach) await deleteKeys(clusterAdmin, 'tg:*');
      return new RedisStore({ target: { cluster: { nodes: cluster.nodes } } });
    },
    sibling: async () =>
      new RedisStore({ target: { cluster: { nodes: (cluster as TestRedisCluster).nodes } } }),
    servers: () => (clusterAdmin ? clusterAdmin.nodes('master') : []),
  });

  return {
    subjects,
    start: async () => {
      [redis, cluster, sentinel] = await Promise.all([
        redisForTests(),
        startRedisCluster(),
        options.sentinel ? startRedisSentinel() : undefined,
      ]);
      // REDIS_URL may be shared: work in a database of our own and only delete `tg:*` there.
      if (redis) database = await leaseRedisDatabase(redis.url);
      if (cluster) {
        clusterAdmin = new Cluster(
          cluster.nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })),
        );
        clusterAdmin.on('error', () => {});
      }
    },
    stop: async () => {
      clusterAdmin?.disconnect();
      if (database) await deleteKeys(database.client, 'tg:*');
      await database?.release();
      await Promise.all([redis?.stop(), cluster?.stop(), sentinel?.stop()]);
    },
  };
}
