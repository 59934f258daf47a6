import { type DestinationStream, type Logger, pino } from 'pino';
import type { Config } from '../config/schema.js';

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

export interface GatewayLogger {
  logger: Logger;
  /** Writes out whatever is buffered; call before the process exits. */
  flush: () => void;
}

/**
 * pino JSON to stdout. Lines are buffered (4 KiB, or a second at most) rather than written one
 * syscall each: at thousands of requests a second the per-line write was the gateway's single
 * largest cost.
 */
export function createLogger(options: Config['log'], destination?: DestinationStream): GatewayLogger {
  const base = {
    level: options.level,
    base: { service: 'tollgate' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (destination) return { logger: pino(base, destination), flush: () => {} };
  if (options.pretty) {
    return {
      logger: pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } }),
      flush: () => {},
    };
  }
  const stdout = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const timer = setInterval(() => stdout.flush(), FLUSH_INTERVAL_MS);
  timer.unref();
  return {
    logger: pino(base, stdout),
    flush: () => {
      clearInterval(timer);
      stdout.flushSync();
    },
  };
}
