import { tmpdir } from 'node:os';

/**
 * Where caches that outlive a test run go. The global setup points TMPDIR at a folder of the run
 * (removed at its end) and keeps the system's temp dir under this variable.
 */
export const LASTING_TMPDIR_ENV = 'TOLLGATE_TEST_LASTING_TMPDIR';

export function lastingTmpdir(): string {
  return process.env[LASTING_TMPDIR_ENV] ?? tmpdir();
}
