import type { Cluster, Redis } from 'ioredis';
import { GatewayError, ServiceUnavailableError } from '../errors.js';
import { outageOf, type StoreOutage } from './store-outage.js';

/** The store cannot be reached: callers answer 503 with retry-after (fail closed), never a 500. */
export class StoreUnavailableError extends ServiceUnavailableError {
  /**
   * The connection outage this refusal is part of; none when the connection was usable (Redis
   * answered "not now": loading, out of memory, a read-only replica) or the store is closing.
   */
  outage: StoreOutage | undefined;

  constructor(cause?: unknown) {
    super('The gateway cannot reach its shared state (Redis) right now; retry shortly.', 1);
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * Replies by which Redis itself says "not now" (loading, failing over, read-only replica, out of
 * memory): the store is unavailable, not broken.
 */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|OOM)\b/;

/** ioredis's own words for a command that never got an answer (see its Redis.js / cluster). */
const UNANSWERED =
  /^(Connection is closed|Connection is stalled|Stream isn't writeable|Cluster isn't ready|Cluster is (disconnected|disconnecting|ended)|Command timed out|Command aborted|None of startup nodes|Node is disconnected|No master node|Too many Cluster redirections|connect ETIMEDOUT)/;

/** ioredis error classes that mean the connection, not the command, failed. */
const UNANSWERED_CLASSES = new Set([
  'MaxRetriesPerRequestError',
  'ClusterAllFailedError',
  'AbortError',
  'InterruptError',
]);

const SOCKET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

/**
 * True when `error`, raised by a command on `client`, means Redis could not be reached or
 * cannot serve right now, rather than that the command itself was wrong. A command in flight
 * when the connection drops fails later (MaxRetriesPerRequestError once ioredis has given up
 * reconnecting), so the connection's state at that moment counts as well as the error's kind.
 */
export function isRedisOutage(error: unknown, client: Redis | Cluster): boolean {
  if (!(error instanceof Error) || !mayBeOutage(error)) return false;
  if (error.name === 'ReplyError') return UNAVAILABLE_REPLY.test(error.message) || refusedWithin(error);
  if (UNANSWERED_CLASSES.has(error.name) || UNANSWERED.test(error.message)) return true;
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && SOCKET_CODES.has(code)) return true;
  return client.status !== 'ready';
}

/**
 * A MULTI whose commands Redis refused as they were queued (out of memory, read-only) fails as
 * EXECABORT, which says only that; ioredis keeps the refusals on it (`previousErrors`).
 */
function refusedWithin(error: Error): boolean {
  const previous = (error as { previousErrors?: unknown }).previousErrors;
  return (
    Array.isArray(previous) &&
    previous.some((refusal) => refusal instanceof Error && UNAVAILABLE_REPLY.test(refusal.message))
  );
}

/**
 * isRedisOutage, or the store layer's own word for one: StoreUnavailableError, which the
 * connection's readiness check throws (not connected, closed), and which isRedisOutage leaves
 * alone as one of our typed errors.
 */
export function isStoreOutage(error: unknown, client: Redis | Cluster): boolean {
  return error instanceof StoreUnavailableError || isRedisOutage(error, client);
}

/** Failures of commands that provably never left: refused by our own checks or by ioredis. */
const NEVER_SENT = /^(Connection is stalled|Stream isn't writeable)/;

/**
 * Whether a command that failed with `error` (an outage) may still have run on Redis: it was
 * written and its answer never came (a deadline passed, the connection dropped after the write),
 * so Redis may have run it then or may run it later (a paused server resumes). Not when Redis
 * answered with an error, nor when it never left (the connection was not ready or stalled).
 */
export function mayHaveRun(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return false;
  if (!(error instanceof Error)) return true;
  return error.name !== 'ReplyError' && !NEVER_SENT.test(error.message);
}

/**
 * Our own typed errors and the language's (a TypeError is a bug here, not Redis being away)
 * are never an outage, whatever state the connection is in: answering them with 503 "retry
 * shortly" would hide a bug behind retries.
 */
export function mayBeOutage(error: unknown): boolean {
  return !(
    error instanceof GatewayError ||
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof ReferenceError ||
    error instanceof SyntaxError
  );
}

/**
 * `error` as the store layer reports it: an outage becomes StoreUnavailableError, marked with the
 * connection's outage under way (see StoreOutage).
 */
export function asStoreError(error: unknown, client: Redis | Cluster): unknown {
  let refusal: StoreUnavailableError;
  if (error instanceof StoreUnavailableError) refusal = error;
  else if (isRedisOutage(error, client)) refusal = new StoreUnavailableError(error);
  else return error;
  refusal.outage ??= outageOf(client);
  return refusal;
}

/**
 * Makes every asynchronous method of a Redis-backed store fail closed: whichever command an
 * outage hits (and whatever ioredis calls the failure), the caller gets StoreUnavailableError,
 * which the error handler answers with 503 and retry-after. Applied once per store object, so
 * methods added later are covered too.
 */
export function failClosedOnOutage(target: object, client: Redis | Cluster): void {
  const prototype = Object.getPrototypeOf(target) as object;
  for (const name of Object.getOwnPropertyNames(prototype)) {
    if (name === 'constructor') continue;
    const method: unknown = Object.getOwnPropertyDescriptor(prototype, name)?.value;
    if (typeof method !== 'function') continue;
    Object.defineProperty(target, name, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        const result: unknown = Reflect.apply(method, target, args);
        if (!(result instanceof Promise)) return result;
        return result.catch((error: unknown) => {
          throw asStoreError(error, client);
        });
      },
    });
  }
}
