import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * `npm run bench` loads test/support/tiny-gguf.ts with Node's own TypeScript support (no vitest,
 * no build), which resolves imports exactly as written: a `.js` import of a `.ts` file breaks it.
 */
describe('what the benchmark imports from the test support files', () => {
  it('tiny-gguf.ts loads in plain Node and writes a GGUF file', () => {
    const script = [
      "const { writeTinyGguf } = await import('./test/support/tiny-gguf.ts');",
      'const path = writeTinyGguf();',
      "const { readFileSync, rmSync } = await import('node:fs');",
      "const { dirname } = await import('node:path');",
      "process.stdout.write(readFileSync(path).subarray(0, 4).toString('latin1'));",
      'rmSync(dirname(path), { recursive: true, force: true });',
    ].join('\n');
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(run.stderr).not.toContain('Cannot find module');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe('GGUF');
  });
});
