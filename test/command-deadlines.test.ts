import { Command, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_TIMED_OUT, CommandDeadlines } from '../src/store/command-deadlines.js';
import { createRedisClient, duplicateClient } from '../src/store/redis-client.js';
import { isRedisOutage } from '../src/store/store-unavailable.js';
import { redisForTests, type TestRedis } from './support/redis.js';
import { type HoldProxy, startHoldProxy } from './support/tcp-hold-proxy.js';

/** What a command's promise came to: its value, or the message it was rejected with. */
async function outcome(command: Command): Promise<{ value?: unknown; error?: string }> {
  try {
    return { value: await command.promise };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

describe('CommandDeadlines', () => {
  it('a command answered in time keeps its answer and is no longer watched', async () => {
    const deadlines = new CommandDeadlines(60_000);
    const command = new Command('get', ['k'], { replyEncoding: 'utf8' });
    deadlines.watch(command);
    expect(deadlines.watching).toBe(1);
    command.resolve(Buffer.from('v'));
    expect(await outcome(command)).toEqual({ value: 'v' });
    expect(deadlines.watching).toBe(0);
  });

  it('a command that failed on its own keeps its error and is no longer watched', async () => {
    const deadlines = new CommandDeadlines(60_000);
    const command = new Command('get', ['k']);
    deadlines.watch(command);
    command.reject(new Error('Connection is closed.'));
    expect(await outcome(command)).toEqual({ error: 'Connection is closed.' });
    expect(deadlines.watching).toBe(0);
  });

  it('a command left unanswered fails with "Command timed out"; a late answer changes nothing', async () => {
    const deadlines = new CommandDeadlines(50);
    const unanswered = new Command('get', ['k']);
    const answered = new Command('get', ['k'], { replyEncoding: 'utf8' });
    deadlines.watch(unanswered);
    deadlines.watch(answered);
    answered.resolve(Buffer.from('v'));
    expect(await outcome(unanswered)).toEqual({ error: COMMAND_TIMED_OUT });
    expect(await outcome(answered)).toEqual({ value: 'v' });
    expect(deadlines.watching).toBe(0);
    // The answer that arrives after all: the promise stays rejected, nothing throws.
    unanswered.resolve(Buffer.from('late'));
    expect(await outcome(unanswered)).toEqual({ error: COMMAND_TIMED_OUT });
  });

  it('a command sent again (after a reconnect) is watched once, on its first clock', async () => {
    const deadlines = new CommandDeadlines(50);
    const command = new Command('get', ['k']);
    deadlines.watch(command);
    deadlines.watch(command);
    expect(deadlines.watching).toBe(1);
    expect(await outcome(command)).toEqual({ error: COMMAND_TIMED_OUT });
    // Settled: watching it again would only leak an entry.
    deadlines.watch(command);
    expect(deadlines.watching).toBe(0);
  });

  it('commands sent after a sweep stopped (nothing in flight) are timed again', async () => {
    const deadlines = new CommandDeadlines(50);
    const first = new Command('get', ['k']);
    deadlines.watch(first);
    expect(await outcome(first)).toEqual({ error: COMMAND_TIMED_OUT });
    const second = new Command('get', ['k']);
    deadlines.watch(second);
    expect(await outcome(second)).toEqual({ error: COMMAND_TIMED_OUT });
  });
});

const redis = await redisForTests();

describe.skipIf(!redis)('a Redis client of the store layer', () => {
  let server: TestRedis;
  const cleanup: Array<() => Promise<void> | void> = [];

  beforeAll(() => {
    server = redis as TestRedis;
  });
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
    await server?.stop();
  });

  /**
   * A client (and its duplicate) through a proxy of its own that can hold what they send. Its
   * timeout covers every command, the handshake's and those meant to be answered too, so it is
   * far above what a busy machine takes to answer one on loopback: only a held one reaches it.
   */
  async function clientsBehindProxy(): Promise<{ proxy: HoldProxy; client: Redis; copy: Redis }> {
    const proxy = await startHoldProxy(Number(new URL(server.url).port || 6379));
    const client = createRedisClient({ url: proxy.url }, 1_000) as Redis;
    const copy = duplicateClient(client, { enableOfflineQueue: true }) as Redis;
    cleanup.push(
      () => proxy.close(),
      () => client.disconnect(),
      () => copy.disconnect(),
    );
    for (const each of [client, copy])
      if (each.status !== 'ready') await new Promise((resolve) => each.once('ready', resolve));
    return { proxy, client, copy };
  }

  /** What a command that Redis never answers comes to. */
  async function unanswered(proxy: HoldProxy, send: () => Promise<unknown>): Promise<unknown> {
    proxy.hold();
    const pending = send().then(
      () => undefined,
      (error: unknown) => error,
    );
    await proxy.holding();
    return pending;
  }

  const key = `tg:test:command-deadline:${process.pid}`;

  it('answers while Redis answers, and fails a command Redis never answers as an outage', async () => {
    const { proxy, client } = await clientsBehindProxy();
    expect(await client.set(key, 'v', 'PX', 60_000)).toBe('OK');
    expect(await client.get(key)).toBe('v');
    const error = await unanswered(proxy, () => client.get(key));
    expect((error as Error).message).toBe(COMMAND_TIMED_OUT);
    // The store layer answers it with 503 and retry-after (StoreUnavailableError).
    expect(isRedisOutage(error, client)).toBe(true);
  });

  it("times a duplicate's commands too (the cache's subscriber connection)", async () => {
    const { proxy, copy } = await clientsBehindProxy();
    expect(await copy.get(key)).not.toBeUndefined();
    const error = await unanswered(proxy, () => copy.subscribe(`tg:test:command-deadline:${process.pid}`));
    expect((error as Error).message).toBe(COMMAND_TIMED_OUT);
  });
});
