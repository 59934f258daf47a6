import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Servers the tests start (redis-server nodes) are noted by pid in this run's folder, so the
 * global teardown can stop any a killed test worker never got to stop itself.
 */
export const SPAWNED_DIR_ENV = 'TOLLGATE_TEST_SPAWNED_DIR';

/** `spawn`, noted for the teardown. */
export function spawnTracked(...args: Parameters<typeof spawn>): ChildProcess {
  return trackSpawned(spawn(...args));
}

export function trackSpawned(child: ChildProcess): ChildProcess {
  const dir = process.env[SPAWNED_DIR_ENV];
  if (dir && child.pid !== undefined) {
    const file = join(dir, String(child.pid));
    writeFileSync(file, '');
    child.once('exit', () => rmSync(file, { force: true }));
  }
  return child;
}
