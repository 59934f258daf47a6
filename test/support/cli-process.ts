import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI, run as users run it (the global setup builds dist/ once). */
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tollgate <args>` with the caller's environment minus the developer's own TOLLGATE_URL,
 * TOLLGATE_ADMIN_KEY and TOLLGATE_CONFIG, plus `env` (a value of undefined unsets a variable).
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const { TOLLGATE_URL: _url, TOLLGATE_ADMIN_KEY: _key, TOLLGATE_CONFIG: _config, ...base } = process.env;
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}
