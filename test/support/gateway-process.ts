import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI, run as users run it (the global setup builds dist/ once). */
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/**
 * Settings the developer's shell may carry that would change what a test gateway does, or what it
 * logs (tests find its URL in its `info` log line).
 */
const AMBIENT = [
  'REDIS_URL',
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'TOLLGATE_CONFIG',
  'TOLLGATE_AUTH',
  'TOLLGATE_ADMIN_KEY',
  'LOG_LEVEL',
  'LOG_PRETTY',
  'LOG_REQUESTS',
];

/**
 * The environment of a test gateway process: this process's without AMBIENT, on a free port of
 * 127.0.0.1, with `dataDir` as its data directory and `env` added last.
 */
export function gatewayProcessEnv(dataDir: string, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of AMBIENT) delete base[name];
  return { ...base, PORT: '0', HOST: '127.0.0.1', TOLLGATE_DATA_DIR: dataDir, ...env };
}

/**
 * Resolves with the URL (`http://…`, without `/v1`) a gateway child logs once it listens; rejects
 * with its output if it closes first. `output` is what the caller has gathered from the child's
 * stdout and stderr so far (its own 'data' listeners run before ours). No time budget of its own:
 * a gateway that hangs is bounded by the test's timeout.
 */
export function listeningUrl(child: ChildProcess, output: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = /"url":"(http:\/\/[^"]+)\/v1"/.exec(output());
      if (match?.[1]) resolve(match[1].replace('localhost', '127.0.0.1'));
    };
    check();
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('close', (code) =>
      reject(new Error(`gateway exited (${code}) before listening:\n${output()}`)),
    );
  });
}

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
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-process-'));
  const child = spawn(process.execPath, [CLI], {
    env: gatewayProcessEnv(dataDir, env),
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
  try {
    return { child, url: await listeningUrl(child, () => output), output: () => output, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The process's exit code once it has exited (at once if it already has). */
export function exitCodeOf(gateway: GatewayProcess): Promise<number | null> {
  const { child } = gateway;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return once(child, 'exit').then(([code]) => code as number | null);
}
