import type { Command } from 'ioredis';

/** ioredis's own words for it, which the store layer already reads as an outage. */
export const COMMAND_TIMED_OUT = 'Command timed out';

/** What a command sent on a stalled connection fails with, unsent (see CommandDeadlines.stalled). */
export const CONNECTION_STALLED =
  'Connection is stalled: an earlier command has gone unanswered past its deadline';

/**
 * Fails every Redis command that has waited `timeoutMs` for its answer, as ioredis's
 * `commandTimeout` option does, at a fraction of its cost. The option arms a timer per command
 * and, when the command ends, clears it and deletes the property that held it, which turns every
 * command into a dictionary-mode object: ~13k instructions a command, ~6.5 % of a request's own
 * work on the Redis path (bench/instructions.mjs). Here a command costs a Map entry while it is
 * in flight, and one sweep every `timeoutMs / 5` (only while commands are in flight) fails those
 * sent `timeoutMs` or more before: a command fails between `timeoutMs` and `timeoutMs` plus one
 * sweep after it was sent (later only when the event loop itself is held up).
 *
 * One per connection: it also tells whether that connection is stalled (see `stalled`).
 */
export class CommandDeadlines {
  /** Commands in flight, in the order they were sent, with when they were (performance.now()). */
  private readonly inFlight = new Map<Command, number>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sweepMs: number;
  private isStalled = false;
  /** Called when a stalled connection answers again. */
  onUnstalled: () => void = () => {};

  constructor(readonly timeoutMs: number) {
    this.sweepMs = Math.max(1, Math.ceil(timeoutMs / 5));
  }

  /**
   * Whether a command has passed its deadline with no answer on the connection since. Redis has
   * stopped answering (hung, paused, cut off by a network that drops rather than resets): a
   * command sent now would only wait out a deadline of its own, so a request asking Redis twice
   * (its key, then its quota) would wait two. Any answer ends it, the overdue commands' own late
   * ones included (they stay queued on the connection, so they are the probe), and so does the
   * connection closing (`reset`).
   */
  get stalled(): boolean {
    return this.isStalled;
  }

  /** The connection closed: its successor starts unstalled (its commands are timed afresh). */
  reset(): void {
    this.isStalled = false;
  }

  /** Starts a command's clock; a command sent again (after a reconnect) keeps its first one. */
  watch(command: Command): void {
    if (command.isSettled || this.inFlight.has(command)) return;
    this.inFlight.set(command, performance.now());
    const { resolve, reject } = command;
    // Called by ioredis for a reply even when the command has already failed at its deadline.
    command.resolve = (result: unknown) => {
      this.inFlight.delete(command);
      if (this.isStalled) this.answered();
      resolve(result);
    };
    command.reject = (error: Error) => {
      this.inFlight.delete(command);
      // An error reply is an answer too; anything else (a deadline, a closed connection) is not.
      if (this.isStalled && error.name === 'ReplyError') this.answered();
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

  private answered(): void {
    this.isStalled = false;
    this.onUnstalled();
  }

  private sweep(): void {
    const sentBy = performance.now() - this.timeoutMs;
    // Sent in this order, so the first one still within its time ends the sweep.
    for (const [command, sentAt] of this.inFlight) {
      if (sentAt > sentBy) break;
      // Before the rejection: whatever its caller sends next fails at once.
      this.isStalled = true;
      command.reject(new Error(COMMAND_TIMED_OUT));
    }
    if (this.inFlight.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
