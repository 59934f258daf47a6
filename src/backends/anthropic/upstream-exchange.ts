import type { Dispatcher } from 'undici';
import { readLimited } from '../read-limited.js';
import { callUpstream, type ReadWhole, type UpstreamAnswer, type UpstreamHeaders } from '../upstream-call.js';

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
 * One POST to the upstream and its answer (upstream-call.ts: bounded by the client's abort and
 * the backend's total timeout, transport failures mapped to the gateway's typed errors). Shared by
 * the translated chat calls and the Messages pass-through, so both time out, abort and fail alike.
 */
export class UpstreamExchange {
  private constructor(private readonly answer: UpstreamAnswer) {}

  /** `readWhole`: which answers to gather whole before this resolves (see upstream-call.ts). */
  static async open(
    dispatcher: Dispatcher,
    request: ExchangeRequest,
    bounds: ExchangeBounds,
    readWhole?: ReadWhole,
  ): Promise<UpstreamExchange> {
    return new UpstreamExchange(
      await callUpstream(dispatcher, { method: 'POST', ...request }, bounds, readWhole),
    );
  }

  get status(): number {
    return this.answer.status;
  }

  get headers(): UpstreamHeaders {
    return this.answer.headers;
  }

  /** A response header's (first) value. */
  header(name: string): string | undefined {
    const value = this.answer.headers[name];
    return Array.isArray(value) ? value[0] : value;
  }

  /** The body up to `limit` bytes; what lies past the limit is never read. */
  async read(limit: number): Promise<Buffer> {
    const whole = this.answer.whole;
    if (!whole) return readLimited(this.answer.chunks, limit);
    if (whole.cut instanceof Error) throw whole.cut;
    return whole.bytes.length > limit ? whole.bytes.subarray(0, limit) : whole.bytes;
  }

  /** An error answer's body: what arrives of it, empty when it breaks (the status says enough). */
  readError(limit: number): Promise<Buffer> {
    return this.read(limit).catch(() => Buffer.alloc(0));
  }

  /** Drops the body unread. */
  async discard(): Promise<void> {
    await this.answer.chunks[Symbol.asyncIterator]().return?.();
  }

  /** The body's chunks, unchanged and as they arrive. */
  chunks(): AsyncIterable<Buffer> {
    return this.answer.chunks;
  }
}
