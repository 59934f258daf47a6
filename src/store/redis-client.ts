import { Cluster, type Command, Redis } from 'ioredis';
import { CommandDeadlines } from './command-deadlines.js';

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

/** One sweep for every client of the process that uses the default timeout. */
const sharedDeadlines = new CommandDeadlines(COMMAND_TIMEOUT_MS);

/**
 * Commands are timed by CommandDeadlines rather than by ioredis's `commandTimeout` option, which
 * costs far more (see there). Set right after construction: ioredis sends nothing before its
 * connection opens, which is never within its constructor.
 */
class TimedRedis extends Redis {
  deadlines = sharedDeadlines;

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    this.deadlines.watch(command);
    return super.sendCommand(command, stream);
  }
}

/** A Cluster sends through clients of its own per node: its commands are watched on the way in. */
class TimedCluster extends Cluster {
  deadlines = sharedDeadlines;

  override sendCommand(
    command: Command,
    stream?: Parameters<Cluster['sendCommand']>[1],
    node?: Parameters<Cluster['sendCommand']>[2],
  ): unknown {
    this.deadlines.watch(command);
    return super.sendCommand(command, stream, node);
  }
}

const COMMON = {
  // Fail fast while Redis is down instead of queueing requests behind a reconnect.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
  // Commands issued in one event-loop turn go out in one write: a socket write per command was
  // a sixth of the gateway's CPU on the Redis path (two scripts per request, each its own syscall).
  // It delays a command by up to a turn, so scripts may reach Redis out of their callers' clock
  // order: the quota scripts are written for that (see quota-turn.lua's request windows).
  enableAutoPipelining: true,
};

/** `commandTimeoutMs`: tests ask for less than the default to see a command time out. */
export function createRedisClient(
  target: RedisTarget,
  commandTimeoutMs = COMMAND_TIMEOUT_MS,
): Redis | Cluster {
  let client: TimedRedis | TimedCluster;
  if ('cluster' in target) {
    client = new TimedCluster(target.cluster.nodes.map(hostPort), {
      enableOfflineQueue: false,
      enableAutoPipelining: COMMON.enableAutoPipelining,
      clusterRetryStrategy: COMMON.retryStrategy,
      redisOptions: {
        maxRetriesPerRequest: COMMON.maxRetriesPerRequest,
        ...(target.cluster.password ? { password: target.cluster.password } : {}),
      },
    });
  } else if ('sentinel' in target) {
    client = new TimedRedis({
      ...COMMON,
      name: target.sentinel.name,
      sentinels: target.sentinel.sentinels.map(hostPort),
      ...(target.sentinel.password ? { password: target.sentinel.password } : {}),
      ...(target.sentinel.db !== undefined ? { db: target.sentinel.db } : {}),
    });
  } else {
    client = new TimedRedis(target.url, COMMON);
  }
  if (commandTimeoutMs !== COMMAND_TIMEOUT_MS) client.deadlines = new CommandDeadlines(commandTimeoutMs);
  // ioredis reconnects on its own; without a listener an outage would crash the process.
  client.on('error', () => {});
  return client;
}
