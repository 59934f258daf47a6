import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI, run as users run it (the global setup builds dist/ once). */
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Settings the developer's shell may carry that would change what a test gateway does. */
const AMBIENT = [
  'REDIS_URL',
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'TOLLGATE_CONFIG',
  'TOLLGATE_AUTH',
  'TOLLGATE_ADMIN_KEY',
];

export interface GatewayProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The last 16 KB of its stdout and stderr. */
  output: () => string;
  /** Stops it (SIGTERM, SIGKILL after 5 s) and removes its data directory. */
  stop: () => Promise<void>;
}

/**
 * A gateway process (`tollgate serve` on a free port, its own temporary data directory) with
 * `env` added; resolves once it logs the URL it listens on.
 */
export async function startGatewayProcess(env: Record<string, string>): Promise<GatewayProcess> {
  const base = { ...process.env };
  for (const name of AMBIENT) delete base[name];
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-process-'));
  const child = spawn(process.execPath, [CLI], {
    env: { ...base, PORT: '0', HOST: '127.0.0.1', TOLLGATE_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-16_384);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  // Log lines are buffered for up to a second before they reach stdout.
  for (let i = 0; i < 400; i++) {
    const match = /"url":"(http:\/\/[^"]+)\/v1"/.exec(output);
    if (match?.[1]) return { child, url: match[1], output: () => output, stop };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await stop();
  throw new Error(`gateway did not start:\n${output}`);
}
