import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LASTING_TMPDIR_ENV } from './lasting-tmpdir.js';
import { SPAWNED_DIR_ENV } from './spawned-servers.js';

/**
 * Some tests run the built gateway as a real process (signals, the CLI), so dist/ must be
 * current before any test file starts.
 */
export default function setup(): () => void {
  const spawned = mkdtempSync(join(tmpdir(), 'tollgate-test-spawned-'));
  process.env[SPAWNED_DIR_ENV] = spawned;
  // Every temp folder the tests make (data dirs, tiny GGUF models, configs: hundreds a run) goes
  // in one folder of this run, removed at the end; workers and the processes they start inherit
  // TMPDIR, which os.tmpdir() reads. Caches meant to outlive a run use the system's temp dir.
  process.env[LASTING_TMPDIR_ENV] = tmpdir();
  const run = mkdtempSync(join(tmpdir(), 'tollgate-test-run-'));
  process.env.TMPDIR = run;
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
    rmSync(run, { recursive: true, force: true });
  };
}
