import { Command, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_TIMED_OUT, CommandDeadlines } from '../src/store/command-deadlines.js';
import { createRedisClient } from '../src/store/redis-client.js';
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
  let proxy: HoldProxy;
  let client: Redis;

  beforeAll(async () => {
    server = redis as TestRedis;
    proxy = await startHoldProxy(Number(new URL(server.url).port || 6379));
    client = createRedisClient({ url: proxy.url }, 200) as Redis;
    if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  });
  afterAll(async () => {
    client?.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('answers while Redis answers, and fails a command Redis never answers as an outage', async () => {
    const key = `tg:test:command-deadline:${process.pid}`;
    expect(await client.set(key, 'v', 'PX', 60_000)).toBe('OK');
    expect(await client.get(key)).toBe('v');
    proxy.hold();
    const pending = client.get(key).then(
      () => undefined,
      (error: unknown) => error,
    );
    await proxy.holding();
    const error = await pending;
    expect((error as Error).message).toBe(COMMAND_TIMED_OUT);
    // The store layer answers it with 503 and retry-after (StoreUnavailableError).
    expect(isRedisOutage(error, client)).toBe(true);
  });
});
