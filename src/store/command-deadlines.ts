import type { Command } from 'ioredis';

/** ioredis's own words for it, which the store layer already reads as an outage. */
export const COMMAND_TIMED_OUT = 'Command timed out';

/**
 * Fails every Redis command that has waited `timeoutMs` for its answer, as ioredis's
 * `commandTimeout` option does, at a fraction of its cost. The option arms a timer per command
 * and, when the command ends, clears it and deletes the property that held it, which turns every
 * command into a dictionary-mode object: ~13k instructions a command, ~6.5 % of a request's own
 * work on the Redis path (bench/instructions.mjs). Here a command costs a Map entry while it is
 * in flight, and one sweep every `timeoutMs / 5` (only while commands are in flight) fails those
 * sent `timeoutMs` or more before: a command fails between `timeoutMs` and `timeoutMs` plus one
 * sweep after it was sent (later only when the event loop itself is held up).
 */
export class CommandDeadlines {
  /** Commands in flight, in the order they were sent, with when they were (performance.now()). */
  private readonly inFlight = new Map<Command, number>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sweepMs: number;

  constructor(private readonly timeoutMs: number) {
    this.sweepMs = Math.max(1, Math.ceil(timeoutMs / 5));
  }

  /** Starts a command's clock; a command sent again (after a reconnect) keeps its first one. */
  watch(command: Command): void {
    if (command.isSettled || this.inFlight.has(command)) return;
    this.inFlight.set(command, performance.now());
    const { resolve, reject } = command;
    command.resolve = (result: unknown) => {
      this.inFlight.delete(command);
      resolve(result);
    };
    command.reject = (error: Error) => {
      this.inFlight.delete(command);
      reject(error);
    };
    if (this.sweeper === undefined) {
      // Never keeps the process alive: a command cannot outlive its connection's own handles.
      this.sweeper = setInterval(() => this.sweep(), this.sweepMs);
      this.sweeper.unref();
    }
  }

  /** Commands being watched (tests). */
  get watching(): number {
    return this.inFlight.size;
  }

  private sweep(): void {
    const sentBy = performance.now() - this.timeoutMs;
    // Sent in this order, so the first one still within its time ends the sweep.
    for (const [command, sentAt] of this.inFlight) {
      if (sentAt > sentBy) break;
      command.reject(new Error(COMMAND_TIMED_OUT));
    }
    if (this.inFlight.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
