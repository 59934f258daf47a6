import { type ChildProcess, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { spawnTracked } from './spawned-servers.js';

export interface TestRedis {
  url: string;
  stop: () => Promise<void>;
}

/** A port nothing listens on right now (for servers the tests start). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

/** Resolves once the redis-server `child` answers PING at `url`. */
export async function waitForPing(url: string, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.disconnect();
    }
  }
  throw new Error('redis-server did not answer');
}

/**
 * Starts a throwaway redis-server on a spare port (nothing on disk). The port is free when
 * chosen, but another process may bind it before redis-server does: redis-server then exits, and
 * the start is tried again on another port.
 */
export async function startRedisServer(): Promise<TestRedis> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawnTracked(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    const url = `redis://127.0.0.1:${port}`;
    try {
      await waitForPing(url, child);
    } catch (error) {
      if (child.exitCode === null || attempt === 5) {
        child.kill('SIGKILL');
        throw error;
      }
      continue;
    }
    return {
      url,
      stop: async () => {
        if (child.exitCode === null) {
          child.kill('SIGKILL');
          await new Promise((resolve) => child.once('exit', resolve));
        }
      },
    };
  }
}

export function hasRedisServerBinary(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * The Redis that tests use: REDIS_URL when set (then a missing Redis fails the tests), else a
 * throwaway redis-server; only where neither exists do Redis suites skip, and they say so loudly.
 */
export async function redisForTests(): Promise<TestRedis | undefined> {
  const url = process.env.REDIS_URL;
  if (url) return { url, stop: async () => {} };
  if (hasRedisServerBinary()) return startRedisServer();
  process.stderr.write(
    '\n!!! REDIS SUITES SKIPPED: REDIS_URL is not set and redis-server is not on PATH. !!!\n' +
      '!!! Set REDIS_URL=redis://127.0.0.1:6379 (as .ci/run does) to run them.          !!!\n\n',
  );
  return undefined;
}
