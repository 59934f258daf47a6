import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient } from '../src/store/redis-client.js';
import { redisForTests, type TestRedis } from './support/redis.js';

const redis = await redisForTests();

/** Counts the writes of `socket` that reach the system (Writable's _write and _writev). */
function countWrites(socket: Socket): { count: number } {
  const counter = { count: 0 };
  const writable = socket as Socket & {
    _write: (...args: unknown[]) => void;
    _writev: (...args: unknown[]) => void;
  };
  const write = writable._write.bind(socket);
  const writev = writable._writev.bind(socket);
  writable._write = (...args: unknown[]) => {
    counter.count++;
    write(...args);
  };
  writable._writev = (...args: unknown[]) => {
    counter.count++;
    writev(...args);
  };
  return counter;
}

const ready = async (client: Redis) => {
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
};

/**
 * The store's Redis client writes the commands of one event-loop turn to its socket at once
 * (one system call for a request's script calls, or for many requests' admits), and waits for
 * nothing else to do so.
 */
describe.skipIf(!redis)("the store's Redis client", () => {
  let server: TestRedis;
  let client: Redis;

  beforeAll(async () => {
    server = redis as TestRedis;
    client = createRedisClient({ url: server.url }) as Redis;
    await ready(client);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  const key = `tg:test:turn-writes:${process.pid}`;

  /** Five commands of one turn, and what they answer. */
  const turn = () =>
    Promise.all([
      client.set(key, 'a', 'PX', 60_000),
      client.append(key, 'b'),
      client.get(key),
      client.eval('return ARGV[1] .. ARGV[2]', 0, 'x'.repeat(300), 'y'),
      client.del(key),
    ]);
  const TURN_ANSWERS = ['OK', 2, 'ab', `${'x'.repeat(300)}y`, 1];

  it('sends the commands of one turn in one write, and each answer to its own command', async () => {
    const writes = countWrites(client.stream as Socket);
    expect(await turn()).toEqual(TURN_ANSWERS);
    expect(writes.count).toBe(1);
  });

  it("writes a transaction's commands and the turn's others at once too", async () => {
    const writes = countWrites(client.stream as Socket);
    const [transaction, alone] = await Promise.all([
      client.multi().set(key, '1', 'PX', 60_000).incr(key).exec(),
      client.get(`${key}:other`),
    ]);
    expect(transaction).toEqual([
      [null, 'OK'],
      [null, 2],
    ]);
    expect(alone).toBeNull();
    expect(writes.count).toBe(1);
    await client.del(key);
  });

  it('keeps doing so on the new connection after its socket died in the middle of a turn', async () => {
    const dying = client.stream as Socket;
    const lost = client.get(key).then(
      () => 'answered',
      () => 'failed',
    );
    dying.destroy();
    expect(['answered', 'failed']).toContain(await lost);
    await ready(client);
    expect(client.stream).not.toBe(dying);
    const writes = countWrites(client.stream as Socket);
    expect(await turn()).toEqual(TURN_ANSWERS);
    expect(writes.count).toBe(1);
  });
});
