import cluster, { type Address, type Worker } from 'node:cluster';
import type { Logger } from 'pino';

/** The first restart after a worker died young waits this long; each further one twice as long. */
const RESTART_BASE_MS = 250;
const RESTART_MAX_MS = 10_000;
/** A worker that has served this long after it started listening no longer counts as dying young. */
const STABLE_AFTER_MS = 10_000;
/** This many young deaths in a row (no worker stable in between) and the primary gives up. */
const GIVE_UP_AFTER_YOUNG_DEATHS = 5;
/** Beyond the workers' own hard stop, before the primary kills what is left. */
const KILL_MARGIN_MS = 2_000;

export interface ClusterPrimaryOptions {
  workers: number;
  logger: Logger;
  /** How long a worker may take to stop on a signal (grace period and its own hard stop). */
  workerStopLimitMs: number;
  /** Once, when the first `workers` workers all listen. */
  onListening: (address: Address) => void;
  /** Ends the primary (after its logs are written). */
  exit: (code: number) => void;
}

interface WorkerState {
  worker: Worker;
  listeningSince?: number;
  stableTimer?: NodeJS.Timeout;
}

/**
 * The primary of `server.workers > 1`: forks the workers (each runs the whole gateway, sharing
 * the port through node:cluster and state through Redis), replaces one that dies, and on
 * SIGTERM/SIGINT passes the signal on so every worker drains as a single process would, exiting
 * when they are all gone. It serves nothing and holds no state of the gateway's.
 */
export class ClusterPrimary {
  private readonly live = new Map<number, WorkerState>();
  private readonly restarts = new Set<NodeJS.Timeout>();
  private youngDeaths = 0;
  private lastYoungDeathAt = Number.NEGATIVE_INFINITY;
  private announced = false;
  private stopping = false;
  /**
   * What the primary exits with once stopped, when that is not 0: the exit code of the first
   * worker that did not stop cleanly (a single gateway would have exited with it), 1 for one
   * killed by a signal or for giving up on a crash loop. Clean means exit 0, or the signal passed
   * on ending it before it was set to drain.
   */
  private failure: number | undefined;
  private backstop: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(private readonly options: ClusterPrimaryOptions) {}

  start(): void {
    cluster.on('listening', (worker, address) => this.listening(worker, address));
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    this.options.logger.info({ workers: this.options.workers }, 'starting workers');
    for (let i = 0; i < this.options.workers; i++) this.fork();
  }

  /** SIGTERM/SIGINT: passed to every worker, each time one arrives (a worker tells a repeat from a second request). */
  stop(signal: NodeJS.Signals): void {
    if (!this.stopping) {
      this.stopping = true;
      for (const timer of this.restarts) clearTimeout(timer);
      this.restarts.clear();
      this.options.logger.info({ signal, workers: this.live.size }, 'shutting down: stopping workers');
      // Not unref'd: whatever the workers still do, the primary ends here.
      this.backstop = setTimeout(() => {
        this.options.logger.error({ workers: this.live.size }, 'workers did not stop in time: killing them');
        for (const { worker } of this.live.values()) worker.process.kill('SIGKILL');
        this.finish(this.failure ?? 1);
      }, this.options.workerStopLimitMs + KILL_MARGIN_MS);
    }
    for (const { worker } of this.live.values()) worker.process.kill(signal);
    this.finishIfDone();
  }

  private fork(): void {
    const worker = cluster.fork();
    // Unhandled, a failed fork or IPC send would end the primary and every worker with it.
    worker.on('error', (error: Error) =>
      this.options.logger.error(
        { worker: worker.id, err: { message: error.message } },
        'worker process error',
      ),
    );
    this.live.set(worker.id, { worker });
  }

  private listening(worker: Worker, address: Address): void {
    const state = this.live.get(worker.id);
    if (!state) return;
    const since = Date.now();
    state.listeningSince = since;
    state.stableTimer = setTimeout(() => {
      // Stable, with no young death since it started: a crash loop is over.
      if (this.lastYoungDeathAt < since) this.youngDeaths = 0;
    }, STABLE_AFTER_MS);
    state.stableTimer.unref();
    const all = [...this.live.values()];
    if (
      !this.announced &&
      all.length === this.options.workers &&
      all.every((s) => s.listeningSince !== undefined)
    ) {
      this.announced = true;
      this.options.onListening(address);
    }
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const state = this.live.get(worker.id);
    this.live.delete(worker.id);
    clearTimeout(state?.stableTimer);
    const fields = { worker: worker.id, worker_pid: worker.process.pid, code, signal };
    if (this.stopping) {
      const clean = code === 0 || signal === 'SIGTERM' || signal === 'SIGINT';
      // The supervisor learns what a single gateway would have told it: the code, not only "failed".
      if (!clean) this.failure ??= code ?? 1;
      this.options.logger[clean ? 'info' : 'warn'](fields, 'worker stopped');
      this.finishIfDone();
      return;
    }
    const now = Date.now();
    const young = state?.listeningSince === undefined || now - state.listeningSince < STABLE_AFTER_MS;
    if (young) {
      this.youngDeaths++;
      this.lastYoungDeathAt = now;
    } else {
      this.youngDeaths = 0;
    }
    if (this.youngDeaths >= GIVE_UP_AFTER_YOUNG_DEATHS) {
      this.options.logger.fatal(
        { ...fields, deaths: this.youngDeaths },
        'workers keep dying right after they start: giving up (each wrote why on stderr, marked with its worker number and pid)',
      );
      this.failure ??= 1;
      this.stop('SIGTERM');
      return;
    }
    const delay = young ? Math.min(RESTART_BASE_MS * 2 ** (this.youngDeaths - 1), RESTART_MAX_MS) : 0;
    this.options.logger.error(
      { ...fields, restart_in_ms: delay },
      'worker exited unexpectedly: starting another',
    );
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      this.fork();
    }, delay);
    this.restarts.add(timer);
  }

  private finishIfDone(): void {
    if (this.stopping && this.live.size === 0) this.finish(this.failure ?? 0);
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.backstop);
    if (code === 0) this.options.logger.info('stopped');
    else this.options.logger.error({ exit_code: code }, 'stopped: exiting with a failure code');
    this.options.exit(code);
  }
}
