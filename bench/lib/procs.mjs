// Child process bookkeeping for the benchmark: start servers, wait until they answer, read their
// memory and CPU from /proc, and make sure nothing outlives the run.
import { execFileSync, fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

/** @type {Set<ServerProcess>} */
const servers = new Set();
/** @type {Set<import('node:child_process').ChildProcess>} */
const loadChildren = new Set();

const STDERR_TAIL_BYTES = 8192;

export class ServerProcess {
  /**
   * Each server gets its own process group (detached), so stopping it also stops anything it
   * spawned; the orchestrator forwards Ctrl-C itself (see stopAll).
   * @param {string} name
   * @param {string} command
   * @param {readonly string[]} args
   * @param {{ env: NodeJS.ProcessEnv, cwd: string, stdout: 'ignore' | number, stdoutFile?: string }} options
   *   stdoutFile: where `stdout` (a descriptor) writes, so a crash report can quote its last lines
   */
  constructor(name, command, args, options) {
    this.name = name;
    this.stdoutFile = options.stdoutFile ?? null;
    this.commandLine = [command, ...args].join(' ');
    this.stderrTail = '';
    /** @type {string | null} */
    this.exitReason = null;
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', options.stdout, 'pipe'],
      detached: true,
    });
    this.pid = this.child.pid ?? -1;
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (/** @type {string} */ text) => {
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL_BYTES);
    });
    this.child.on('error', (error) => {
      this.exitReason = `failed to start: ${error.message}`;
    });
    this.child.on('exit', (code, signal) => {
      this.exitReason = `exited with ${signal ?? `code ${code}`}`;
      servers.delete(this);
    });
    servers.add(this);
  }

  get alive() {
    return this.exitReason === null;
  }

  /**
   * Polls `url` until it answers 200, failing fast if the process dies first.
   * @param {string} url
   * @param {number} timeoutMs
   */
  async waitReady(url, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let lastProblem = 'no answer yet';
    while (Date.now() < deadline) {
      if (!this.alive) {
        throw new Error(`${this.name} ${this.exitReason} before it was ready.\n${this.describeTail()}`);
      }
      try {
        const { statusCode, body } = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
        await body.dump();
        if (statusCode === 200) return;
        lastProblem = `GET ${url} answered ${statusCode}`;
      } catch (error) {
        lastProblem = String(error);
      }
      await sleep(50);
    }
    throw new Error(`${this.name} not ready after ${timeoutMs} ms (${lastProblem}).\n${this.describeTail()}`);
  }

  describeTail() {
    const parts = [
      this.stderrTail.trim() === '' ? '(no stderr output)' : `stderr:\n${this.stderrTail.trim()}`,
    ];
    if (this.stdoutFile !== null && this.stdoutFile !== '/dev/null') {
      try {
        const stdout = readFileSync(this.stdoutFile, 'utf8').trim();
        if (stdout !== '')
          parts.push(`last stdout lines (${this.stdoutFile}):\n${stdout.split('\n').slice(-10).join('\n')}`);
      } catch {
        // Nothing to quote.
      }
    }
    return parts.join('\n');
  }

  /**
   * SIGTERM to the process group, SIGKILL after `graceMs`; resolves once the process has exited.
   * @param {number} graceMs
   */
  async stop(graceMs) {
    this.signalGroup('SIGTERM');
    const deadline = Date.now() + graceMs;
    while (this.alive && Date.now() < deadline) await sleep(25);
    if (this.alive) {
      this.signalGroup('SIGKILL');
      const killDeadline = Date.now() + 2000;
      while (this.alive && Date.now() < killDeadline) await sleep(25);
    }
  }

  /** @param {NodeJS.Signals} signal */
  signalGroup(signal) {
    if (!this.alive || this.pid <= 0) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // Already gone between the check and the kill.
    }
  }
}

/**
 * V8 flags for a load generator that times requests. With its default young generation (growing
 * to 16 MB) its collections paused it for ~25 ms at 1,000 req/s here, every response that arrived
 * meanwhile timed that much late, so p99 measured the client; with 1 MB they pause ~5 ms, for
 * ~3 % of a core more GC (measured against the floor, 3 rounds: GC max 24-29 -> 5-10 ms, the
 * floor's p99 7.7-15 -> 5.4-6.6 ms). Only paced runs, whose figures are latency percentiles;
 * closed-loop runs are about throughput and streams about the median time to the first chunk.
 */
const LATENCY_CLIENT_FLAGS = ['--max-semi-space-size=1'];
/** @param {object} job */
const latencyJob = (job) => 'kind' in job && job.kind === 'paced';

/**
 * Runs one job in a fresh load generator process and resolves with its single result message.
 * @template T
 * @param {string} modulePath
 * @param {object} job
 * @param {number} timeoutMs
 * @returns {Promise<T>}
 */
export function runInChild(modulePath, job, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = fork(modulePath, [], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: latencyJob(job) ? [...process.execArgv, ...LATENCY_CLIENT_FLAGS] : process.execArgv,
    });
    loadChildren.add(child);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`load generator timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('message', (/** @type {{ ok: boolean, result?: T, error?: string }} */ message) => {
      clearTimeout(timer);
      if (message.ok && message.result !== undefined) resolve(message.result);
      else reject(new Error(`load generator failed: ${message.error ?? 'no result'}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      loadChildren.delete(child);
      // A no-op when the result already arrived.
      reject(new Error(`load generator exited (${signal ?? code}) without a result`));
    });
    child.send(job);
  });
}

/**
 * Stops every child: SIGTERM, then SIGKILL for whatever is still running after `graceMs`.
 * @param {number} graceMs
 */
export async function stopAll(graceMs) {
  for (const child of loadChildren) child.kill('SIGKILL');
  for (const server of servers) server.signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (servers.size > 0 && Date.now() < deadline) await sleep(25);
  killAllNow();
}

/** Synchronous last resort, safe inside a process 'exit' handler. */
export function killAllNow() {
  for (const child of loadChildren) child.kill('SIGKILL');
  for (const server of servers) server.signalGroup('SIGKILL');
}

/**
 * Distinct TCP ports that were free a moment ago. All probes stay open until every port is
 * known, so the kernel cannot hand the same port out twice.
 * @param {number} count
 * @returns {Promise<number[]>}
 */
export async function freePorts(count) {
  /** @type {net.Server[]} */
  const probes = [];
  try {
    const ports = [];
    for (let index = 0; index < count; index += 1) {
      const probe = net.createServer();
      probes.push(probe);
      ports.push(
        await new Promise((resolve, reject) => {
          probe.once('error', reject);
          probe.listen(0, '127.0.0.1', () => {
            const address = probe.address();
            resolve(typeof address === 'object' && address !== null ? address.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(() => resolve(undefined)))));
  }
}

/**
 * @typedef {object} MemoryReading
 * @property {number} rssKb resident set size now
 * @property {number} hwmKb peak resident set size so far
 */

/**
 * @param {number} pid
 * @returns {MemoryReading | null}
 */
export function readMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    if (rss === null) return null;
    return { rssKb: Number(rss[1]), hwmKb: hwm === null ? Number.NaN : Number(hwm[1]) };
  } catch {
    return null;
  }
}

const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * User + system CPU time a process has used so far, from /proc/<pid>/stat (clock-tick
 * resolution, 10 ms at the usual 100 Hz, fine over measurements of several seconds).
 * @param {number} pid
 * @returns {number} milliseconds, NaN when unreadable
 */
export function readCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const userTicks = Number(fields[11]);
    const systemTicks = Number(fields[12]);
    return ((userTicks + systemTicks) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU time the whole machine spent busy so far, from the first line of /proc/stat: user, nice,
 * system and steal (time the hypervisor gave to other guests). irq/softirq are left out on both
 * sides of the comparison this feeds (they are not charged to processes when the kernel accounts
 * them separately).
 * @returns {number} milliseconds summed over all cores, NaN when unreadable
 */
export function readMachineBusyMs() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const [, user, nice, system, , , , , steal] = line.trim().split(/\s+/).map(Number);
    return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (steal ?? 0)) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/**
 * Environment every gateway the benchmarks start gets, as `npm start` and the Docker image set
 * it: a fixed malloc trim threshold (glibc otherwise raises it once V8's compiler threads free
 * their large work areas, and keeps ~12 MB of freed memory per process).
 */
export const GATEWAY_ENV = { MALLOC_TRIM_THRESHOLD_: '131072' };

/**
 * Splits the two cores between the proxy under test and everything else: moves this process (so
 * the mock, Redis and every load generator started later) to core 1, when there is taskset and more
 * than one core and BENCH_PIN is not 0. Returns how to start a node process on core 0: on 2 shared
 * cores this is what keeps a proxy's CPU per request from being mostly the scheduler's doing.
 * @returns {{ pinning: boolean, onFirstCore: (args: string[]) => [string, string[]] }}
 */
export function pinToCores() {
  let pinning = false;
  if (process.env.BENCH_PIN !== '0' && os.availableParallelism() >= 2) {
    try {
      execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
      pinning = true;
    } catch {
      pinning = false;
    }
  }
  return {
    pinning,
    onFirstCore: (args) =>
      pinning ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args],
  };
}
