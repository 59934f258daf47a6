import { type DestinationStream, type Logger, pino } from 'pino';
import type { Config } from '../config/schema.js';
import { LogDestination } from './log-destination.js';

/** Header and config paths that may carry credentials; pino censors them wherever they appear. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["api-key"]',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["api-key"]',
  'headers["x-api-key"]',
  '*.apiKey',
  'backends.*.apiKey',
];

/** Longest a log line waits in the buffer on a quiet gateway. */
const FLUSH_INTERVAL_MS = 1_000;
/**
 * Characters gathered before a write to stdout starts: what a default Linux pipe takes in one
 * write. Each write goes through libuv's thread pool (two thread hand-offs); at 4 KB the log cost
 * ~0.3 writes and their wake-ups per request at 500 req/s: most of the syscalls a request on the
 * embedded store made beyond the bare proxy's (8.1 against 7.1; 7.3 now, strace, BENCHMARKS.md). A quiet gateway still writes
 * within FLUSH_INTERVAL_MS.
 */
const MIN_WRITE_LENGTH = 65_536;

export interface GatewayLogger {
  logger: Logger;
  /**
   * Writes out whatever is buffered; await it before the process exits. Resolves (never
   * rejects) once written, or dropped when stdout has gone away.
   */
  flush: () => Promise<void>;
}

/**
 * pino JSON to stdout. Lines are buffered (64 KiB, or a second at most) rather than written one
 * syscall each: at thousands of requests a second the per-line write was the gateway's single
 * largest cost.
 */
export function createLogger(options: Config['log'], destination?: DestinationStream): GatewayLogger {
  const base = {
    level: options.level,
    base: { service: 'tollgate' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (destination) return { logger: pino(base, destination), flush: async () => {} };
  if (options.pretty) {
    return {
      logger: pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } }),
      flush: async () => {},
    };
  }
  const stdout = new LogDestination(1, MIN_WRITE_LENGTH);
  const timer = setInterval(() => void stdout.flush(), FLUSH_INTERVAL_MS);
  timer.unref();
  return {
    logger: pino(base, stdout),
    flush: () => {
      clearInterval(timer);
      return stdout.flush();
    },
  };
}
