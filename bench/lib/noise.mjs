// Noise guard. The benchmark machine is shared (builds and test runs of the people working on the
// gateway land on the same 2 cores), and one `tsc` run is enough to halve a throughput figure.
// So every measurement records how much CPU processes other than ours used meanwhile, waits
// (bounded) for a quiet machine before starting, and is repeated (bounded) when it was noisy.
import { setTimeout as sleep } from 'node:timers/promises';
import { readCpuMs, readMachineBusyMs } from './procs.mjs';

const QUIET_WINDOW_MS = 400;
const QUIET_WINDOWS_NEEDED = 2;

/**
 * @typedef {object} NoiseSettings
 * @property {number} limitCores other processes may use up to this many cores during a measurement
 * @property {number} quietWaitMs longest wait for a quiet machine before one measurement
 * @property {number} retries how often a noisy measurement is repeated
 * @property {number} budgetMs total time the guard may add to the run (waiting + repeated work)
 */

export class NoiseGuard {
  /**
   * @param {NoiseSettings} settings
   * @param {() => number[]} ownPids the servers this run started (their CPU is not noise)
   */
  constructor(settings, ownPids) {
    this.settings = settings;
    this.ownPids = ownPids;
    this.waitedMs = 0;
    this.repeats = 0;
    this.spentMs = 0;
    this.budgetExhaustedNoted = false;
    /** @type {string[]} */
    this.events = [];
  }

  /** CPU used so far by our servers and by this orchestrator. */
  ownCpuMs() {
    const self = process.cpuUsage();
    let total = (self.user + self.system) / 1000;
    for (const pid of this.ownPids()) {
      const used = readCpuMs(pid);
      if (Number.isFinite(used)) total += used;
    }
    return total;
  }

  get hasBudget() {
    return this.spentMs < this.settings.budgetMs;
  }

  /**
   * Waits until other processes have used less than the limit for a couple of short windows in a
   * row, or until the per-measurement wait or the run's budget is used up. At least one window
   * is always sampled: it also lets the servers settle after the previous measurement.
   */
  async waitForQuiet() {
    const startedAt = performance.now();
    const settleMs = QUIET_WINDOW_MS * QUIET_WINDOWS_NEEDED;
    let quietWindows = 0;
    let sampled = false;
    while (quietWindows < QUIET_WINDOWS_NEEDED) {
      const extraMs = Math.max(0, performance.now() - startedAt - settleMs);
      const outOfTime =
        extraMs >= this.settings.quietWaitMs || this.spentMs + extraMs >= this.settings.budgetMs;
      if (sampled && outOfTime) break;
      const busyBefore = readMachineBusyMs();
      const ownBefore = this.ownCpuMs();
      await sleep(QUIET_WINDOW_MS);
      const foreignCores =
        (readMachineBusyMs() - busyBefore - (this.ownCpuMs() - ownBefore)) / QUIET_WINDOW_MS;
      quietWindows = foreignCores <= this.settings.limitCores ? quietWindows + 1 : 0;
      sampled = true;
    }
    // The settle windows are the price of every measurement; only waiting beyond them counts.
    const extraMs = Math.max(0, performance.now() - startedAt - settleMs);
    this.waitedMs += extraMs;
    this.spentMs += extraMs;
    this.noteBudget();
  }

  noteBudget() {
    if (!this.hasBudget && !this.budgetExhaustedNoted) {
      this.budgetExhaustedNoted = true;
      this.events.push('noise budget used up: later measurements neither waited for quiet nor were repeated');
    }
  }

  /**
   * Runs `work` after waiting for quiet, and again (within the budget) if other processes used
   * more than the limit meanwhile. `work` reports the CPU of the child it ran, which was ours.
   * @template {{ childCpuMs: number }} T
   * @param {string} label
   * @param {() => Promise<T>} work
   * @returns {Promise<T & { foreignCores: number }>}
   */
  async run(label, work) {
    for (let attempt = 0; ; attempt += 1) {
      await this.waitForQuiet();
      const startedAt = performance.now();
      const busyBefore = readMachineBusyMs();
      const ownBefore = this.ownCpuMs();
      const outcome = await work();
      const wallMs = performance.now() - startedAt;
      const foreignMs = readMachineBusyMs() - busyBefore - (this.ownCpuMs() - ownBefore) - outcome.childCpuMs;
      const foreignCores = Math.max(0, foreignMs / wallMs);
      if (foreignCores <= this.settings.limitCores || attempt >= this.settings.retries || !this.hasBudget) {
        if (foreignCores > this.settings.limitCores) {
          this.events.push(`${label}: kept although others used ${foreignCores.toFixed(2)} cores meanwhile`);
        }
        return { ...outcome, foreignCores };
      }
      this.repeats += 1;
      this.spentMs += wallMs;
      this.noteBudget();
      process.stderr.write(
        `[bench] ${label}: other processes used ${foreignCores.toFixed(2)} cores; repeating\n`,
      );
    }
  }
}
