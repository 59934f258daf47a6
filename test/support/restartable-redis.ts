import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPing } from './redis.js';
import { spawnTracked } from './spawned-servers.js';

/**
 * A throwaway redis-server that a test may kill and start again on the same port, keeping its
 * data: an append-only file in a temporary directory, fsynced on every write, so even a
 * SIGKILL (a crash, not a clean shutdown) loses nothing.
 */
export interface RestartableRedis {
  url: string;
  port: number;
  /** SIGKILL, as an outage would. */
  kill: () => Promise<void>;
  /** Starts again on the same port with the same data; resolves once it answers PING. */
  restart: () => Promise<void>;
  /** SIGSTOP: connections stay open, nothing is answered (a hung server) until `resume`. */
  pause: () => void;
  resume: () => void;
  stop: () => Promise<void>;
}

export async function startRestartableRedisServer(): Promise<RestartableRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-aof-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    const started = spawnTracked(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
      ],
      { stdio: 'ignore' },
    );
    child = started;
    await waitForPing(url, started);
  };

  const kill = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };

  await start();
  return {
    url,
    port,
    kill,
    restart: async () => {
      await kill();
      await start();
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    stop: kill,
  };
}
