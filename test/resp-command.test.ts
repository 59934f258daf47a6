import fc from 'fast-check';
import { Command, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient } from '../src/store/redis-client.js';
import { respCommand } from '../src/store/resp-command.js';
import { redisForTests, type TestRedis } from './support/redis.js';

const redis = await redisForTests();

/** What ioredis itself would send for the command. */
function ioredisBytes(
  name: string,
  args: Array<string | Buffer | number>,
): { bytes: Buffer; args: unknown[] } {
  const command = new Command(name, args);
  return { bytes: Buffer.from(command.toWritable({})), args: command.args };
}

// Wide characters change an argument's byte length in digits (9 units of 'é' are 18 bytes), lone
// surrogates become 3 replacement bytes, and arguments past 4,096 units are measured, not bounded.
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('a', 'é', '日', '\u{1f600}', '\ud800', '\udfff', '\r', '\n', '$'),
    maxLength: 120,
  }),
  fc
    .tuple(fc.integer({ min: 4_090, max: 4_200 }), fc.constantFrom('a', 'é', '\u{1f600}'))
    .map(([length, unit]) => unit.repeat(length)),
);
const argument = fc.oneof(
  text,
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
  fc.integer(),
);

describe('a command in RESP', () => {
  it('is byte for byte what ioredis would send, for any arguments', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('set', 'evalsha', 'xadd', 'hincrby'),
        fc.array(argument, { maxLength: 6 }),
        (name, args) => {
          const expected = ioredisBytes(name, args);
          expect(respCommand(name, expected.args)).toEqual(expected.bytes);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('is byte for byte what ioredis would send for arguments larger than a slab', () => {
    for (const big of ['x'.repeat(40_000), 'é'.repeat(20_000), Buffer.alloc(50_000, 7)]) {
      const expected = ioredisBytes('set', ['key', big]);
      expect(respCommand('set', expected.args)).toEqual(expected.bytes);
    }
  });

  it('leaves what it cannot encode to ioredis', () => {
    expect(respCommand('set', ['key', { not: 'a string' }])).toBeUndefined();
  });

  it('keeps the bytes of earlier commands when later ones fill its slab', () => {
    const first = respCommand('set', ['first', 'a'.repeat(1_000)]) as Buffer;
    const copy = Buffer.from(first);
    for (let i = 0; i < 200; i++) respCommand('set', [`k${i}`, 'b'.repeat(1_000)]);
    expect(first).toEqual(copy);
  });
});

/**
 * Through the store's client, against a real Redis: what is written comes back the same,
 * whatever its characters, its size or how many commands share the turn's write.
 */
describe.skipIf(!redis)("the store's Redis client's commands", () => {
  let server: TestRedis;
  let client: Redis;
  const prefix = `tg:test:resp:${process.pid}`;

  beforeAll(async () => {
    server = redis as TestRedis;
    client = createRedisClient({ url: server.url }) as Redis;
    if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  });
  afterAll(async () => {
    await client?.del(...Array.from({ length: 120 }, (_, i) => `${prefix}:${i}`), `${prefix}:bytes`);
    client?.disconnect();
    await server?.stop();
  });

  it('reads back every value of a turn whose commands fill more than one slab', async () => {
    const values = Array.from({ length: 120 }, (_, i) =>
      i % 3 === 0 ? `${'é'.repeat(i)}\u{1f600}\ud800${'x'.repeat(1_000 * (i % 7))}` : 'a'.repeat(1_500 + i),
    );
    values[60] = 'z'.repeat(70_000);
    await Promise.all(values.map((value, i) => client.set(`${prefix}:${i}`, value, 'PX', 60_000)));
    const read = await Promise.all(values.map((_, i) => client.get(`${prefix}:${i}`)));
    // A lone surrogate is sent as U+FFFD, as ioredis and Node always did.
    expect(read).toEqual(values.map((value) => value.replace('\ud800', '\ufffd')));
  });

  it('sends Buffers as they are, in a transaction too', async () => {
    const bytes = Buffer.from([0, 13, 10, 36, 255, 254]);
    const [[error, answer] = []] =
      (await client.multi().set(`${prefix}:bytes`, bytes, 'PX', 60_000).exec()) ?? [];
    expect(error).toBeNull();
    expect(answer).toBe('OK');
    expect(await client.getBuffer(`${prefix}:bytes`)).toEqual(bytes);
    expect(await client.eval('return #ARGV[1]', 0, 'é'.repeat(5))).toBe(10);
  });
});
