import { write } from 'node:fs';

/** Errors after which the same write may succeed a moment later (a full, non-blocking pipe). */
const BUSY = new Set(['EAGAIN', 'EBUSY']);
const BUSY_RETRY_MS = 10;

function writeOnce(fd: number, chunk: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, chunk, 0, chunk.length, null, (error, written) => (error ? reject(error) : resolve(written)));
  });
}

/**
 * Log lines to a file descriptor (stdout), buffered and written off the event loop, that can
 * never block or spin: once a write fails for good (EPIPE: whoever read our stdout has gone)
 * every line from then on is dropped. pino.destination (sonic-boom) retries EPIPE in its final
 * synchronous flush forever, which left a stopping gateway hanging with its port closed.
 */
export class LogDestination {
  private queued: string[] = [];
  private queuedLength = 0;
  private writing: Promise<void> | undefined;
  private broken = false;

  constructor(
    private readonly fd: number,
    /** Characters gathered before a write starts (one syscall per line was the largest cost). */
    private readonly minLength: number,
  ) {}

  /** pino's DestinationStream. */
  write(line: string): void {
    if (this.broken) return;
    this.queued.push(line);
    this.queuedLength += line.length;
    if (this.queuedLength >= this.minLength) void this.flush();
  }

  /**
   * Writes out everything queued, including lines added meanwhile; resolves once that is done
   * or dropped. Never rejects. Callers that must not wait long bound it themselves.
   */
  flush(): Promise<void> {
    this.writing ??= this.drain().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async drain(): Promise<void> {
    while (this.queued.length > 0 && !this.broken) {
      let chunk = Buffer.from(this.queued.join(''));
      this.queued = [];
      this.queuedLength = 0;
      while (chunk.length > 0 && !this.broken) {
        try {
          chunk = chunk.subarray(await writeOnce(this.fd, chunk));
        } catch (error) {
          if (BUSY.has((error as NodeJS.ErrnoException).code ?? '')) {
            await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_MS));
            continue;
          }
          this.broken = true;
          this.queued = [];
          this.queuedLength = 0;
        }
      }
    }
  }
}
