import type { Cluster, Redis } from 'ioredis';
import { type LuaScript, runLua } from './lua-script.js';
import { createRedisClient, type RedisTarget } from './redis-client.js';
import { StoreUnavailableError } from './store-unavailable.js';

const FIRST_CONNECTION_WAIT_MS = 2_000;
/** How long closing waits for Redis to answer what was sent before it. */
const QUIT_WAIT_MS = 2_000;

/**
 * The Redis connection every Redis sub-store shares (one client per RedisStore), with the
 * fail-fast readiness check they all go through before sending anything.
 */
export class RedisConnection {
  readonly client: Redis | Cluster;
  private everReady = false;
  private firstConnection: Promise<void> | undefined;
  private closed = false;

  constructor(target: RedisTarget) {
    this.client = createRedisClient(target);
    this.client.on('ready', () => {
      this.everReady = true;
    });
  }

  /**
   * Fails fast while Redis is down, so an outage costs callers no waiting: once the connection
   * has been up, a command is only sent while it is up. Only the very first connection (at boot)
   * is waited for, briefly, and all callers share that one wait.
   */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailableError(new Error('store is closed')));
    if (this.client.status === 'ready') return Promise.resolve();
    if (this.everReady) return Promise.reject(new StoreUnavailableError());
    this.firstConnection ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        this.firstConnection = undefined;
        reject(new StoreUnavailableError());
      }, FIRST_CONNECTION_WAIT_MS);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
    return this.firstConnection;
  }

  /** Runs a script once the connection is ready (see runLua). */
  async run(
    script: LuaScript,
    keys: readonly string[],
    args: ReadonlyArray<string | number | Buffer>,
  ): Promise<unknown> {
    await this.ready();
    return runLua(this.client, script, keys, args);
  }

  /**
   * QUIT is answered only after every command sent before it, so settles and usage writes
   * still in flight land instead of being cut off (a cut settle would leave its reservation
   * until its ttl). A Redis that does not answer is not waited for long.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.client.quit().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, QUIT_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    this.client.disconnect();
  }
}
