import { Cluster, Command, Redis } from 'ioredis';
import { CONNECTION_STALLED, CommandDeadlines } from './command-deadlines.js';
import { respCommand } from './resp-command.js';

/** How to reach Redis: one server (URL), a Cluster (seed nodes) or Sentinel. */
export type RedisTarget =
  | { url: string }
  | { cluster: { nodes: string[]; password?: string | undefined } }
  | {
      sentinel: { name: string; sentinels: string[]; password?: string | undefined; db?: number | undefined };
    };

/** `host[:port]` (or a URL), the port `defaultPort` when none is given. */
function hostPort(address: string, defaultPort: number): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `redis://${address}`);
  return { host: url.hostname, port: Number(url.port || defaultPort) };
}

/** Redis's own port, and Sentinel's: a sentinel given without one listens on 26379. */
const REDIS_PORT = 6379;
const SENTINEL_PORT = 26379;

/**
 * Longest a command may go unanswered. Without it a command in flight when the connection drops
 * can wait forever: ioredis keeps it for a resend once Redis is back, and when something still
 * accepts connections meanwhile (a proxy, a load balancer, a Redis starting up) it never gives
 * up on it, so the request holding it hangs instead of getting its 503.
 */
const COMMAND_TIMEOUT_MS = 5_000;

/** What a TimedRedis emits when, stalled (CommandDeadlines.stalled), it answers again. */
export const UNSTALLED_EVENT = 'unstalled';

/**
 * A single server or Sentinel's: its commands are timed by CommandDeadlines rather than by
 * ioredis's `commandTimeout` option, which costs far more (see there), and while the connection
 * is stalled they fail at once, unsent, as an outage (503): a request then waits for at most one
 * command's deadline, not one per command it sends. `timeWith` is called right after
 * construction: ioredis sends nothing before its connection opens, never within its constructor.
 */
class TimedRedis extends Redis {
  deadlines = new CommandDeadlines(COMMAND_TIMEOUT_MS);
  private corked = false;

  /** Times this connection's commands with `timeoutMs`, its stall state its own. */
  timeWith(timeoutMs: number): this {
    this.deadlines = new CommandDeadlines(timeoutMs);
    this.deadlines.onUnstalled = () => this.emit(UNSTALLED_EVENT);
    this.on('close', () => this.deadlines.reset());
    return this;
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    if (this.deadlines.stalled) {
      command.reject(new Error(CONNECTION_STALLED));
      return command.promise;
    }
    this.deadlines.watch(command);
    command.toWritable = writeResp;
    // A pipeline's (a MULTI's) commands come through here too, before it writes them all.
    this.corkForTurn();
    return super.sendCommand(command, stream);
  }

  /**
   * Commands sent in one event-loop turn leave in one write: the socket is corked at the turn's
   * first command and uncorked in the turn's check phase (setImmediate; a command sent from a
   * setImmediate callback waits for the next turn's), so the commands of every I/O event the
   * turn handled go together. ioredis's auto-pipelining, which this replaces, wrote at the same
   * point but through a Pipeline per turn (an object, a promise per command, the commands' text
   * concatenated once more: 34-43k instructions, ~5 %, of a request on the Redis path,
   * bench/instructions.mjs), and it held a turn's commands back while the previous batch's
   * answers were outstanding: fewer writes under load, each command a round trip later. Here
   * every turn writes at once. A socket that dies within the turn loses the corked bytes as it
   * would lose bytes already sent: their commands stay queued for a resend after the reconnect,
   * or fail at their deadline (CommandDeadlines), where before they would have been refused at
   * once on the dead socket.
   */
  private corkForTurn(): void {
    const socket = this.stream;
    if (this.corked || socket === undefined || this.status !== 'ready') return;
    this.corked = true;
    socket.cork();
    setImmediate(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /**
   * EVALSHA handed straight to sendCommand. ioredis's generated command methods take rest
   * arguments, and Command's constructor copies them once more (`flat()`) and checks each one's
   * type; here the list is built flat, of strings and Buffers, once (~15k instructions a request
   * on the Redis path, which sends two or three scripts; BENCHMARKS.md).
   */
  evalshaList(args: Array<string | Buffer>): Promise<unknown> {
    const command = new Command('evalsha', NO_ARGS, UTF8_REPLY);
    command.args = args;
    return this.sendCommand(command) as Promise<unknown>;
  }

  /** ioredis's `duplicate()` makes a plain Redis, whose commands nothing would time. */
  timedDuplicate(override: { enableOfflineQueue: boolean }): TimedRedis {
    // Our clients leave replyMapping at ioredis's default, which this class is typed for.
    const { replyMapping: _default, ...options } = this.options;
    return new TimedRedis({ ...options, enableOfflineQueue: override.enableOfflineQueue }).timeWith(
      this.deadlines.timeoutMs,
    );
  }
}

const NO_ARGS: never[] = [];
const UTF8_REPLY = { replyEncoding: 'utf8' as const };

/**
 * EVALSHA of `sha` with `keys` and `args`, on any client: TimedRedis's own way when it is one, a
 * Cluster's through its routing and auto-pipelining.
 */
export function evalsha(
  client: Redis | Cluster,
  sha: string,
  keys: readonly string[],
  args: ReadonlyArray<string | number | Buffer>,
): Promise<unknown> {
  if (!(client instanceof TimedRedis)) return client.evalsha(sha, keys.length, ...keys, ...args);
  const list: Array<string | Buffer> = [sha, String(keys.length)];
  for (const key of keys) list.push(key);
  for (const arg of args) list.push(typeof arg === 'number' ? String(arg) : arg);
  return client.evalshaList(list);
}

/** A command's bytes from respCommand (see there why), ioredis's own when it cannot make them. */
function writeResp(this: Command, socket: object): string | Buffer {
  return respCommand(this.name, this.args) ?? Command.prototype.toWritable.call(this, socket);
}

const COMMON = {
  // Fail fast while Redis is down instead of queueing requests behind a reconnect.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
  // Commands issued in one event-loop turn go out in one write: a socket write per command was
  // a sixth of the gateway's CPU on the Redis path (two scripts per request, each its own syscall).
  // It delays a command by up to a turn, so scripts may reach Redis out of their callers' clock
  // order: the quota scripts are written for that (see quota-turn.lua's request windows). A
  // Cluster does it through ioredis's auto-pipelining (per group of slots), TimedRedis by corking
  // its socket for the turn (TURN_WRITES).
  enableAutoPipelining: true,
};

const TURN_WRITES = { enableAutoPipelining: false };

/** `commandTimeoutMs`: tests ask for less than the default to see a command time out. */
export function createRedisClient(
  target: RedisTarget,
  commandTimeoutMs = COMMAND_TIMEOUT_MS,
): Redis | Cluster {
  const client =
    'cluster' in target ? clusterClient(target, commandTimeoutMs) : timedClient(target, commandTimeoutMs);
  // ioredis reconnects on its own; without a listener an outage would crash the process.
  client.on('error', () => {});
  return client;
}

/**
 * A Cluster talks to each node through clients of its own that no subclass reaches, and a node's
 * handshake must time out for ioredis to give up on a silent node: ioredis's option.
 */
function clusterClient(
  target: Extract<RedisTarget, { cluster: unknown }>,
  commandTimeoutMs: number,
): Cluster {
  return new Cluster(
    target.cluster.nodes.map((node) => hostPort(node, REDIS_PORT)),
    {
      enableOfflineQueue: false,
      enableAutoPipelining: COMMON.enableAutoPipelining,
      clusterRetryStrategy: COMMON.retryStrategy,
      redisOptions: {
        maxRetriesPerRequest: COMMON.maxRetriesPerRequest,
        commandTimeout: commandTimeoutMs,
        ...(target.cluster.password ? { password: target.cluster.password } : {}),
      },
    },
  );
}

function timedClient(
  target: Exclude<RedisTarget, { cluster: unknown }>,
  commandTimeoutMs: number,
): TimedRedis {
  const client =
    'sentinel' in target
      ? new TimedRedis({
          ...COMMON,
          ...TURN_WRITES,
          name: target.sentinel.name,
          sentinels: target.sentinel.sentinels.map((sentinel) => hostPort(sentinel, SENTINEL_PORT)),
          ...(target.sentinel.password ? { password: target.sentinel.password } : {}),
          ...(target.sentinel.db !== undefined ? { db: target.sentinel.db } : {}),
        })
      : new TimedRedis(target.url, { ...COMMON, ...TURN_WRITES });
  return client.timeWith(commandTimeoutMs);
}

/**
 * Whether `client`'s connection is stalled: a command has gone unanswered past its deadline and
 * nothing has been answered since (see CommandDeadlines.stalled). A Cluster's never is here: its
 * nodes' commands are timed by ioredis.
 */
export function isStalled(client: Redis | Cluster): boolean {
  return client instanceof TimedRedis && client.deadlines.stalled;
}

/**
 * Another connection with the same settings and command timeout (a subscriber needs one of its
 * own), with `override` on top.
 */
export function duplicateClient(
  client: Redis | Cluster,
  override: { enableOfflineQueue: boolean },
): Redis | Cluster {
  if (client instanceof TimedRedis) return client.timedDuplicate(override);
  if (client instanceof Cluster) return client.duplicate([], override);
  return client.duplicate(override);
}
