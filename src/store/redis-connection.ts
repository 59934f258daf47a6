import type { Cluster, Redis } from 'ioredis';
import { type LuaScript, runLua } from './lua-script.js';
import { createRedisClient, isStalled, type RedisTarget, UNSTALLED_EVENT } from './redis-client.js';
import {
  isSelectRefusal,
  outageMessage,
  RedisFailureError,
  unreachableMessage,
  wrongDatabaseMessage,
} from './redis-failure.js';
import { StoreOutage, trackOutages } from './store-outage.js';
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
  /** Ends the boot wait at once when waiting longer cannot help (see the 'error' listener). */
  private failFirstConnection: ((cause: RedisFailureError) => void) | undefined;
  private closed = false;
  /** The last connection error, for saying why Redis cannot be reached. */
  private lastError: Error | undefined;
  /** Set while the connection is in the wrong database: until a connection selects the right one. */
  private wrongDatabase: RedisFailureError | undefined;
  /** Set once close() has begun: what is kept for a retry from then on never gets one. */
  private closing = false;
  private readonly lastAttempts: Array<() => Promise<void>> = [];
  /** Since a command was refused because the connection could not be used, until it can again. */
  private outage: StoreOutage | undefined;

  /** `commandTimeoutMs`: tests ask for less than the default (see createRedisClient). */
  constructor(
    private readonly target: RedisTarget,
    commandTimeoutMs?: number,
  ) {
    this.client = createRedisClient(target, commandTimeoutMs);
    this.client.on('error', (error: Error) => {
      this.lastError = error;
      if (isSelectRefusal(error)) this.refuseDatabase(error);
    });
    this.client.on('ready', () => {
      // Emitted a tick after the status changed: a SELECT refused on this connection has
      // already dropped it (refuseDatabase), and a stale event must not clear that.
      if (this.client.status !== 'ready') return;
      this.wrongDatabase = undefined;
      this.lastError = undefined;
      this.everReady = true;
    });
    trackOutages(this.client, () => this.outageNow());
    this.onUsable(() => this.endOutage());
  }

  /**
   * The outage a command refused now is part of, begun with this refusal if none is under way.
   * None while the connection is usable (Redis itself said "not now": that ends with no event
   * to tell), before it was ever up (the gateway does not start then), or once it is closing.
   */
  private outageNow(): StoreOutage | undefined {
    if (this.usable || !this.everReady || this.closing) return undefined;
    this.outage ??= new StoreOutage(
      this.wrongDatabase?.message ?? outageMessage(this.target, this.lastError, isStalled(this.client)),
    );
    return this.outage;
  }

  private endOutage(): void {
    // A 'ready' of a connection already dropped again (a refused SELECT) ends nothing.
    if (!this.outage || !this.usable) return;
    this.outage.end();
    this.outage = undefined;
  }

  /**
   * Redis refused to SELECT the configured database (it has fewer), and ioredis carries on in
   * database 0 as if nothing happened: teams, keys and counters would land there, where another
   * gateway keeps its own, or where they silently "vanish" once the database exists again. This
   * connection is dropped before it is used (ioredis reports a refused SELECT while still
   * connecting, before it resends anything), callers are refused until a later connection
   * selects the right database, and at boot the gateway stops, naming the database.
   */
  private refuseDatabase(refusal: Error): void {
    this.wrongDatabase = new RedisFailureError(wrongDatabaseMessage(this.target, refusal));
    this.client.disconnect(true);
    this.failFirstConnection?.(this.wrongDatabase);
  }

  /**
   * Fails fast while Redis is down, so an outage costs callers no waiting: once the connection
   * has been up, a command is only sent while it is up. Only the very first connection (at boot)
   * is waited for, briefly, and all callers share that one wait. A failure's `cause` says which
   * Redis and why (RedisFailureError).
   */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailableError(new Error('store is closed')));
    if (this.wrongDatabase) return Promise.reject(new StoreUnavailableError(this.wrongDatabase));
    if (this.client.status === 'ready') return Promise.resolve();
    if (this.everReady) return Promise.reject(new StoreUnavailableError());
    this.firstConnection ??= new Promise<void>((resolve, reject) => {
      const settle = (cause?: RedisFailureError) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.failFirstConnection = undefined;
        this.firstConnection = undefined;
        if (cause) reject(new StoreUnavailableError(cause));
        else resolve();
      };
      const timer = setTimeout(() => {
        settle(
          new RedisFailureError(
            unreachableMessage(this.target, this.client, this.lastError, FIRST_CONNECTION_WAIT_MS),
          ),
        );
      }, FIRST_CONNECTION_WAIT_MS);
      const onReady = () => {
        if (this.client.status === 'ready' && !this.wrongDatabase) settle();
      };
      this.failFirstConnection = settle;
      this.client.on('ready', onReady);
    });
    return this.firstConnection;
  }

  /** Whether a command sent now would reach a Redis that answers (connected, not stalled). */
  get usable(): boolean {
    return !this.closed && !this.wrongDatabase && this.client.status === 'ready' && !isStalled(this.client);
  }

  /** Whether close() has begun: writes kept for a retry after that would never get one. */
  get shuttingDown(): boolean {
    return this.closing;
  }

  /**
   * Calls `listener` whenever the connection may have become usable again: connected (again),
   * or answering again after a stall. Writes kept during an outage are retried from here.
   */
  onUsable(listener: () => void): void {
    this.client.on('ready', listener);
    this.client.on(UNSTALLED_EVENT, listener);
  }

  /**
   * `attempt` runs when the connection closes, before QUIT, while commands can still be sent:
   * a sub-store's last try at the writes it kept for a retry, after which it gives up on them.
   */
  onClose(attempt: () => Promise<void>): void {
    this.lastAttempts.push(attempt);
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
   * The sub-stores' last attempts first (onClose). Then QUIT, which is answered only after every
   * command sent before it, so settles and usage writes still in flight land instead of being cut
   * off (a cut settle would leave its reservation until its ttl). A Redis that does not answer is
   * not waited for long.
   */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      await Promise.allSettled(this.lastAttempts.map((attempt) => attempt()));
    }
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
