import { Cluster, Redis } from 'ioredis';

/** How to reach Redis: one server (URL), a Cluster (seed nodes) or Sentinel. */
export type RedisTarget =
  | { url: string }
  | { cluster: { nodes: string[]; password?: string | undefined } }
  | {
      sentinel: { name: string; sentinels: string[]; password?: string | undefined; db?: number | undefined };
    };

function hostPort(address: string): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `redis://${address}`);
  return { host: url.hostname, port: Number(url.port || 6379) };
}

/**
 * Longest a command may go unanswered. Without it a command in flight when the connection drops
 * can wait forever: ioredis keeps it for a resend once Redis is back, and when something still
 * accepts connections meanwhile (a proxy, a load balancer, a Redis starting up) it never gives
 * up on it, so the request holding it hangs instead of getting its 503.
 */
const COMMAND_TIMEOUT_MS = 5_000;

const COMMON = {
  // Fail fast while Redis is down instead of queueing requests behind a reconnect.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: COMMAND_TIMEOUT_MS,
  retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
  // Commands issued in one event-loop turn go out in one write: a socket write per command was
  // a sixth of the gateway's CPU on the Redis path (two scripts per request, each its own syscall).
  // It delays a command by up to a turn, so scripts may reach Redis out of their callers' clock
  // order: the quota scripts are written for that (see quota-turn.lua's request windows).
  enableAutoPipelining: true,
};

export function createRedisClient(target: RedisTarget): Redis | Cluster {
  let client: Redis | Cluster;
  if ('cluster' in target) {
    client = new Cluster(target.cluster.nodes.map(hostPort), {
      enableOfflineQueue: false,
      enableAutoPipelining: COMMON.enableAutoPipelining,
      clusterRetryStrategy: COMMON.retryStrategy,
      redisOptions: {
        maxRetriesPerRequest: COMMON.maxRetriesPerRequest,
        commandTimeout: COMMON.commandTimeout,
        ...(target.cluster.password ? { password: target.cluster.password } : {}),
      },
    });
  } else if ('sentinel' in target) {
    client = new Redis({
      ...COMMON,
      name: target.sentinel.name,
      sentinels: target.sentinel.sentinels.map(hostPort),
      ...(target.sentinel.password ? { password: target.sentinel.password } : {}),
      ...(target.sentinel.db !== undefined ? { db: target.sentinel.db } : {}),
    });
  } else {
    client = new Redis(target.url, COMMON);
  }
  // ioredis reconnects on its own; without a listener an outage would crash the process.
  client.on('error', () => {});
  return client;
}
