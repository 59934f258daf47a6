import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type FailureContext, mapUpstreamFailure } from './transport-failure.js';

export interface UpstreamRequest {
  method: 'POST' | 'GET';
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer | Readable;
}

export interface UpstreamBounds {
  /** The backend's config name, for error messages. */
  backend: string;
  totalMs: number;
  /** The client's: its abort ends the upstream request. */
  signal: AbortSignal;
}

export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/**
 * Asked once the headers are in: a byte limit to read the whole answer before handing it over,
 * or undefined to hand it over at once and let it be read as it arrives.
 */
export type ReadWhole = (status: number, headers: UpstreamHeaders) => number | undefined;

export interface WholeBody {
  /** At most the limit's bytes. */
  bytes: Buffer;
  /**
   * Why `bytes` is not the whole answer: 'limit' when it was longer (the rest was not read), the
   * transport failure (already mapped) when it broke off; undefined when it is whole.
   */
  cut: 'limit' | Error | undefined;
}

export interface UpstreamAnswer {
  status: number;
  headers: UpstreamHeaders;
  /** The body, when `ReadWhole` asked for it; `chunks` then yields nothing. */
  whole: WholeBody | undefined;
  /**
   * The body's chunks, unchanged and as they arrive, once; transport failures are thrown mapped.
   * Leaving early (break, return) ends the upstream request.
   */
  chunks: AsyncIterable<Buffer>;
}

/** What is queued unread before the upstream connection is paused (undici's own default). */
const HIGH_WATER_BYTES = 64 * 1024;

/**
 * One request to an upstream through undici's dispatcher, bounded by the client's abort and the
 * backend's total timeout. Not `pool.request`: its Readable body, async iterator and abort
 * plumbing cost ~10 µs of CPU per request (measured), most of what relaying a small JSON answer
 * costs; here the answer is gathered as its chunks arrive and handed over in one piece, or queued
 * for an iterator with the same backpressure. The timer and the abort listener live until the
 * answer has been read, has failed or was left.
 */
export function callUpstream(
  dispatcher: Dispatcher,
  request: UpstreamRequest,
  bounds: UpstreamBounds,
  readWhole?: ReadWhole,
): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    const exchange = new Exchange(bounds, readWhole, resolve, reject);
    if (bounds.signal.aborted) {
      exchange.fail(new Error('aborted before the request was sent'));
      return;
    }
    try {
      dispatcher.dispatch(
        { method: request.method, path: request.path, headers: request.headers, body: request.body ?? null },
        exchange,
      );
    } catch (error) {
      exchange.fail(error);
    }
  });
}

type Phase = 'head' | 'whole' | 'streaming' | 'done';

class Exchange implements Dispatcher.DispatchHandler, AsyncIterator<Buffer> {
  private controller: Dispatcher.DispatchController | undefined;
  /** An abort asked for before undici handed over its controller. */
  private pendingAbort: Error | undefined;
  private totalTimedOut = false;
  private readonly timer: NodeJS.Timeout;
  private phase: Phase = 'head';
  private status = 0;
  private headers: UpstreamHeaders = {};
  private limit = 0;
  private parts: Buffer[] = [];
  private size = 0;
  /** Streaming: the body ended (`failure` unset) or broke off (`failure` set). */
  private finished = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private released = false;
  private readonly onAbort = () => this.abort();

  constructor(
    private readonly bounds: UpstreamBounds,
    private readonly readWhole: ReadWhole | undefined,
    private readonly resolve: (answer: UpstreamAnswer) => void,
    private readonly reject: (error: Error) => void,
  ) {
    bounds.signal.addEventListener('abort', this.onAbort, { once: true });
    this.timer = setTimeout(() => {
      this.totalTimedOut = true;
      this.abort();
    }, bounds.totalMs);
    this.timer.unref();
  }

  private context(): FailureContext {
    return {
      backend: this.bounds.backend,
      totalTimedOut: this.totalTimedOut,
      clientAborted: this.bounds.signal.aborted,
    };
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    this.bounds.signal.removeEventListener('abort', this.onAbort);
  }

  private abort(): void {
    const reason = new Error('upstream request aborted');
    if (this.controller) this.controller.abort(reason);
    else this.pendingAbort = reason;
  }

  /** Before any answer: the call fails as a whole. */
  fail(error: unknown): void {
    this.phase = 'done';
    this.release();
    this.reject(mapUpstreamFailure(error, this.context()));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: UpstreamHeaders,
  ): void {
    // 1xx (100-continue, 103 early hints) come before the answer.
    if (status < 200 || this.phase !== 'head') return;
    this.status = status;
    this.headers = headers;
    const limit = this.readWhole?.(status, headers);
    if (limit !== undefined) {
      this.phase = 'whole';
      this.limit = limit;
      return;
    }
    this.phase = 'streaming';
    this.resolve({ status, headers, whole: undefined, chunks: this });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase === 'whole') {
      if (this.size + chunk.length <= this.limit) {
        this.parts.push(chunk);
        this.size += chunk.length;
        return;
      }
      this.parts.push(chunk.subarray(0, this.limit - this.size));
      this.size = this.limit;
      this.handOverWhole('limit');
      // The rest is never read: the connection goes rather than waiting for it.
      controller.abort(new Error('answer longer than its limit'));
      return;
    }
    if (this.phase !== 'streaming' || this.finished) return;
    this.parts.push(chunk);
    this.size += chunk.length;
    if (this.size > HIGH_WATER_BYTES) controller.pause();
    this.wakeReader();
  }

  onResponseEnd(): void {
    if (this.phase === 'whole') {
      this.handOverWhole(undefined);
      return;
    }
    if (this.phase !== 'streaming') return;
    this.finished = true;
    this.release();
    this.wakeReader();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.phase === 'head') {
      this.fail(error);
      return;
    }
    if (this.phase === 'whole') {
      this.handOverWhole(mapUpstreamFailure(error, this.context()));
      return;
    }
    if (this.phase !== 'streaming' || this.finished) return;
    this.finished = true;
    this.failure = mapUpstreamFailure(error, this.context());
    this.release();
    this.wakeReader();
  }

  private handOverWhole(cut: WholeBody['cut']): void {
    this.phase = 'done';
    this.release();
    const bytes = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.resolve({
      status: this.status,
      headers: this.headers,
      whole: { bytes, cut },
      chunks: EMPTY,
    });
  }

  private wakeReader(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this;
  }

  async next(): Promise<IteratorResult<Buffer>> {
    for (;;) {
      const chunk = this.parts.shift();
      if (chunk) {
        this.size -= chunk.length;
        if (this.controller?.paused && this.size <= HIGH_WATER_BYTES / 2) this.controller.resume();
        return { done: false, value: chunk };
      }
      if (this.failure) {
        const failure = this.failure;
        this.failure = undefined;
        this.phase = 'done';
        throw failure;
      }
      if (this.finished || this.phase === 'done') {
        this.phase = 'done';
        return { done: true, value: undefined };
      }
      await new Promise<void>((wake) => {
        this.wake = wake;
      });
    }
  }

  /** The reader left: the rest of the answer is not wanted. */
  async return(): Promise<IteratorResult<Buffer>> {
    if (this.phase === 'streaming' && !this.finished) {
      this.finished = true;
      this.controller?.abort(new Error('the answer was left unread'));
    }
    this.phase = 'done';
    this.parts = [];
    this.size = 0;
    this.release();
    return { done: true, value: undefined };
  }
}

const EMPTY: AsyncIterable<Buffer> = {
  [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }),
};
