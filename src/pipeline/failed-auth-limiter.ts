import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';

/** The check @fastify/rate-limit's `createRateLimit` returns (counted in the Store: Redis or memory). */
export type RateCheck = (
  request: FastifyRequest,
) => Promise<{ isAllowed: true } | { isAllowed: false; isExceeded: boolean; ttl: number }>;

export class TooManyFailedAuthError extends GatewayError {
  constructor(retryAfterMs: number) {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(
      429,
      'rate_limit_error',
      'rate_limit_exceeded',
      `Too many failed authentication attempts from this address; try again in ${seconds}s.`,
      {
        headers: {
          'retry-after': String(seconds),
          'retry-after-ms': String(Math.max(0, Math.round(retryAfterMs))),
        },
      },
    );
  }
}

const MAX_TRACKED = 10_000;

/** Where failures are counted: each surface apart, so wrong admin keys never lock out team keys. */
export type AuthSurface = 'v1' | 'admin';

export interface FailedAttempts {
  max: number;
  windowSeconds: number;
}

/**
 * Brute-force guard: failed authentications are counted per client IP in the shared store;
 * once over the limit, that IP is refused before its key is even looked at, until the window
 * ends (each instance learns it on the next failure it sees).
 */
export class FailedAuthLimiter {
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    private readonly check: RateCheck,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Counted by @fastify/rate-limit (registered on `app`) under `auth-failures:<surface>:<ip>`,
   * in Redis when the gateway has one, so every instance sees every other's failures.
   */
  static create(app: FastifyInstance, surface: AuthSurface, attempts: FailedAttempts): FailedAuthLimiter {
    return new FailedAuthLimiter(
      app.createRateLimit({
        max: attempts.max,
        timeWindow: attempts.windowSeconds * 1000,
        keyGenerator: (request) => `auth-failures:${surface}:${request.ip}`,
      }),
    );
  }

  /** Throws while the caller's IP is blocked. */
  assertNotBlocked(request: FastifyRequest): void {
    const until = this.blockedUntil.get(request.ip);
    if (until === undefined) return;
    const left = until - this.now();
    if (left > 0) throw new TooManyFailedAuthError(left);
    this.blockedUntil.delete(request.ip);
  }

  /** Counts one failure; returns the error to answer with when the limit is now exceeded. */
  async recordFailure(request: FastifyRequest): Promise<TooManyFailedAuthError | undefined> {
    let result: Awaited<ReturnType<RateCheck>>;
    try {
      result = await this.check(request);
    } catch {
      return undefined; // the store is down: the failure itself still gets its 401
    }
    if (result.isAllowed || !result.isExceeded) return undefined;
    if (this.blockedUntil.size >= MAX_TRACKED) {
      const now = this.now();
      for (const [ip, until] of this.blockedUntil) if (until <= now) this.blockedUntil.delete(ip);
    }
    this.blockedUntil.set(request.ip, this.now() + result.ttl);
    return new TooManyFailedAuthError(result.ttl);
  }
}
