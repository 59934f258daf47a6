import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient } from '../src/store/redis-client.js';
import { redisForTests, type TestRedis } from './support/redis.js';

const redis = await redisForTests();

/**
 * The store's Redis client writes the commands of one event-loop turn to its socket at once
 * (one system call for a request's script calls, or for many requests' admits), and waits for
 * nothing else to do so.
 */
describe.skipIf(!redis)("the store's Redis client", () => {
  let server: TestRedis;
  let client: Redis;
  /** The socket's writes that reach the system (Writable's _write and _writev), by call. */
  let writes = 0;

  beforeAll(async () => {
    server = redis as TestRedis;
    client = createRedisClient({ url: server.url }) as Redis;
    if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
    const socket = client.stream as Socket & {
      _write: (...args: unknown[]) => void;
      _writev: (...args: unknown[]) => void;
    };
    const write = socket._write.bind(socket);
    const writev = socket._writev.bind(socket);
    socket._write = (...args: unknown[]) => {
      writes++;
      write(...args);
    };
    socket._writev = (...args: unknown[]) => {
      writes++;
      writev(...args);
    };
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  const key = `tg:test:turn-writes:${process.pid}`;

  it('sends the commands of one turn in one write, and each answer to its own command', async () => {
    writes = 0;
    const answers = await Promise.all([
      client.set(key, 'a', 'PX', 60_000),
      client.append(key, 'b'),
      client.get(key),
      client.eval('return ARGV[1] .. ARGV[2]', 0, 'x'.repeat(300), 'y'),
      client.del(key),
    ]);
    expect(answers).toEqual(['OK', 2, 'ab', `${'x'.repeat(300)}y`, 1]);
    expect(writes).toBe(1);
  });

  it('does not hold a command for a later turn: one write per turn', async () => {
    writes = 0;
    expect(await client.ping()).toBe('PONG');
    expect(await client.ping('again')).toBe('again');
    expect(writes).toBe(2);
  });

  it("writes a transaction's commands and the turn's others at once too", async () => {
    writes = 0;
    const [transaction, alone] = await Promise.all([
      client.multi().set(key, '1', 'PX', 60_000).incr(key).exec(),
      client.get(`${key}:other`),
    ]);
    expect(transaction).toEqual([
      [null, 'OK'],
      [null, 2],
    ]);
    expect(alone).toBeNull();
    expect(writes).toBe(1);
    await client.del(key);
  });
});
