import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SPAWNED_DIR_ENV } from './spawned-servers.js';

/**
 * Some tests run the built gateway as a real process (signals, the CLI), so dist/ must be
 * current before any test file starts.
 */
export default function setup(): () => void {
  const spawned = mkdtempSync(join(tmpdir(), 'tollgate-test-spawned-'));
  process.env[SPAWNED_DIR_ENV] = spawned;
  const root = fileURLToPath(new URL('../..', import.meta.url));
  // The same build as `npm start`'s: skipped when dist/ is fresh, locked against a concurrent one.
  execFileSync(process.execPath, ['scripts/build.mjs'], {
    cwd: root,
    stdio: 'inherit',
  });
  // A worker killed mid-test (a timeout, Ctrl-C) leaves its servers running: stop them here.
  return () => {
    for (const pid of readdirSync(spawned)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server'))
          process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(spawned, { recursive: true, force: true });
  };
}
