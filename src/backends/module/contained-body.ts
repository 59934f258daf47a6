import { UpstreamTimeoutError } from '../../errors.js';
import { ClientAbortedError } from '../transport-failure.js';
import { boundedWait } from './bounded-wait.js';
import { type ContainContext, containError, malformedAnswer } from './contained-error.js';

export interface BodyLimits {
  /** performance.now() by which the first chunk must have come (the answer's time to first byte). */
  firstChunkBy: number;
  idleTimeoutMs: number;
  /** The caller's signal: the client leaving. */
  signal: AbortSignal;
  /** Tells the module to stop: the gateway gave up on the body or stopped reading it. */
  abandon: AbortController;
  context: ContainContext;
}

type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object'
    ? `an object (${value.constructor?.name ?? 'no prototype'})`
    : `a ${typeof value}`;
}

/**
 * A module's body as the Backend contract has it, or undefined when it is none of what a body
 * may be. A string or bytes given whole are taken as one chunk (a module answering JSON need
 * not wrap it in an array).
 */
export function iteratorOfBody(body: unknown): (() => AnyIterator) | undefined {
  if (typeof body === 'string' || body instanceof Uint8Array) return () => [body][Symbol.iterator]();
  if (body === null || typeof body !== 'object') return undefined;
  const source = body as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  const asyncIterator = source[Symbol.asyncIterator];
  if (typeof asyncIterator === 'function') return () => asyncIterator.call(body);
  const syncIterator = source[Symbol.iterator];
  if (typeof syncIterator === 'function') return () => syncIterator.call(body);
  return undefined;
}

function toBuffer(chunk: unknown, context: ContainContext): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw malformedAnswer(`a body chunk that is ${describe(chunk)}, not a Buffer or a string`, context);
}

/**
 * The module's body, read under the gateway's rules: every chunk a Buffer (strings encoded as
 * UTF-8), the first within the answer's time to first byte and each next within the idle
 * timeout, a throw mid-body turned into a typed error the pipeline relays as an error event,
 * the client's leaving noticed even by a module that ignores its signal. Whoever stops reading
 * early (the pipeline on a disconnect, or this on a timeout) aborts the module's signal and
 * returns its iterator, so its generation stops too.
 */
export async function* containedBody(
  openIterator: () => AnyIterator,
  limits: BodyLimits,
): AsyncGenerator<Buffer, void, undefined> {
  const { context, signal } = limits;
  let iterator: AnyIterator;
  try {
    iterator = openIterator();
  } catch (error) {
    throw containError(error, { ...context, clientAborted: signal.aborted });
  }
  let first = true;
  let finished = false;
  try {
    for (;;) {
      const waitMs = first ? Math.max(0, limits.firstChunkBy - performance.now()) : limits.idleTimeoutMs;
      let outcome: Awaited<ReturnType<typeof boundedWait<IteratorResult<unknown>>>>;
      try {
        outcome = await boundedWait(
          new Promise<IteratorResult<unknown>>((resolve) => resolve(iterator.next())),
          waitMs,
          signal,
        );
      } catch (error) {
        // An iterator that threw is done: there is nothing to return.
        finished = true;
        throw containError(error, { ...context, clientAborted: signal.aborted });
      }
      if (outcome.kind === 'aborted') throw new ClientAbortedError();
      if (outcome.kind === 'timeout') {
        throw new UpstreamTimeoutError(
          first
            ? `Backend '${context.backend}' did not start answering in time.`
            : `Backend '${context.backend}' went silent in the middle of its answer.`,
        );
      }
      const result = outcome.value;
      if (result === null || typeof result !== 'object') {
        throw malformedAnswer('a body iterator whose next() gave no iterator result', context);
      }
      if (result.done) {
        finished = true;
        return;
      }
      first = false;
      yield toBuffer(result.value, context);
    }
  } finally {
    if (!finished) {
      limits.abandon.abort();
      // Not awaited: an async generator busy in an await answers return() only once that settles.
      new Promise((resolve) => resolve(iterator.return?.())).catch(() => {});
    }
  }
}

/** Reads a contained body whole, up to `limit` bytes (past it the module is misbehaving). */
export async function collectContained(
  body: AsyncIterable<Buffer>,
  limit: number,
  context: ContainContext,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw malformedAnswer(`a JSON answer larger than ${limit} bytes`, context);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
