import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, hasRedisServerBinary, startRedisServer, type TestRedis } from './redis.js';
import { spawnTracked } from './spawned-servers.js';

export interface TestRedisSentinel {
  /** The monitored master's name, as RedisStore's sentinel target wants it. */
  name: string;
  sentinels: string[];
  stop: () => Promise<void>;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
}

/**
 * A real Sentinel setup: a throwaway master and one `redis-server --sentinel` monitoring it, so
 * the store is reached the way a Sentinel deployment reaches it (ask the sentinel, then connect).
 * Undefined, with a loud notice, where redis-server is not on PATH.
 */
export async function startRedisSentinel(): Promise<TestRedisSentinel | undefined> {
  if (!hasRedisServerBinary()) {
    process.stderr.write('\n!!! REDIS SENTINEL SUITE SKIPPED: redis-server is not on PATH. !!!\n\n');
    return undefined;
  }
  const master: TestRedis = await startRedisServer();
  const masterPort = new URL(master.url).port;
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sentinel-'));
  const port = await freePort();
  const config = join(dir, 'sentinel.conf');
  writeFileSync(
    config,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor tollgate-test 127.0.0.1 ${masterPort} 1`,
      'sentinel down-after-milliseconds tollgate-test 5000',
      '',
    ].join('\n'),
  );
  const sentinel = spawnTracked('redis-server', [config, '--sentinel'], { stdio: 'ignore' });
  const stop = async () => {
    await kill(sentinel);
    await master.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready once the sentinel names the master.
  for (let attempt = 0; attempt < 100; attempt++) {
    const client = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      const address = (await client.call('SENTINEL', 'get-master-addr-by-name', 'tollgate-test')) as
        | string[]
        | null;
      if (address?.[1] === masterPort)
        return { name: 'tollgate-test', sentinels: [`127.0.0.1:${port}`], stop };
    } catch {
      // not up yet
    } finally {
      client.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error('redis sentinel did not come up');
}
