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

export function createLogger(options: Config['log'], destination?: DestinationStream): Logger {
  const base = {
    level: options.level,
    base: { service: 'tollgate' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (destination) return pino(base, destination);
  if (options.pretty)
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
  return pino(base);
}
