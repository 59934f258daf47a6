import type { Dispatcher, Pool } from 'undici';
import { readLimited } from '../read-limited.js';
import { type FailureContext, mapUpstreamFailure } from '../transport-failure.js';

export interface ExchangeRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface ExchangeBounds {
  /** The backend's config name, for error messages. */
  backend: string;
  totalMs: number;
  /** The client's: its abort ends the upstream request. */
  signal: AbortSignal;
}

/**
 * One POST to the upstream and its answer, bounded by the client's abort and the backend's total
 * timeout through one controller (cheaper on the hot path than AbortSignal.any +
 * AbortSignal.timeout). The timer and the abort listener live until the answer has been read or
 * relayed: every way of consuming the body here releases them, and maps a transport failure to
 * the gateway's typed errors. Shared by the translated chat calls and the Messages pass-through,
 * so both time out, abort and fail alike.
 */
export class UpstreamExchange {
  private constructor(
    readonly response: Dispatcher.ResponseData,
    private readonly context: () => FailureContext,
    private readonly release: () => void,
  ) {}

  static async open(pool: Pool, request: ExchangeRequest, bounds: ExchangeBounds): Promise<UpstreamExchange> {
    const { signal } = bounds;
    const controller = new AbortController();
    let totalTimedOut = false;
    const onClientAbort = () => controller.abort();
    signal.addEventListener('abort', onClientAbort, { once: true });
    if (signal.aborted) controller.abort();
    const timer = setTimeout(() => {
      totalTimedOut = true;
      controller.abort();
    }, bounds.totalMs);
    timer.unref();
    const release = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onClientAbort);
    };
    const context = () => ({ backend: bounds.backend, totalTimedOut, clientAborted: signal.aborted });
    try {
      const response = await pool.request({ method: 'POST', ...request, signal: controller.signal });
      return new UpstreamExchange(response, context, release);
    } catch (error) {
      release();
      throw mapUpstreamFailure(error, context());
    }
  }

  get status(): number {
    return this.response.statusCode;
  }

  /** A response header's (first) value. */
  header(name: string): string | undefined {
    const value = this.response.headers[name];
    return Array.isArray(value) ? value[0] : value;
  }

  /** The body up to `limit` bytes; what lies past the limit is never read. */
  async read(limit: number): Promise<Buffer> {
    try {
      return await readLimited(this.response.body, limit);
    } catch (error) {
      throw mapUpstreamFailure(error, this.context());
    } finally {
      this.release();
    }
  }

  /** An error answer's body: what arrives of it, empty when it breaks (the status says enough). */
  readError(limit: number): Promise<Buffer> {
    return this.read(limit).catch(() => Buffer.alloc(0));
  }

  /** Drops the body unread. */
  async discard(): Promise<void> {
    await this.response.body.dump().catch(() => {});
    this.release();
  }

  /** The body's chunks, unchanged and as they arrive. */
  async *chunks(): AsyncGenerator<Buffer> {
    try {
      yield* this.response.body;
    } catch (error) {
      throw mapUpstreamFailure(error, this.context());
    } finally {
      this.release();
    }
  }
}
